#ifndef TELLONCE_CONSENT_VALIDATION_H_
#define TELLONCE_CONSENT_VALIDATION_H_

#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "consent/directory.h"
#include "proto/field_error.h"
#include "tellonce/v1/consent.pb.h"

namespace tellonce::consent {

// Request limits that do not come from the directory (they come from broker config).
struct RequestLimits {
  // Longest string field, in bytes. Default 256.
  uint32_t max_string_bytes = 256;
  // Largest page of any list call (consents, access events, deliveries). Default 500.
  uint32_t max_page_size = 500;
};

// Default page size when a list request leaves it at 0.
inline constexpr int kDefaultPageSize = 50;

// Checks a grant against the directory and limits, in this order, stopping at the
// first failure: request_id (1..max_string_bytes, printable ASCII); citizen_id (by the
// directory rule); consumer (exists, consumer role); attributes (1..max per consent,
// each exists, no duplicates); purpose (exists); valid_from (defaults to `now`; may
// not be more than the maximum lifetime in the future); expires_at (set, after
// valid_from, after `now`, lifetime <= maximum); mode (ONE_TIME or UNTIL_EXPIRY).
// Returns INVALID_ARGUMENT "<field>: <reason>" (e.g. "expires_at: must be after
// valid_from"); reasons never echo citizen data.
absl::Status ValidateGrant(const tellonce::v1::GrantConsentRequest& request,
                           const Directory& directory, const RequestLimits& limits, absl::Time now);

// consent_id has the broker's format; citizen_id by the directory rule; reason within
// max_string_bytes and clean text (proto/text.h CheckCleanText: valid UTF-8, no
// control or bidirectional control characters).
absl::Status ValidateRevoke(const tellonce::v1::RevokeConsentRequest& request,
                            const Directory& directory, const RequestLimits& limits);
absl::Status ValidateGet(const tellonce::v1::GetConsentRequest& request, const Directory& directory,
                         const RequestLimits& limits);
// citizen_id; status is a known value; then CheckPageRequest (page_token: a consent
// id).
absl::Status ValidateList(const tellonce::v1::ListConsentsRequest& request,
                          const Directory& directory, const RequestLimits& limits);

// What a list's page token is: the opaque next_page_token the list handed out.
enum class PageTokenForm {
  kConsentId,  // ListConsents: the last consent id of the previous page
  kPosition,   // ListAccessEvents, ListDeliveries: a decimal position (at most 20 digits)
};

// The one check of a list call's page request, for every list the broker serves
// (ListConsents, ListAccessEvents, ListDeliveries): 0 <= page_size <=
// limits.max_page_size (0 asks for the list's default), and page_token empty or of
// `form`. INVALID_ARGUMENT "page_size: must not be negative", "page_size: at most <max>"
// or "page_token: not a valid page token" otherwise.
absl::Status CheckPageRequest(int32_t page_size, std::string_view page_token, PageTokenForm form,
                              const RequestLimits& limits);

// INVALID_ARGUMENT "<field>: <reason>" (proto/field_error.h), also by this name.
using ::tellonce::InvalidField;

// An identifier-like field (request id, agency id, attribute name, purpose code):
// present, within limits.max_string_bytes, printable ASCII. INVALID_ARGUMENT
// "<field>: <reason>" otherwise.
absl::Status CheckToken(std::string_view field, std::string_view value,
                        const RequestLimits& limits);

// A citizen id: within limits.max_string_bytes and valid by the directory's rule.
// INVALID_ARGUMENT "citizen_id: <reason>" otherwise, never echoing the id.
absl::Status CheckCitizen(std::string_view citizen_id, const Directory& directory,
                          const RequestLimits& limits);

// True when `id` has the shape of a broker consent id (26 Crockford base32 chars).
bool IsConsentId(std::string_view id);

}  // namespace tellonce::consent

#endif  // TELLONCE_CONSENT_VALIDATION_H_
