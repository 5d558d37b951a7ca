#include "certs/signing.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "certs/openssl_handles.h"
#include "proto/textproto.h"

namespace tellonce::certs {
namespace {

using namespace ::tellonce::certs::internal;  // NOLINT: OpenSSL handles

// OpenSSL's name of NIST P-256.
constexpr std::string_view kP256GroupName = "prime256v1";

// OK when `key` is an EC key on P-256; `what` names the input in the error.
absl::Status CheckP256(EVP_PKEY* key, absl::string_view what) {
  char group[64] = {0};
  size_t group_len = 0;
  if (!EVP_PKEY_is_a(key, "EC") ||
      EVP_PKEY_get_group_name(key, group, sizeof(group), &group_len) != 1 ||
      std::string_view(group, group_len) != kP256GroupName) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(what, ": not an EC P-256 key"));
  }
  return absl::OkStatus();
}

absl::Status PrefixPath(const absl::Status& status, const std::string& path) {
  return absl::Status(status.code(), absl::StrCat(path, ": ", status.message()));
}

constexpr std::string_view kReceiptContext("tellonce-receipt-v1\0", 20);
constexpr std::string_view kCheckpointContext("tellonce-checkpoint-v1\0", 23);

}  // namespace

std::string_view SignatureContext(SignedKind kind) {
  switch (kind) {
    case SignedKind::kConsentReceipt:
      return kReceiptContext;
    case SignedKind::kCheckpoint:
      return kCheckpointContext;
  }
  return kCheckpointContext;  // unreachable
}

absl::Status CheckKeyId(std::string_view key_id) {
  if (key_id.empty() || key_id.size() > 64) {
    return absl::InvalidArgumentError("key id: must be 1 to 64 characters");
  }
  for (char c : key_id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return absl::InvalidArgumentError("key id: only A-Z, a-z, 0-9, '.', '_' and '-'");
  }
  return absl::OkStatus();
}

struct SigningKey::Impl {
  PkeyPtr key;
  std::string public_key_pem;
  std::string key_id;
};

struct VerifyingKey::Impl {
  PkeyPtr key;
};

absl::StatusOr<SigningKey> SigningKey::FromPemFile(const std::string& path,
                                                   std::string_view key_id) {
  absl::StatusOr<std::string> pem = ReadFileToString(path);
  if (!pem.ok()) return pem.status();
  absl::StatusOr<SigningKey> key = FromPem(*pem, key_id);
  if (!key.ok()) return PrefixPath(key.status(), path);
  return key;
}

absl::StatusOr<SigningKey> SigningKey::FromPem(std::string_view pem, std::string_view key_id) {
  if (!key_id.empty()) {
    if (absl::Status s = CheckKeyId(key_id); !s.ok()) return s;
  }
  auto bio = MemBio(pem);
  if (bio == nullptr) return absl::InternalError("BIO_new_mem_buf failed");
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  if (key == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("signing key: not an unencrypted PEM private key");
  }
  if (absl::Status s = CheckP256(key.get(), "signing key"); !s.ok()) return s;

  auto out = std::unique_ptr<BIO, BioFree>(BIO_new(BIO_s_mem()));
  if (out == nullptr || PEM_write_bio_PUBKEY(out.get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InternalError("signing key: cannot encode the public key");
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(out.get(), &data);
  auto impl = std::make_shared<Impl>();
  impl->public_key_pem.assign(data, static_cast<size_t>(len));
  impl->key = std::move(key);
  impl->key_id = std::string(key_id);
  return SigningKey(std::move(impl));
}

absl::StatusOr<std::string> SigningKey::Sign(SignedKind kind, std::string_view data) const {
  std::string payload(SignatureContext(kind));
  payload.append(data);
  // A context per call: EVP_PKEY is safe to share read-only, EVP_MD_CTX is not.
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(payload.data());
  if (ctx == nullptr ||
      EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, impl_->key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, in, payload.size()) != 1) {
    ERR_clear_error();
    return absl::InternalError("ECDSA signing failed to start");
  }
  std::string signature(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &len, in,
                     payload.size()) != 1) {
    ERR_clear_error();
    return absl::InternalError("ECDSA signing failed");
  }
  signature.resize(len);  // DER length varies; the first call gave the maximum.
  return signature;
}

std::string SigningKey::PublicKeyPem() const { return impl_->public_key_pem; }

const std::string& SigningKey::key_id() const { return impl_->key_id; }

