#include "consent/validation.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "proto/field_error.h"
#include "proto/identifiers.h"
#include "proto/text.h"
#include "proto/time.h"

namespace tellonce::consent {
namespace {

// How far in the past a grant's valid_from may lie, to absorb portal clock skew.
constexpr absl::Duration kClockSkew = absl::Minutes(5);

constexpr std::string_view kCrockfordBase32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
constexpr size_t kConsentIdLength = 26;

// Debian's abseil has its own absl::string_view (ABSL_OPTION_USE_STD_STRING_VIEW is 0).
absl::string_view AsAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string Quoted(std::string_view s) { return absl::StrCat("\"", AsAbsl(s), "\""); }

}  // namespace

// An identifier-like field (request id, agency id, attribute name, purpose code):
// present, within the length limit, printable ASCII.
absl::Status CheckToken(std::string_view field, std::string_view value,
                        const RequestLimits& limits) {
  if (value.empty()) return InvalidField(field, "required");
  if (value.size() > limits.max_string_bytes) {
    return InvalidField(field, absl::StrCat("longer than ", limits.max_string_bytes, " bytes"));
  }
  if (!IsPrintableAscii(value)) return InvalidField(field, "must be printable ASCII");
  return absl::OkStatus();
}

absl::Status CheckCitizen(std::string_view citizen_id, const Directory& directory,
                          const RequestLimits& limits) {
  if (citizen_id.size() > limits.max_string_bytes) {
    return InvalidField("citizen_id",
                        absl::StrCat("longer than ", limits.max_string_bytes, " bytes"));
  }
  return directory.CheckCitizenId(citizen_id);
}

namespace {

absl::Status CheckConsentIdField(std::string_view field, std::string_view id) {
  if (id.empty()) return InvalidField(field, "required");
  if (!IsConsentId(id)) return InvalidField(field, "not a valid consent id");
  return absl::OkStatus();
}

// "365 days" for whole days, else abseil's compact form ("36h30m").
std::string DescribeDuration(absl::Duration d) {
  const absl::Duration day = absl::Hours(24);
  if (d % day == absl::ZeroDuration()) {
    const int64_t days = d / day;
    return absl::StrCat(days, days == 1 ? " day" : " days");
  }
  return absl::FormatDuration(d);
}

absl::Status CheckAttributes(const tellonce::v1::GrantConsentRequest& request,
                             const Directory& directory, const RequestLimits& limits) {
  if (request.attributes().empty()) {
    return InvalidField("attributes", "at least one attribute is required");
  }
  const uint32_t max = directory.max_attributes_per_consent();
  if (static_cast<uint32_t>(request.attributes_size()) > max) {
    return InvalidField("attributes", absl::StrCat("at most ", max, " attributes per consent"));
  }
  absl::flat_hash_set<std::string_view> seen;
  for (int i = 0; i < request.attributes_size(); ++i) {
    const std::string field = absl::StrCat("attributes[", i, "]");
    const std::string& name = request.attributes(i);
    if (absl::Status s = CheckToken(field, name, limits); !s.ok()) return s;
    if (directory.FindAttribute(name) == nullptr) {
      return InvalidField(field, absl::StrCat("unknown attribute ", Quoted(name)));
    }
    if (!seen.insert(name).second) return InvalidField(field, "duplicate attribute");
  }
  return absl::OkStatus();
}

absl::Status CheckTimes(const tellonce::v1::GrantConsentRequest& request,
                        const Directory& directory, absl::Time now) {
  const absl::Duration max_lifetime = directory.max_consent_lifetime();
  absl::Time valid_from = now;
  if (request.has_valid_from()) {
    absl::StatusOr<absl::Time> from = CheckedFromProtoTime(request.valid_from(), "valid_from");
    if (!from.ok()) return from.status();
    valid_from = *from;
    if (valid_from < now - kClockSkew) return InvalidField("valid_from", "must not be in the past");
    if (valid_from > now + max_lifetime) {
      return InvalidField(
          "valid_from",
          absl::StrCat("must not be more than ", DescribeDuration(max_lifetime), " in the future"));
    }
  }

  if (!request.has_expires_at()) return InvalidField("expires_at", "required");
  absl::StatusOr<absl::Time> expires = CheckedFromProtoTime(request.expires_at(), "expires_at");
  if (!expires.ok()) return expires.status();
  const absl::Time expires_at = *expires;
  if (expires_at <= valid_from) return InvalidField("expires_at", "must be after valid_from");
  if (expires_at <= now) return InvalidField("expires_at", "must be in the future");
  if (expires_at - valid_from > max_lifetime) {
    return InvalidField("expires_at", absl::StrCat("lifetime exceeds the maximum of ",
                                                   DescribeDuration(max_lifetime)));
  }
  return absl::OkStatus();
}

}  // namespace

bool IsConsentId(std::string_view id) {
  if (id.size() != kConsentIdLength) return false;
  for (char c : id) {
    if (kCrockfordBase32.find(c) == std::string_view::npos) return false;
  }
  return true;
}

absl::Status ValidateGrant(const tellonce::v1::GrantConsentRequest& request,
                           const Directory& directory, const RequestLimits& limits,
                           absl::Time now) {
  if (absl::Status s = CheckToken("request_id", request.request_id(), limits); !s.ok()) return s;
  if (absl::Status s = CheckCitizen(request.citizen_id(), directory, limits); !s.ok()) return s;

  if (absl::Status s = CheckToken("consumer", request.consumer(), limits); !s.ok()) return s;
  if (directory.FindAgency(request.consumer()) == nullptr) {
    return InvalidField("consumer", absl::StrCat("unknown agency ", Quoted(request.consumer())));
  }
  if (!directory.HasRole(request.consumer(), tellonce::v1::CONSUMER)) {
    return InvalidField("consumer", absl::StrCat("agency ", Quoted(request.consumer()),
                                                 " does not have the consumer role"));
  }

  if (absl::Status s = CheckAttributes(request, directory, limits); !s.ok()) return s;

  if (absl::Status s = CheckToken("purpose", request.purpose(), limits); !s.ok()) return s;
  if (directory.FindPurpose(request.purpose()) == nullptr) {
    return InvalidField("purpose", absl::StrCat("unknown purpose ", Quoted(request.purpose())));
  }

  if (absl::Status s = CheckTimes(request, directory, now); !s.ok()) return s;

  if (request.mode() != tellonce::v1::ONE_TIME && request.mode() != tellonce::v1::UNTIL_EXPIRY) {
    return InvalidField("mode", "must be ONE_TIME or UNTIL_EXPIRY");
  }
  return absl::OkStatus();
}

absl::Status ValidateRevoke(const tellonce::v1::RevokeConsentRequest& request,
                            const Directory& directory, const RequestLimits& limits) {
  if (absl::Status s = CheckConsentIdField("consent_id", request.consent_id()); !s.ok()) return s;
  if (absl::Status s = CheckCitizen(request.citizen_id(), directory, limits); !s.ok()) return s;
  if (request.reason().size() > limits.max_string_bytes) {
    return InvalidField("reason", absl::StrCat("longer than ", limits.max_string_bytes, " bytes"));
  }
  // The reason is shown to the citizen: the rule for text that crosses agencies.
  if (absl::Status clean = CheckCleanText(request.reason()); !clean.ok()) {
    return InvalidField("reason", absl::StrCat("must be valid UTF-8 without control characters (",
                                               clean.message(), ")"));
  }
  return absl::OkStatus();
}

absl::Status ValidateGet(const tellonce::v1::GetConsentRequest& request, const Directory& directory,
                         const RequestLimits& limits) {
  if (absl::Status s = CheckConsentIdField("consent_id", request.consent_id()); !s.ok()) return s;
  return CheckCitizen(request.citizen_id(), directory, limits);
}

absl::Status ValidateList(const tellonce::v1::ListConsentsRequest& request,
                          const Directory& directory, const RequestLimits& limits) {
  if (absl::Status s = CheckCitizen(request.citizen_id(), directory, limits); !s.ok()) return s;
  if (!tellonce::v1::ConsentStatus_IsValid(request.status())) {
    return InvalidField("status", absl::StrCat("unknown value ", request.status()));
  }
  return CheckPageRequest(request.page_size(), request.page_token(), PageTokenForm::kConsentId,
                          limits);
}

absl::Status CheckPageRequest(int32_t page_size, std::string_view page_token, PageTokenForm form,
                              const RequestLimits& limits) {
  if (page_size < 0) return InvalidField("page_size", "must not be negative");
  if (static_cast<uint32_t>(page_size) > limits.max_page_size) {
    return InvalidField("page_size", absl::StrCat("at most ", limits.max_page_size));
  }
  if (page_token.empty()) return absl::OkStatus();
  bool well_formed = false;
  switch (form) {
    case PageTokenForm::kConsentId:
      well_formed = IsConsentId(page_token);
      break;
    case PageTokenForm::kPosition: {
      uint64_t position = 0;
      well_formed = page_token.size() <= 20 &&
                    std::all_of(page_token.begin(), page_token.end(),
                                [](char c) { return c >= '0' && c <= '9'; }) &&
                    absl::SimpleAtoi(AsAbsl(page_token), &position);
      break;
    }
  }
  if (!well_formed) return InvalidField("page_token", "not a valid page token");
  return absl::OkStatus();
}

}  // namespace tellonce::consent
