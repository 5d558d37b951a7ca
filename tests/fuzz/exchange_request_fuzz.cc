// Fuzzes the validation of ExchangeService.GetAttributes requests
// (broker::ValidateGetAttributes): protobuf wire bytes of a GetAttributesRequest,
// validated against the sample directory. Invariants: refusals as request_checks.h
// says; an accepted request has a valid citizen id, 1..max attributes without repeats,
// none longer than the limit, and a known purpose.

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

#include "broker/exchange.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/request_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::shared_ptr<const tellonce::consent::Directory> d = tellonce::fuzz::SampleDirectory();
  tellonce::v1::GetAttributesRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  tellonce::broker::ExchangeOptions options;
  options.max_attributes_per_request = 8;
  options.max_string_bytes = 64;
  absl::Status s = tellonce::broker::ValidateGetAttributes(request, *d, options);
  if (!s.ok()) {
    tellonce::fuzz::CheckRefusal(s, request.citizen_id(), &request);
    FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  FUZZ_CHECK(d->CheckCitizenId(request.citizen_id()).ok());
  FUZZ_CHECK(request.attributes_size() >= 1 &&
             request.attributes_size() <= static_cast<int>(options.max_attributes_per_request));
  std::set<std::string> seen;
  for (const std::string& a : request.attributes()) {
    FUZZ_CHECK(!a.empty() && a.size() <= options.max_string_bytes);
    FUZZ_CHECK(seen.insert(a).second);
  }
  FUZZ_CHECK(d->FindPurpose(request.purpose()) != nullptr);
  FUZZ_CHECK(!request.request_id().empty() &&
             request.request_id().size() <= options.max_string_bytes);
  return 0;
}
