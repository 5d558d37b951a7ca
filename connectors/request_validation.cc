// The connector SDK's checks of what the broker asks (ValidateFetchRequest,
// ValidateChangeRequest in sdk.h): run by the server before any agency code sees a
// request.

#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "connectors/sdk.h"
#include "proto/field_error.h"
#include "proto/identifiers.h"
#include "proto/time.h"
#include "tellonce/v1/connector.pb.h"

namespace tellonce::connectors {
namespace {

using ::tellonce::v1::DeliverChangeRequest;
using ::tellonce::v1::FetchAttributesRequest;

// No C0 control character and no DEL. Bytes >= 0x80 are fine: protobuf has already
// checked that proto3 strings are well-formed UTF-8.
bool HasNoControlCharacters(std::string_view s) {
  for (char c : s) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x20 || b == 0x7f) return false;
  }
  return true;
}

// An optional free-text or id field: bounded, without control characters.
absl::Status CheckBounded(std::string_view field, std::string_view value) {
  if (value.size() > kMaxStringBytes) {
    return InvalidField(field, absl::StrCat("longer than ", kMaxStringBytes, " bytes"));
  }
  if (!HasNoControlCharacters(value)) return InvalidField(field, "contains control characters");
  return absl::OkStatus();
}

absl::Status CheckAttributes(const google::protobuf::RepeatedPtrField<std::string>& names) {
  if (names.empty()) return InvalidField("attributes", "at least one required");
  if (static_cast<size_t>(names.size()) > kMaxAttributesPerFetch) {
    return InvalidField("attributes", absl::StrCat("more than ", kMaxAttributesPerFetch));
  }
  absl::flat_hash_map<absl::string_view, int> seen;
  for (int i = 0; i < names.size(); ++i) {
    const std::string& name = names[i];
    const std::string field = absl::StrCat("attributes[", i, "]");
    if (name.empty()) return InvalidField(field, "required");
    if (name.size() > kMaxStringBytes) {
      return InvalidField(field, absl::StrCat("longer than ", kMaxStringBytes, " bytes"));
    }
    // Attribute names are catalogue names, not citizen data, so they may be quoted.
    if (!IsAttributeName(name)) {
      return InvalidField(field, absl::StrCat("\"", absl::CEscape(name),
                                              "\" is not a dotted lower-case attribute name"));
    }
    auto [it, inserted] = seen.emplace(name, i);
    if (!inserted) {
      return InvalidField(field,
                          absl::StrCat("\"", name, "\" repeats attributes[", it->second, "]"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckCitizenId(const std::string& citizen) {
  if (citizen.empty()) return InvalidField("citizen_id", "required");
  if (citizen.size() > kMaxCitizenIdBytes) {
    return InvalidField("citizen_id", absl::StrCat("longer than ", kMaxCitizenIdBytes, " bytes"));
  }
  if (!IsPrintableAscii(citizen)) return InvalidField("citizen_id", "must be printable ASCII");
  return absl::OkStatus();
}

absl::Status CheckBasis(const tellonce::v1::Basis& basis) {
  if (absl::Status s = CheckBounded("basis.consent_id", basis.consent_id()); !s.ok()) return s;
  if (absl::Status s = CheckBounded("basis.mandate_id", basis.mandate_id()); !s.ok()) return s;
  return CheckBounded("basis.legal_reference", basis.legal_reference());
}

// An optional timestamp: unset, or within protobuf's range with valid nanos.
absl::Status CheckTimestamp(std::string_view field, bool present,
                            const google::protobuf::Timestamp& t) {
  if (!present) return absl::OkStatus();
  return CheckedFromProtoTime(t, field).status();
}

}  // namespace

absl::Status ValidateFetchRequest(const FetchAttributesRequest& request) {
  if (absl::Status s = CheckCitizenId(request.citizen_id()); !s.ok()) return s;
  if (absl::Status s = CheckAttributes(request.attributes()); !s.ok()) return s;
  if (absl::Status s = CheckBounded("exchange_id", request.exchange_id()); !s.ok()) return s;
  if (absl::Status s = CheckBounded("consumer", request.consumer()); !s.ok()) return s;
  if (absl::Status s = CheckBounded("purpose", request.purpose()); !s.ok()) return s;
  return CheckBasis(request.basis());
}

absl::Status ValidateChangeRequest(const DeliverChangeRequest& request) {
  const std::string& event_id = request.event_id();
  if (event_id.empty()) return InvalidField("event_id", "required");
  if (event_id.size() > kMaxStringBytes) {
    return InvalidField("event_id", absl::StrCat("longer than ", kMaxStringBytes, " bytes"));
  }
  if (!IsPrintableAscii(event_id)) return InvalidField("event_id", "must be printable ASCII");
  if (request.provider().empty()) return InvalidField("provider", "required");
  if (!IsAgencyId(request.provider())) {
    return InvalidField("provider", absl::StrCat("must match ", kAgencyIdPattern));
  }
  if (absl::Status s = CheckCitizenId(request.citizen_id()); !s.ok()) return s;
  if (request.event_type().empty()) return InvalidField("event_type", "required");
  if (!IsUpperCode(request.event_type())) {
    return InvalidField("event_type", absl::StrCat("must match ", kUpperCodePattern));
  }
  if (absl::Status s = CheckAttributes(request.attributes()); !s.ok()) return s;
  if (absl::Status s =
          CheckTimestamp("occurred_at", request.has_occurred_at(), request.occurred_at());
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckTimestamp("published_at", request.has_published_at(), request.published_at());
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckBounded("delivery_id", request.delivery_id()); !s.ok()) return s;
  return CheckBasis(request.basis());
}

}  // namespace tellonce::connectors
