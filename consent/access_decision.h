#ifndef TELLONCE_CONSENT_ACCESS_DECISION_H_
#define TELLONCE_CONSENT_ACCESS_DECISION_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "consent/consent_store.h"
#include "consent/directory.h"
#include "tellonce/v1/connector.pb.h"
#include "tellonce/v1/exchange.pb.h"

namespace tellonce::consent {

// What the broker may do with one requested attribute.
struct AccessDecision {
  std::string attribute;
  // RESULT_OK: allowed on `basis`. Otherwise why not: RESULT_UNKNOWN_ATTRIBUTE,
  // RESULT_NO_BASIS, RESULT_WRONG_PURPOSE, RESULT_CONSENT_REVOKED,
  // RESULT_CONSENT_EXPIRED, RESULT_CONSENT_USED.
  tellonce::v1::ResultCode code = tellonce::v1::RESULT_CODE_UNSPECIFIED;
  // The authoritative provider; empty for an unknown attribute.
  std::string provider;
  // Set when allowed; for a refusal, the consent the refusal rests on when there is
  // one (the revoked, expired or spent consent).
  tellonce::v1::Basis basis;
  // True when the basis is a ONE_TIME consent that must be spent before the data
  // flows (ConsentStore::MarkUsed).
  bool spends_one_time_consent = false;
  // A client-facing reason for a refusal, never citizen data.
  std::string detail;
};

// Decides, for each of `attributes` in order, whether `consumer` may obtain it about
// `citizen_id` for `purpose` at `now`, and on which basis. The request is assumed
// validated (known purpose, well-formed citizen id, no duplicates).
//
// The basis preferred is a standing (UNTIL_EXPIRY) consent, then a mandate, then a
// ONE_TIME consent, so a one-time consent is spent only when nothing else allows the
// access. A refusal says why: the most recent consent of this consumer for the
// attribute and purpose tells REVOKED / EXPIRED / USED; an ACTIVE consent for the
// attribute under another purpose tells WRONG_PURPOSE; otherwise NO_BASIS.
//
// Reads through `store` (one prefix scan when everything is allowed; a scan of the
// citizen's consents when something is refused). Errors only when the store fails.
// Thread-safe when the store is.
absl::StatusOr<std::vector<AccessDecision>> DecideAccess(
    const Directory& directory, ConsentStore& store, const std::string& consumer,
    const std::string& citizen_id, const std::string& purpose,
    const std::vector<std::string>& attributes, absl::Time now);

// The basis on which `subscriber` may be told that `attributes` of `citizen_id`
// changed: an ACTIVE consent of the citizen for the subscriber covering every one of
// them (any purpose or mode; nothing is spent), else a mandate of the subscriber for
// each (any purpose). std::nullopt when there is none. Errors only from the store.
absl::StatusOr<std::optional<tellonce::v1::Basis>> NotificationBasis(
    const Directory& directory, ConsentStore& store, const std::string& subscriber,
    const std::string& citizen_id, const std::vector<std::string>& attributes, absl::Time now);

}  // namespace tellonce::consent

#endif  // TELLONCE_CONSENT_ACCESS_DECISION_H_
