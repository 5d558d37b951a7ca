#include "certs/tls.h"
#include "certs/openssl_handles.h"

#include "proto/textproto.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_certificate_verifier.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace tellonce::certs {
namespace {

using namespace ::tellonce::certs::internal;  // NOLINT: OpenSSL handles

using ::grpc::experimental::CertificateVerifier;
using ::grpc::experimental::ExternalCertificateVerifier;
using ::grpc::experimental::IdentityKeyCertPair;
using ::grpc::experimental::StaticDataCertificateProvider;
using ::grpc::experimental::TlsCustomVerificationCheckRequest;


// Never prompts for a pass phrase: an encrypted key is reported as unusable.

// "tls.key_file /etc/tellonce/broker.key"
std::string FieldAndPath(absl::string_view field, const std::string& path) {
  return absl::StrCat("tls.", field, " ", path);
}

absl::StatusOr<std::string> ReadFile(absl::string_view field, const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat("tls.", field, ": required"));
  absl::StatusOr<std::string> contents = ReadFileToString(path);
  if (!contents.ok()) {
    return absl::Status(contents.status().code(),
                        absl::StrCat("tls.", field, " ", contents.status().message()));
  }
  return contents;
}

// Parses every certificate of a PEM bundle. Zero certificates, or trailing garbage in
// a PEM block, is an error.
absl::StatusOr<std::vector<std::unique_ptr<X509, X509Free>>> ParseCertificates(
    absl::string_view field, const std::string& path, const std::string& pem) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return absl::InternalError("BIO_new_mem_buf failed");
  ERR_clear_error();  // Judge only what this parse leaves behind.
  std::vector<std::unique_ptr<X509, X509Free>> certs;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr)) {
    certs.emplace_back(cert);
  }
  // The loop ends with PEM_R_NO_START_LINE at the end of the input; anything else
  // means a block that did not parse.
  const unsigned long err = ERR_peek_last_error();
  const bool clean_end =
      ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE;
  ERR_clear_error();
  if (certs.empty() || !clean_end) {
    return absl::InvalidArgumentError(
        absl::StrCat(FieldAndPath(field, path), ": not a PEM certificate bundle"));
  }
  return certs;
}

// "Feb  1 00:00:00 2020 GMT"
std::string AsnTimeString(const ASN1_TIME* t) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || ASN1_TIME_print(bio.get(), t) != 1) {
    ERR_clear_error();
    return "(unknown time)";
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

// Checks that crl_dir holds, for every CA of ca_file, a current CRL in OpenSSL hashed
// form (`<issuer hash>.r0`) signed by that CA. gRPC 1.51 treats a missing CRL as "not
// revoked", so without this check an empty or wrong directory would silently turn
// revocation checking off.
absl::Status CheckCrlDir(const TlsPaths& paths,
                         const std::vector<std::unique_ptr<X509, X509Free>>& cas) {
  const std::string dir_field = FieldAndPath("crl_dir", paths.crl_dir);
  struct stat st;
  if (stat(paths.crl_dir.c_str(), &st) != 0) return absl::ErrnoToStatus(errno, dir_field);
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(dir_field, ": not a directory"));
  }
  for (const auto& ca : cas) {
    char name_buf[256];
    X509_NAME_oneline(X509_get_subject_name(ca.get()), name_buf, sizeof(name_buf));
    const std::string subject = name_buf;
    int hash_ok = 0;
    const unsigned long hash =
        X509_NAME_hash_ex(X509_get_subject_name(ca.get()), nullptr, nullptr, &hash_ok);
    if (hash_ok != 1) {
      ERR_clear_error();
      return absl::InternalError("cannot hash a CA name");
    }
    char file_name[32];
    std::snprintf(file_name, sizeof(file_name), "%08lx.r0", hash);
    const std::string crl_path = absl::StrCat(paths.crl_dir, "/", file_name);
    const std::string missing =
        absl::StrCat(dir_field, ": no CRL ", file_name, " of CA ", subject, " in tls.ca_file ",
                     paths.ca_file, " (revocation would not be checked)");
    std::FILE* f = std::fopen(crl_path.c_str(), "rb");
    if (f == nullptr) return absl::InvalidArgumentError(missing);
    std::unique_ptr<X509_CRL, X509CrlFree> crl(
        PEM_read_X509_CRL(f, nullptr, NoPassphrase, nullptr));
    std::fclose(f);
    if (crl == nullptr) {
      ERR_clear_error();
      return absl::InvalidArgumentError(
          absl::StrCat(FieldAndPath("crl_dir", crl_path), ": not a PEM CRL"));
    }
    if (X509_CRL_verify(crl.get(), X509_get0_pubkey(ca.get())) != 1) {
      ERR_clear_error();
      return absl::InvalidArgumentError(absl::StrCat(FieldAndPath("crl_dir", crl_path),
                                                     ": not signed by CA ", subject,
                                                     " in tls.ca_file ", paths.ca_file));
    }
    // OpenSSL refuses every handshake once a CRL is past its next update.
    const ASN1_TIME* next_update = X509_CRL_get0_nextUpdate(crl.get());
    if (next_update != nullptr && X509_cmp_current_time(next_update) < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          FieldAndPath("crl_dir", crl_path), ": CRL expired on ", AsnTimeString(next_update)));
    }
  }
  return absl::OkStatus();
}

