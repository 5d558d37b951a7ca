#ifndef TELLONCE_CERTS_TLS_H_
#define TELLONCE_CERTS_TLS_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
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
  // Refuse a key_file that its group or others may read or write
  // (CheckPrivateKeyPermissions), at start and at every reload. Servers (the broker, a
  // connector) set it unless their configuration says allow_readable_private_keys.
  // Default false.
  bool refuse_readable_key = false;
};

// OK when the private key file at `path` grants nothing to group or others (e.g. 0600
// or 0400). FAILED_PRECONDITION otherwise, naming `field`, the path, the mode and the
// fix: "tls.key_file /etc/k.pem: private key readable by group or others (mode 0644);
// run `chmod 600 /etc/k.pem`, or set allow_readable_private_keys: true in the
// configuration where the key is protected otherwise". The stat's error (NOT_FOUND,
// PERMISSION_DENIED) naming the path when it cannot be examined.
absl::Status CheckPrivateKeyPermissions(absl::string_view field, const std::string& path);

// The offline check `tellonce-broker --check` makes of its TLS files: they load as
// MakeServerCredentials loads them (certificate chain and CA bundle parse, the key is
// this certificate's, each CRL is signed by its CA and current, and the key's mode when
// refuse_readable_key), the CA bundle verifies the certificate chain (time included),
// and the certificate's one URI SAN is `expected_spiffe_id` (not checked when empty).
// INVALID_ARGUMENT or FAILED_PRECONDITION naming the field and path otherwise. Starts
// nothing.
absl::Status CheckTlsFiles(const TlsPaths& paths, std::string_view expected_spiffe_id);

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