absl::StatusOr<VerifyingKey> VerifyingKey::FromCertificatePem(std::string_view pem) {
  auto bio = MemBio(pem);
  if (bio == nullptr) return absl::InternalError("BIO_new_mem_buf failed");
  std::unique_ptr<X509, X509Free> cert(
      PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr));
  if (cert == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("certificate: not a PEM X.509 certificate");
  }
  PkeyPtr key(X509_get_pubkey(cert.get()));
  if (key == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("certificate: unreadable public key");
  }
  if (absl::Status s = CheckP256(key.get(), "certificate public key"); !s.ok()) return s;
  auto impl = std::make_shared<Impl>();
  impl->key = std::move(key);
  return VerifyingKey(std::move(impl));
}

absl::StatusOr<VerifyingKey> VerifyingKey::FromCertificatePemFile(const std::string& path) {
  absl::StatusOr<std::string> pem = ReadFileToString(path);
  if (!pem.ok()) return pem.status();
  absl::StatusOr<VerifyingKey> key = FromCertificatePem(*pem);
  if (!key.ok()) return PrefixPath(key.status(), path);
  return key;
}

absl::StatusOr<VerifyingKey> VerifyingKey::FromPublicKeyPem(std::string_view pem) {
  auto bio = MemBio(pem);
  if (bio == nullptr) return absl::InternalError("BIO_new_mem_buf failed");
  PkeyPtr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, NoPassphrase, nullptr));
  if (key == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("public key: not a PEM SubjectPublicKeyInfo");
  }
  if (absl::Status s = CheckP256(key.get(), "public key"); !s.ok()) return s;
  auto impl = std::make_shared<Impl>();
  impl->key = std::move(key);
  return VerifyingKey(std::move(impl));
}

absl::StatusOr<VerifyingKey> VerifyingKey::FromPublicKeyPemFile(const std::string& path) {
  absl::StatusOr<std::string> pem = ReadFileToString(path);
  if (!pem.ok()) return pem.status();
  absl::StatusOr<VerifyingKey> key = FromPublicKeyPem(*pem);
  if (!key.ok()) return PrefixPath(key.status(), path);
  return key;
}

absl::Status VerifyingKey::Verify(SignedKind kind, std::string_view data,
                                  std::string_view signature) const {
  std::string payload(SignatureContext(kind));
  payload.append(data);
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (ctx == nullptr ||
      EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, impl_->key.get()) != 1) {
    ERR_clear_error();
    return absl::InternalError("ECDSA verification failed to start");
  }
  // 1: valid; 0: wrong signature; negative: malformed input. Only 1 passes.
  const int rc = EVP_DigestVerify(
      ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
      reinterpret_cast<const unsigned char*>(payload.data()), payload.size());
  if (rc != 1) {
    ERR_clear_error();
    return absl::UnauthenticatedError("signature does not verify");
  }
  return absl::OkStatus();
}

absl::StatusOr<VerifyingKeySet> VerifyingKeySet::FromDirectory(const std::string& dir) {
  std::error_code error;
  std::filesystem::directory_iterator it(dir, error);
  if (error) {
    return absl::NotFoundError(absl::StrCat(dir, ": cannot read the directory: ", error.message()));
  }
  VerifyingKeySet set;
  for (const std::filesystem::directory_entry& entry : it) {
    const std::filesystem::path& path = entry.path();
    if (path.extension() != ".pem" || !entry.is_regular_file()) continue;
    const std::string key_id = path.stem().string();
    if (absl::Status s = CheckKeyId(key_id); !s.ok()) return PrefixPath(s, path.string());
    absl::StatusOr<VerifyingKey> key = VerifyingKey::FromPublicKeyPemFile(path.string());
    if (!key.ok()) return absl::InvalidArgumentError(key.status().message());
    set.keys_.insert_or_assign(key_id, *std::move(key));
  }
  if (set.keys_.empty()) {
    return absl::NotFoundError(absl::StrCat(dir, ": no public signing key (<key_id>.pem)"));
  }
  return set;
}

absl::Status VerifyingKeySet::Add(std::string_view key_id, VerifyingKey key) {
  if (absl::Status s = CheckKeyId(key_id); !s.ok()) return s;
  keys_.insert_or_assign(std::string(key_id), std::move(key));
  return absl::OkStatus();
}

absl::Status VerifyingKeySet::Verify(SignedKind kind, std::string_view key_id,
                                     std::string_view data, std::string_view signature) const {
  auto it = keys_.find(key_id);
  if (it == keys_.end()) {
    return absl::UnauthenticatedError(
        absl::StrCat("key id \"", CheckKeyId(key_id).ok() ? std::string(key_id) : "(malformed)",
                     "\" is not in the key set"));
  }
  return it->second.Verify(kind, data, signature);
}

}  // namespace tellonce::certs