// The PEM contents of one process's TLS files, checked to be usable.
struct TlsMaterial {
  std::string ca_pem;
  std::string cert_pem;
  std::string key_pem;
};

// Reads the files eagerly and checks that the CA bundle and certificate chain parse,
// that the key is an unencrypted private key belonging to the first (leaf)
// certificate of cert_file, and, when crl_dir is set, that it has a CRL for each CA.
// Errors name the field and path.
absl::StatusOr<TlsMaterial> LoadTlsMaterial(const TlsPaths& paths) {
  TlsMaterial m;
  absl::StatusOr<std::string> ca = ReadFile("ca_file", paths.ca_file);
  if (!ca.ok()) return ca.status();
  absl::StatusOr<std::string> cert = ReadFile("cert_file", paths.cert_file);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadFile("key_file", paths.key_file);
  if (!key.ok()) return key.status();
  m.ca_pem = *std::move(ca);
  m.cert_pem = *std::move(cert);
  m.key_pem = *std::move(key);

  auto cas = ParseCertificates("ca_file", paths.ca_file, m.ca_pem);
  if (!cas.ok()) return cas.status();
  auto chain = ParseCertificates("cert_file", paths.cert_file, m.cert_pem);
  if (!chain.ok()) return chain.status();

  std::unique_ptr<BIO, BioFree> bio(
      BIO_new_mem_buf(m.key_pem.data(), static_cast<int>(m.key_pem.size())));
  if (bio == nullptr) return absl::InternalError("BIO_new_mem_buf failed");
  std::unique_ptr<EVP_PKEY, PkeyFree> pkey(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  if (pkey == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(FieldAndPath("key_file", paths.key_file),
                                                   ": not an unencrypted PEM private key"));
  }
  if (X509_check_private_key(chain->front().get(), pkey.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat(FieldAndPath("key_file", paths.key_file),
                     ": does not match the certificate in tls.cert_file ", paths.cert_file));
  }

  if (!paths.crl_dir.empty()) {
    if (absl::Status s = CheckCrlDir(paths, *cas); !s.ok()) return s;
  }
  return m;
}

// Certificate data gRPC serves from memory: root bundle plus our key and chain.
std::shared_ptr<StaticDataCertificateProvider> MakeProvider(const TlsMaterial& m) {
  IdentityKeyCertPair pair;
  pair.private_key = m.key_pem;
  pair.certificate_chain = m.cert_pem;
  return std::make_shared<StaticDataCertificateProvider>(m.ca_pem,
                                                         std::vector<IdentityKeyCertPair>{pair});
}

// Accepts a server whose (already chain-verified) certificate has exactly one URI SAN,
// equal to the expected SPIFFE id. Replaces host name checking. Synchronous.
class SpiffeIdVerifier final : public ExternalCertificateVerifier {
 public:
  explicit SpiffeIdVerifier(std::string expected) : expected_(std::move(expected)) {}

  bool Verify(TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)> /*callback*/, grpc::Status* sync_status) override {
    const std::vector<grpc::string_ref> uris = request->uri_names();
    if (uris.size() != 1) {
      *sync_status = grpc::Status(
          grpc::StatusCode::UNAUTHENTICATED,
          absl::StrCat("server certificate has ", uris.size(), " URI SANs, expected exactly one"));
    } else if (std::string_view(uris[0].data(), uris[0].size()) != expected_) {
      *sync_status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                  absl::StrCat("server certificate is not ", expected_));
    } else {
      *sync_status = grpc::Status::OK;
    }
    return true;
  }

  void Cancel(TlsCustomVerificationCheckRequest* /*request*/) override {}

 private:
  const std::string expected_;
};

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsPaths& paths) {
  absl::StatusOr<TlsMaterial> material = LoadTlsMaterial(paths);
  if (!material.ok()) return material.status();

  grpc::experimental::TlsServerCredentialsOptions options(MakeProvider(*material));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  // The chain (and CRL) check happens in the handshake; who the client is, is decided
  // per call from its SPIFFE id (PeerIdentity), so no extra post-handshake check.
  options.set_certificate_verifier(std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
  if (!paths.crl_dir.empty()) options.set_crl_directory(paths.crl_dir);
  std::shared_ptr<grpc::ServerCredentials> creds =
      grpc::experimental::TlsServerCredentials(options);
  if (creds == nullptr) return absl::InternalError("gRPC refused the TLS server options");
  return creds;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsPaths& paths, const std::string& expected_server_spiffe_id) {
  absl::StatusOr<TlsMaterial> material = LoadTlsMaterial(paths);
  if (!material.ok()) return material.status();

  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(MakeProvider(*material));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_verify_server_certs(true);
  if (expected_server_spiffe_id.empty()) {
    options.set_certificate_verifier(
        std::make_shared<grpc::experimental::HostNameCertificateVerifier>());
  } else {
    options.set_certificate_verifier(
        ExternalCertificateVerifier::Create<SpiffeIdVerifier>(expected_server_spiffe_id));
    options.set_check_call_host(false);
  }
  if (!paths.crl_dir.empty()) options.set_crl_directory(paths.crl_dir);
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::experimental::TlsCredentials(options);
  if (creds == nullptr) return absl::InternalError("gRPC refused the TLS channel options");
  return creds;
}

}  // namespace tellonce::certs
