#ifndef TELLONCE_PORTAL_BROKER_CLIENT_H_
#define TELLONCE_PORTAL_BROKER_CLIENT_H_

// The portal toward the broker: an ordinary portal agency, gRPC over mutual TLS with
// the portal's agency certificate. Every citizen-bound call (consents, the citizen's
// history) carries the citizen's ID token in the `tellonce-citizen-assertion`
// metadata; there is no way to make one without a token. Checkpoints and proofs are
// not citizen-bound (any portal may fetch them); the caller restricts what it shows.
//
// Thread-safe: one channel shared by every call.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "certs/tls.h"
#include "grpcpp/channel.h"
#include "tellonce/v1/consent.grpc.pb.h"
#include "tellonce/v1/transparency.grpc.pb.h"

namespace tellonce::portal {

// Who the portal acts for on one call: the citizen and their ID token.
struct CitizenCredential {
  std::string citizen_id;
  std::string id_token;
};

class BrokerClient {
 public:
  // Reads and checks the TLS files (errors name the file). `broker_id` empty: the
  // broker of the trust domain of the portal's certificate.
  static absl::StatusOr<std::unique_ptr<BrokerClient>> Connect(const std::string& address,
                                                               const certs::TlsPaths& tls,
                                                               std::string broker_id,
                                                               absl::Duration timeout);

  // Every consent of the citizen, oldest first (all pages; at most kMaxItems).
  absl::StatusOr<std::vector<tellonce::v1::Consent>> ListConsents(const CitizenCredential& who);
  absl::StatusOr<tellonce::v1::GetConsentResponse> GetConsent(const CitizenCredential& who,
                                                              const std::string& consent_id);
  // `request.citizen_id` is set from `who`.
  absl::StatusOr<tellonce::v1::GrantConsentResponse> GrantConsent(
      const CitizenCredential& who, tellonce::v1::GrantConsentRequest request);
  absl::StatusOr<tellonce::v1::Consent> RevokeConsent(const CitizenCredential& who,
                                                      const std::string& consent_id,
                                                      const std::string& reason);
  // Every access event about the citizen, oldest first (at most kMaxItems).
  absl::StatusOr<std::vector<tellonce::v1::LoggedAccessEvent>> ListAccessEvents(
      const CitizenCredential& who);

  // The latest signed checkpoint, or (fresh) one covering every event acknowledged.
  absl::StatusOr<tellonce::v1::SignedCheckpoint> GetCheckpoint(bool fresh);
  absl::StatusOr<tellonce::v1::GetInclusionProofResponse> GetInclusionProof(uint64_t index,
                                                                            uint64_t tree_size);

  // The most items a list call gathers for one page of the portal.
  static constexpr size_t kMaxItems = 10000;

 private:
  BrokerClient(std::shared_ptr<grpc::Channel> channel, absl::Duration timeout);

  std::unique_ptr<tellonce::v1::ConsentService::Stub> consents_;
  std::unique_ptr<tellonce::v1::TransparencyService::Stub> transparency_;
  absl::Duration timeout_;
};

// grpc::Status -> absl::Status, code and message kept.
absl::Status FromGrpc(const grpc::Status& status);

}  // namespace tellonce::portal

#endif  // TELLONCE_PORTAL_BROKER_CLIENT_H_
