// Fuzzes the validation of ConsentService requests (consent/validation.h), structure-aware:
// the first byte picks the RPC (grant, revoke, get, list), the rest is parsed as that
// request's protobuf wire bytes (as gRPC would hand it over) and validated against the
// sample directory at a fixed time. Invariants: refusals as request_checks.h says; an
// accepted grant names a consumer with the consumer role, known attributes without
// repeats, a known purpose and an expiry after now; an accepted list has a page size
// within the limit.

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

#include "consent/validation.h"
#include "proto/time.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/request_checks.h"

namespace {

using tellonce::fuzz::CheckRefusal;
using tellonce::fuzz::kNow;

const tellonce::consent::RequestLimits kLimits{.max_string_bytes = 256, .max_page_size = 500};

void Grant(std::string_view bytes, const tellonce::consent::Directory& d) {
  tellonce::v1::GrantConsentRequest request;
  if (!request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return;
  absl::Status s = tellonce::consent::ValidateGrant(request, d, kLimits, kNow);
  if (!s.ok()) {
    CheckRefusal(s, request.citizen_id(), &request);
    return;
  }
  FUZZ_CHECK(d.HasRole(request.consumer(), tellonce::v1::CONSUMER));
  FUZZ_CHECK(request.attributes_size() >= 1);
  FUZZ_CHECK(static_cast<uint32_t>(request.attributes_size()) <= d.max_attributes_per_consent());
  std::set<std::string> seen;
  for (const std::string& a : request.attributes()) {
    FUZZ_CHECK(d.FindAttribute(a) != nullptr);
    FUZZ_CHECK(seen.insert(a).second);
  }
  FUZZ_CHECK(d.FindPurpose(request.purpose()) != nullptr);
  FUZZ_CHECK(request.has_expires_at());
  FUZZ_CHECK(tellonce::FromProtoTime(request.expires_at()) > kNow);
  FUZZ_CHECK(d.CheckCitizenId(request.citizen_id()).ok());
}

void Revoke(std::string_view bytes, const tellonce::consent::Directory& d) {
  tellonce::v1::RevokeConsentRequest request;
  if (!request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return;
  absl::Status s = tellonce::consent::ValidateRevoke(request, d, kLimits);
  if (!s.ok()) {
    CheckRefusal(s, request.citizen_id(), &request);
    return;
  }
  FUZZ_CHECK(tellonce::consent::IsConsentId(request.consent_id()));
  FUZZ_CHECK(request.reason().size() <= kLimits.max_string_bytes);
  FUZZ_CHECK(d.CheckCitizenId(request.citizen_id()).ok());
}

void Get(std::string_view bytes, const tellonce::consent::Directory& d) {
  tellonce::v1::GetConsentRequest request;
  if (!request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return;
  absl::Status s = tellonce::consent::ValidateGet(request, d, kLimits);
  if (!s.ok()) {
    CheckRefusal(s, request.citizen_id(), &request);
    return;
  }
  FUZZ_CHECK(tellonce::consent::IsConsentId(request.consent_id()));
  FUZZ_CHECK(d.CheckCitizenId(request.citizen_id()).ok());
}

void List(std::string_view bytes, const tellonce::consent::Directory& d) {
  tellonce::v1::ListConsentsRequest request;
  if (!request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return;
  absl::Status s = tellonce::consent::ValidateList(request, d, kLimits);
  if (!s.ok()) {
    CheckRefusal(s, request.citizen_id(), &request);
    return;
  }
  FUZZ_CHECK(request.page_size() >= 0 &&
             static_cast<uint32_t>(request.page_size()) <= kLimits.max_page_size);
  FUZZ_CHECK(request.page_token().empty() || tellonce::consent::IsConsentId(request.page_token()));
  FUZZ_CHECK(d.CheckCitizenId(request.citizen_id()).ok());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::shared_ptr<const tellonce::consent::Directory> d = tellonce::fuzz::SampleDirectory();
  tellonce::fuzz::Input in(data, size);
  const uint8_t rpc = in.Byte();
  const std::string_view bytes = in.Rest();
  switch (rpc % 4) {
    case 0:
      Grant(bytes, *d);
      break;
    case 1:
      Revoke(bytes, *d);
      break;
    case 2:
      Get(bytes, *d);
      break;
    case 3:
      List(bytes, *d);
      break;
  }
  return 0;
}
