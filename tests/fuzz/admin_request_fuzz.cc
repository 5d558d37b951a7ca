// Fuzzes DeliveryAdminService requests past the gRPC layer: broker::DeliveryAdmin (the
// service's core) for the sample directory's admin agency, so its checks
// (broker::ValidateListDeliveries, broker::ValidateRetryDeliveries) and the outbox's
// decoding of page tokens and delivery ids over a real RocksDB (store_fixture.h, whose
// deliveries are all parked as DEAD). Byte 0 picks
// ListDeliveries or RetryDeliveries, the rest is the request. A retry that would re-queue
// a stored delivery is not run (it would change the fixture); every other one is, and
// must be refused: INVALID_ARGUMENT "delivery_ids[i]: malformed" or NOT_FOUND.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "broker/delivery_admin.h"
#include "tests/fuzz/request_checks.h"
#include "tests/fuzz/store_fixture.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tellonce::fuzz::Input in(data, size);
  const uint8_t rpc = in.Byte() % 2;
  const std::string_view bytes = in.Rest();
  const int n = static_cast<int>(bytes.size());
  tellonce::broker::Outbox& outbox = *tellonce::fuzz::TheStore().outbox;
  static auto* admin =
      new tellonce::broker::DeliveryAdmin(&outbox, tellonce::consent::RequestLimits());
  const tellonce::consent::Directory& directory = *tellonce::fuzz::SampleDirectory();
  constexpr char kAdmin[] = "ops";  // the sample directory's ADMIN agency
  if (rpc == 0) {
    tellonce::v1::ListDeliveriesRequest request;
    if (!request.ParseFromArray(bytes.data(), n)) return 0;
    absl::StatusOr<tellonce::v1::ListDeliveriesResponse> page =
        admin->List(directory, kAdmin, request);
    if (!page.ok()) {
      tellonce::fuzz::CheckRefusal(page.status(), "");
      return 0;
    }
    for (const tellonce::v1::Delivery& d : page->deliveries()) {
      FUZZ_CHECK(d.state() == tellonce::v1::Delivery::DEAD);
    }
    return 0;
  }
  tellonce::v1::RetryDeliveriesRequest request;
  if (!request.ParseFromArray(bytes.data(), n)) return 0;
  if (absl::Status s = tellonce::broker::ValidateRetryDeliveries(request); !s.ok()) {
    tellonce::fuzz::CheckRefusal(s, "");
    absl::StatusOr<tellonce::v1::RetryDeliveriesResponse> refused =
        admin->Retry(directory, kAdmin, request);
    FUZZ_CHECK(refused.status() == s);
    return 0;
  }
  if (request.delivery_ids().empty()) return 0;  // would re-queue everything
  for (const std::string& id : request.delivery_ids()) {
    uint64_t sequence = 0;
    if (absl::SimpleAtoi(id, &sequence) &&
        sequence < static_cast<uint64_t>(tellonce::fuzz::kDeliveries)) {
      return 0;  // would re-queue a stored delivery
    }
  }
  absl::StatusOr<tellonce::v1::RetryDeliveriesResponse> requeued =
      admin->Retry(directory, kAdmin, request);
  FUZZ_CHECK(!requeued.ok());
  FUZZ_CHECK(requeued.status().code() == absl::StatusCode::kInvalidArgument ||
             requeued.status().code() == absl::StatusCode::kNotFound);
  FUZZ_CHECK(requeued.status().message().find("delivery_ids[") == 0);
  FUZZ_CHECK(outbox.dead() == static_cast<size_t>(tellonce::fuzz::kDeliveries));
  return 0;
}
