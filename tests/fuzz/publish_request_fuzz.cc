// Fuzzes the validation of NotificationService.PublishChange requests
// (broker::ValidatePublish): the first byte picks the calling provider (an agency of the
// sample directory, or one it does not know), the rest is a PublishChangeRequest's wire
// bytes. Invariants: refusals as request_checks.h says (PERMISSION_DENIED only for an
// attribute of another provider); an accepted change names only attributes the caller
// is authoritative for, without repeats, a well-formed event type, and occurred_at set.

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

#include "broker/publisher.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/request_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::shared_ptr<const tellonce::consent::Directory> d = tellonce::fuzz::SampleDirectory();
  tellonce::fuzz::Input in(data, size);
  static const char* const kCallers[] = {"registry", "bank", "tax", "portal", "nobody"};
  const std::string provider = kCallers[in.Byte() % 5];
  const std::string_view bytes = in.Rest();
  tellonce::v1::PublishChangeRequest request;
  if (!request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return 0;
  const tellonce::consent::RequestLimits limits;
  absl::Status s =
      tellonce::broker::ValidatePublish(request, provider, *d, limits, tellonce::fuzz::kNow);
  if (!s.ok()) {
    tellonce::fuzz::CheckRefusal(s, request.citizen_id(), &request);
    if (s.code() == absl::StatusCode::kPermissionDenied) {
      FUZZ_CHECK(s.message().find("attributes[") == 0);
    }
    return 0;
  }
  FUZZ_CHECK(d->CheckCitizenId(request.citizen_id()).ok());
  FUZZ_CHECK(request.attributes_size() >= 1);
  std::set<std::string> seen;
  for (const std::string& a : request.attributes()) {
    const tellonce::v1::AttributeDef* def = d->FindAttribute(a);
    FUZZ_CHECK(def != nullptr && def->provider() == provider);
    FUZZ_CHECK(seen.insert(a).second);
  }
  FUZZ_CHECK(!request.event_type().empty() && request.event_type().size() <= 64);
  for (char c : request.event_type()) {
    FUZZ_CHECK((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_');
  }
  FUZZ_CHECK(request.has_occurred_at());
  return 0;
}
