#include "certs/signing.h"
#include "certs/openssl_handles.h"

#include "proto/textproto.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

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

}  // namespace

struct SigningKey::Impl {
  PkeyPtr key;
  std::string public_key_pem;
};

struct VerifyingKey::Impl {
  PkeyPtr key;
};

absl::StatusOr<SigningKey> SigningKey::FromPemFile(const std::string& path) {
  absl::StatusOr<std::string> pem = ReadFileToString(path);
  if (!pem.ok()) return pem.status();
  absl::StatusOr<SigningKey> key = FromPem(*pem);
  if (!key.ok()) return PrefixPath(key.status(), path);
  return key;
}

absl::StatusOr<SigningKey> SigningKey::FromPem(std::string_view pem) {
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
  return SigningKey(std::move(impl));
}

absl::StatusOr<std::string> SigningKey::Sign(std::string_view data) const {
  // A context per call: EVP_PKEY is safe to share read-only, EVP_MD_CTX is not.
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(data.data());
  if (ctx == nullptr ||
      EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, impl_->key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, in, data.size()) != 1) {
    ERR_clear_error();
    return absl::InternalError("ECDSA signing failed to start");
  }
  std::string signature(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &len, in,
                     data.size()) != 1) {
    ERR_clear_error();
    return absl::InternalError("ECDSA signing failed");
  }
  signature.resize(len);  // DER length varies; the first call gave the maximum.
  return signature;
}

std::string SigningKey::PublicKeyPem() const { return impl_->public_key_pem; }

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

absl::Status VerifyingKey::Verify(std::string_view data, std::string_view signature) const {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (ctx == nullptr ||
      EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, impl_->key.get()) != 1) {
    ERR_clear_error();
    return absl::InternalError("ECDSA verification failed to start");
  }
  // 1: valid; 0: wrong signature; negative: malformed input. Only 1 passes.
  const int rc = EVP_DigestVerify(
      ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
      reinterpret_cast<const unsigned char*>(data.data()), data.size());
  if (rc != 1) {
    ERR_clear_error();
    return absl::UnauthenticatedError("signature does not verify");
  }
  return absl::OkStatus();
}

}  // namespace tellonce::certs
