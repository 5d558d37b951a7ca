#ifndef TELLONCE_CERTS_IDENTITY_H_
#define TELLONCE_CERTS_IDENTITY_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/security/auth_context.h"

namespace tellonce::certs {

// A parsed SPIFFE id of the federation: spiffe://<trust_domain>/agency/<agency_id>
// or spiffe://<trust_domain>/broker.
struct SpiffeId {
  std::string trust_domain;
  // Empty for the broker.
  std::string agency_id;
  bool is_broker = false;

  std::string ToString() const;
};

// Parses a URI. INVALID_ARGUMENT when it is not one of the two forms above, when the
// trust domain is not a lower-case DNS-like name, or when the agency id does not match
// [a-z0-9][a-z0-9-]{0,62}.
absl::StatusOr<SpiffeId> ParseSpiffeId(std::string_view uri);

std::string AgencySpiffeId(std::string_view trust_domain, std::string_view agency_id);
std::string BrokerSpiffeId(std::string_view trust_domain);

// Identity of the caller from the verified peer certificate of a mutual TLS call
// (gRPC's `peer_spiffe_id` property, which gRPC sets only when the certificate has
// exactly one URI SAN). UNAUTHENTICATED when the peer is not authenticated or carries
// no usable SPIFFE id; PERMISSION_DENIED when its trust domain is not
// `expected_trust_domain`. Never looks at request fields.
absl::StatusOr<SpiffeId> PeerIdentity(const grpc::AuthContext& auth,
                                      std::string_view expected_trust_domain);

// The single URI SAN of a PEM certificate, parsed. INVALID_ARGUMENT when the PEM
// cannot be parsed or does not have exactly one URI SAN.
absl::StatusOr<SpiffeId> CertificateSpiffeId(const std::string& certificate_pem);

// The pin of a PEM certificate (the first in the PEM): base64 of the SHA-256 of its
// SubjectPublicKeyInfo in DER, as `openssl x509 -pubkey -noout | openssl pkey -pubin
// -outform der | openssl dgst -sha256 -binary | base64` prints it. The pin names the
// key, so it survives re-issuing the certificate over the same key. INVALID_ARGUMENT
// when the PEM is not a certificate.
absl::StatusOr<std::string> CertificatePin(std::string_view certificate_pem);

// OK when `pin` looks like a pin (base64 of 32 bytes); INVALID_ARGUMENT otherwise.
absl::Status CheckPinSyntax(std::string_view pin);

// OK when `pins` is empty or the certificate's pin is one of them. UNAUTHENTICATED
// "peer certificate key is not pinned" otherwise (or when the PEM does not parse).
absl::Status CheckPinned(std::string_view certificate_pem, const std::vector<std::string>& pins);

// CheckPinned on the verified peer certificate of a call (gRPC's "x509_pem_cert"
// property). UNAUTHENTICATED when `pins` is not empty and there is no such certificate.
absl::Status CheckPeerPinned(const grpc::AuthContext& auth, const std::vector<std::string>& pins);

}  // namespace tellonce::certs

#endif  // TELLONCE_CERTS_IDENTITY_H_
