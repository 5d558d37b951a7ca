#ifndef TELLONCE_CONSENT_REGISTRY_H_
#define TELLONCE_CONSENT_REGISTRY_H_

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "certs/signing.h"
#include "consent/consent_store.h"
#include "consent/directory.h"
#include "consent/validation.h"
#include "tellonce/v1/consent.pb.h"

namespace tellonce::consent {

// Builds the receipt body for a consent about to be stored. certs::SignReceipt signs it
// and certs::VerifyReceipt checks a receipt (certs/signed_messages.h).
tellonce::v1::ReceiptBody BuildReceiptBody(const tellonce::v1::Consent& consent,
                                           const Directory& directory, const std::string& issuer,
                                           absl::Time issued_at);

// Design: the consent core behind ConsentService. The gRPC layer authenticates the
// caller (a portal) and hands over its agency id; this class validates against the
// current directory, builds the record and its signed receipt, and delegates storage.
// Errors are absl::Status with client-facing messages ("<field>: <reason>"). All
// methods are thread-safe; the asynchronous ones complete on the store's commit thread.
class ConsentRegistry {
 public:
  struct Options {
    RequestLimits limits;
    // SPIFFE id of the broker, written into receipts as issuer.
    std::string issuer;
    // Source of the current time; tests inject a fake clock.
    std::function<absl::Time()> clock = [] { return absl::Now(); };
  };

  // None of the pointers is owned; all must outlive the registry.
  ConsentRegistry(const DirectoryHolder* directory, ConsentStore* store,
                  certs::SigningKey signing_key, Options options);

  // Each call is made by portal `portal_id` for the citizen of the request, and
  // `citizen_assertion` is that citizen's ID token as the portal forwarded it
  // (Directory::VerifyCitizenAssertion: UNAUTHENTICATED or PERMISSION_DENIED when it
  // does not prove that this citizen just authenticated to this portal). The request
  // is validated first (INVALID_ARGUMENT), the token next, and only then is the store
  // read or written. A grant records the token's issuer, id and hash in its GRANTED
  // event. Revoking a consent that is not ACTIVE (twice included) is
  // FAILED_PRECONDITION.
  void Grant(const std::string& portal_id, std::string_view citizen_assertion,
             const tellonce::v1::GrantConsentRequest& request,
             absl::AnyInvocable<void(absl::StatusOr<tellonce::v1::GrantConsentResponse>)> done);
  void Revoke(const std::string& portal_id, std::string_view citizen_assertion,
              const tellonce::v1::RevokeConsentRequest& request,
              absl::AnyInvocable<void(absl::StatusOr<tellonce::v1::RevokeConsentResponse>)> done);
  absl::StatusOr<tellonce::v1::GetConsentResponse> Get(
      const std::string& portal_id, std::string_view citizen_assertion,
      const tellonce::v1::GetConsentRequest& request);
  absl::StatusOr<tellonce::v1::ListConsentsResponse> List(
      const std::string& portal_id, std::string_view citizen_assertion,
      const tellonce::v1::ListConsentsRequest& request);

 private:
  const DirectoryHolder* directory_;
  ConsentStore* store_;
  certs::SigningKey signing_key_;
  Options options_;
};

}  // namespace tellonce::consent

#endif  // TELLONCE_CONSENT_REGISTRY_H_
