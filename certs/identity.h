#ifndef TELLONCE_CERTS_IDENTITY_H_
#define TELLONCE_CERTS_IDENTITY_H_

#include <string>
#include <string_view>

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

}  // namespace tellonce::certs

#endif  // TELLONCE_CERTS_IDENTITY_H_
