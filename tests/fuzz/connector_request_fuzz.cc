// Fuzzes the connector SDK's checks of what the broker sends a connector
// (connectors::ValidateFetchRequest, connectors::ValidateChangeRequest): the first byte
// picks FetchAttributes, DeliverChange or FetchAttributesBatch (each of its requests
// checked as the SDK does), the rest is the request's wire bytes. Invariants: refusals
// are INVALID_ARGUMENT "<field>: <reason>" that never quote the citizen id; an accepted
// fetch has a citizen id of printable ASCII within kMaxCitizenIdBytes and
// 1..kMaxAttributesPerFetch distinct dotted lower-case names.

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

#include "absl/strings/ascii.h"
#include "connectors/sdk.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/request_checks.h"

namespace {

using tellonce::connectors::kMaxAttributesPerFetch;
using tellonce::connectors::kMaxCitizenIdBytes;

bool IsAttributeName(const std::string& name) {
  // [a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+
  int parts = 0;
  size_t i = 0;
  while (i <= name.size()) {
    if (i == name.size() || !absl::ascii_islower(static_cast<unsigned char>(name[i]))) {
      return false;
    }
    ++i;
    while (i < name.size() &&
           (absl::ascii_islower(static_cast<unsigned char>(name[i])) ||
            absl::ascii_isdigit(static_cast<unsigned char>(name[i])) || name[i] == '_')) {
      ++i;
    }
    ++parts;
    if (i == name.size()) return parts >= 2;
    if (name[i] != '.') return false;
    ++i;
  }
  return false;
}

void CheckCitizenAndAttributes(const std::string& citizen_id,
                               const google::protobuf::RepeatedPtrField<std::string>& attributes) {
  FUZZ_CHECK(!citizen_id.empty() && citizen_id.size() <= kMaxCitizenIdBytes);
  for (char c : citizen_id) FUZZ_CHECK(c >= 0x20 && c <= 0x7e);
  FUZZ_CHECK(attributes.size() >= 1 &&
             static_cast<size_t>(attributes.size()) <= kMaxAttributesPerFetch);
  std::set<std::string> seen;
  for (const std::string& a : attributes) {
    FUZZ_CHECK(IsAttributeName(a));
    FUZZ_CHECK(seen.insert(a).second);
  }
}

void Fetch(const tellonce::v1::FetchAttributesRequest& request) {
  absl::Status s = tellonce::connectors::ValidateFetchRequest(request);
  if (!s.ok()) {
    tellonce::fuzz::CheckRefusal(s, request.citizen_id(), &request);
    FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  CheckCitizenAndAttributes(request.citizen_id(), request.attributes());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tellonce::fuzz::Input in(data, size);
  const uint8_t kind = in.Byte() % 3;
  const std::string_view bytes = in.Rest();
  const int n = static_cast<int>(bytes.size());
  if (kind == 0) {
    tellonce::v1::FetchAttributesRequest request;
    if (request.ParseFromArray(bytes.data(), n)) Fetch(request);
  } else if (kind == 1) {
    tellonce::v1::DeliverChangeRequest request;
    if (!request.ParseFromArray(bytes.data(), n)) return 0;
    absl::Status s = tellonce::connectors::ValidateChangeRequest(request);
    if (!s.ok()) {
      tellonce::fuzz::CheckRefusal(s, request.citizen_id(), &request);
      FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument);
      return 0;
    }
    CheckCitizenAndAttributes(request.citizen_id(), request.attributes());
    FUZZ_CHECK(!request.event_id().empty() && !request.provider().empty());
    FUZZ_CHECK(!request.event_type().empty());
  } else {
    tellonce::v1::FetchAttributesBatchRequest batch;
    if (!batch.ParseFromArray(bytes.data(), n)) return 0;
    for (const tellonce::v1::FetchAttributesRequest& request : batch.requests()) Fetch(request);
  }
  return 0;
}
