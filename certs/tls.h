#ifndef TELLONCE_CERTS_TLS_H_
#define TELLONCE_CERTS_TLS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"

namespace tellonce::certs {

// Paths to the PEM files of one process's TLS identity.
struct TlsPaths {
  // Federation root CA bundle used to verify the peer.
  std::string ca_file;
  // This process's certificate (chain).
  std::string cert_file;
  // This process's private key.
  std::string key_file;
  // Optional directory of CRLs in OpenSSL hashed form (`<hash>.r0`); empty: no CRL check.
  std::string crl_dir;
};

// Server credentials for mutual TLS: presents cert/key, requires a client certificate
// and verifies it against ca_file (and the CRLs, when crl_dir is set). A client
// without a certificate, or with one from another CA, fails the handshake.
// Errors: the file that could not be read or parsed, or a key that does not match
// the certificate (INVALID_ARGUMENT), checked eagerly so a bad file stops start-up.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsPaths& paths);

// Channel credentials for mutual TLS: presents cert/key and verifies the server's
// chain against ca_file. When expected_server_spiffe_id is non-empty the server
// certificate must carry exactly that URI SAN (host name checking is then skipped,
// since identity is the SPIFFE id); otherwise the host name is checked as usual.
// When `server_pins` is not empty, the server certificate's public key must also be
// one of them (certs::CheckPinned), checked in the handshake.
// Same errors as MakeServerCredentials.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsPaths& paths, const std::string& expected_server_spiffe_id,
    const std::vector<std::string>& server_pins = {});

}  // namespace tellonce::certs

#endif  // TELLONCE_CERTS_TLS_H_
