#include "certs/tls.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "certs/identity.h"
#include "certs/tls_material.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_certificate_verifier.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace tellonce::certs {
namespace {

using ::grpc::experimental::ExternalCertificateVerifier;
using ::grpc::experimental::IdentityKeyCertPair;
using ::grpc::experimental::StaticDataCertificateProvider;
using internal::PeerCertificateCheck;
using internal::TlsMaterial;

// Certificate data gRPC serves from memory: root bundle plus our key and chain.
std::shared_ptr<StaticDataCertificateProvider> MakeProvider(const TlsMaterial& m) {
  IdentityKeyCertPair pair;
  pair.private_key = m.key_pem;
  pair.certificate_chain = m.cert_pem;
  return std::make_shared<StaticDataCertificateProvider>(m.ca_pem,
                                                         std::vector<IdentityKeyCertPair>{pair});
}

// The CRLs loaded once, for the life of the credentials.
PeerCertificateCheck::CrlSource FixedCrls(std::shared_ptr<const internal::CrlSet> crls) {
  if (crls == nullptr) return nullptr;
  return [crls = std::move(crls)] { return crls; };
}

}  // namespace

absl::Status CheckPrivateKeyPermissions(absl::string_view field, const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    const int error = errno;
    return absl::Status(absl::ErrnoToStatusCode(error),
                        absl::StrCat(field, " ", path, ": ", std::strerror(error)));
  }
  if ((st.st_mode & 077) == 0) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      field, " ", path, ": private key readable by group or others (mode ",
      absl::StrFormat("%04o", st.st_mode & 07777), "); run `chmod 600 ", path,
      "`, or set allow_readable_private_keys: true in the configuration where the key is "
      "protected otherwise"));
}

absl::Status CheckTlsFiles(const TlsPaths& paths, std::string_view expected_spiffe_id) {
  absl::StatusOr<TlsMaterial> material =
      internal::LoadTlsMaterial(paths, /*allow_expired_crl=*/false);
  if (!material.ok()) return material.status();
  if (absl::Status chain = internal::VerifyChain(*material, paths); !chain.ok()) return chain;
  if (expected_spiffe_id.empty()) return absl::OkStatus();
  absl::StatusOr<SpiffeId> id = CertificateSpiffeId(material->cert_pem);
  if (!id.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tls.cert_file ", paths.cert_file, ": ", id.status().message()));
  }
  if (id->ToString() != expected_spiffe_id) {
    return absl::InvalidArgumentError(absl::StrCat("tls.cert_file ", paths.cert_file,
                                                   ": URI SAN is ", id->ToString(),
                                                   ", expected ", std::string(expected_spiffe_id)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsPaths& paths) {
  absl::StatusOr<TlsMaterial> material =
      internal::LoadTlsMaterial(paths, /*allow_expired_crl=*/false);
  if (!material.ok()) return material.status();

  grpc::experimental::TlsServerCredentialsOptions options(MakeProvider(*material));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  // The chain check happens in the handshake, the CRL check in PeerCertificateCheck;
  // who the client is, is decided per call from its SPIFFE id (PeerIdentity).
  options.set_certificate_verifier(ExternalCertificateVerifier::Create<PeerCertificateCheck>(
      FixedCrls(material->crls), "", "server"));
  std::shared_ptr<grpc::ServerCredentials> creds =
      grpc::experimental::TlsServerCredentials(options);
  if (creds == nullptr) return absl::InternalError("gRPC refused the TLS server options");
  return creds;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsPaths& paths, const std::string& expected_server_spiffe_id,
    const std::vector<std::string>& server_pins) {
  absl::StatusOr<TlsMaterial> material =
      internal::LoadTlsMaterial(paths, /*allow_expired_crl=*/false);
  if (!material.ok()) return material.status();

  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(MakeProvider(*material));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_verify_server_certs(true);
  if (expected_server_spiffe_id.empty()) {
    // Host name checking is gRPC's own verifier, which cannot be combined with ours:
    // the CRL check is then gRPC's crl_directory (loaded once, missing CRL = not
    // revoked, hence the start-up check in LoadTlsMaterial).
    options.set_certificate_verifier(
        std::make_shared<grpc::experimental::HostNameCertificateVerifier>());
    if (!paths.crl_dir.empty()) options.set_crl_directory(paths.crl_dir);
  } else {
    options.set_certificate_verifier(ExternalCertificateVerifier::Create<PeerCertificateCheck>(
        FixedCrls(material->crls), expected_server_spiffe_id, "client", PeerCertificateCheck::PeerFilter(), server_pins));
    options.set_check_call_host(false);
  }
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::experimental::TlsCredentials(options);
  if (creds == nullptr) return absl::InternalError("gRPC refused the TLS channel options");
  return creds;
}

}  // namespace tellonce::certs
