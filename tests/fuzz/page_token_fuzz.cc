// Fuzzes page-token decoding on the three paged listings, through the same checks the
// services make first and then the stores themselves (a real RocksDB, store_fixture.h):
//  0. ListConsents: consent::ValidateList, then ConsentStore::List;
//  1. ListAccessEvents: broker::ValidateListAccessEvents, then TransparencyLog::List (bit
//     0 of byte 1: as a consumer, which sees only the events it caused);
//  2. ListDeliveries: broker::ValidateListDeliveries, then Outbox::List.
// Byte 0 picks the listing; byte 1 bit 1 set: the request's page_token is replaced by the
// first page's next_page_token followed by the request's own token (so that real tokens,
// which hold random consent ids, are mutated too); the rest is the request's wire bytes.
// Invariants: a page holds only items strictly after its token, in increasing order,
// matching the filters, at most page_size of them; following next_page_token walks
// forward and ends; a malformed token is INVALID_ARGUMENT "page_token: malformed".

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/numbers.h"
#include "broker/delivery_admin.h"
#include "broker/transparency_core.h"
#include "consent/validation.h"
#include "tests/fuzz/request_checks.h"
#include "tests/fuzz/store_fixture.h"

namespace {

using tellonce::fuzz::kNow;
using tellonce::fuzz::Store;
using tellonce::fuzz::TheStore;

constexpr int kMaxWalk = 200;  // pages followed at most (far more than the fixture holds)

void CheckMalformed(const absl::Status& s) {
  FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  FUZZ_CHECK(s.message().find("page_token: ") == 0 || s.message().find("citizen_id: ") == 0);
}

void Consents(tellonce::v1::ListConsentsRequest request, bool prefix_real_token) {
  Store& store = TheStore();
  const tellonce::consent::RequestLimits limits;
  if (prefix_real_token) {
    absl::StatusOr<tellonce::consent::ConsentStore::Page> first = store.consents->List(
        tellonce::fuzz::kCitizenA, tellonce::v1::CONSENT_STATUS_UNSPECIFIED, 3, "", kNow);
    FUZZ_CHECK(first.ok());
    request.set_page_token(first->next_page_token + request.page_token());
  }
  absl::Status valid =
      tellonce::consent::ValidateList(request, *tellonce::fuzz::SampleDirectory(), limits);
  if (!valid.ok()) {
    tellonce::fuzz::CheckRefusal(valid, request.citizen_id(), &request);
    return;
  }
  const int page_size =
      request.page_size() == 0 ? tellonce::consent::kDefaultPageSize : request.page_size();
  std::string token = request.page_token();
  for (int walk = 0; walk < kMaxWalk; ++walk) {
    absl::StatusOr<tellonce::consent::ConsentStore::Page> page =
        store.consents->List(request.citizen_id(), request.status(), page_size, token, kNow);
    if (!page.ok()) {
      CheckMalformed(page.status());
      return;
    }
    FUZZ_CHECK(static_cast<int>(page->consents.size()) <= page_size);
    std::string last = token;
    for (const tellonce::v1::Consent& c : page->consents) {
      FUZZ_CHECK(c.citizen_id() == request.citizen_id());
      FUZZ_CHECK(c.consent_id() > last);  // after the token, increasing
      if (request.status() != tellonce::v1::CONSENT_STATUS_UNSPECIFIED) {
        FUZZ_CHECK(c.status() == request.status());
      }
      last = c.consent_id();
    }
    if (page->next_page_token.empty()) return;
    FUZZ_CHECK(page->next_page_token == last);
    token = page->next_page_token;
  }
  FUZZ_CHECK(false && "consent pages do not end");
}

void AccessEvents(tellonce::v1::ListAccessEventsRequest request, bool as_consumer,
                  bool prefix_real_token) {
  Store& store = TheStore();
  const std::optional<std::string> consumer =
      as_consumer ? std::optional<std::string>("tax") : std::nullopt;
  if (prefix_real_token) {
    absl::StatusOr<tellonce::v1::ListAccessEventsResponse> first =
        store.tlog->List(tellonce::fuzz::kCitizenA, std::nullopt, absl::InfinitePast(),
                         absl::InfiniteFuture(), 3, "");
    FUZZ_CHECK(first.ok());
    request.set_page_token(first->next_page_token() + request.page_token());
  }
  absl::StatusOr<tellonce::broker::AccessEventsQuery> query =
      tellonce::broker::ValidateListAccessEvents(request, *tellonce::fuzz::SampleDirectory(),
                                                 tellonce::consent::RequestLimits());
  if (!query.ok()) {
    tellonce::fuzz::CheckRefusal(query.status(), request.citizen_id(), &request);
    return;
  }
  std::string token = request.page_token();
  for (int walk = 0; walk < kMaxWalk; ++walk) {
    absl::StatusOr<tellonce::v1::ListAccessEventsResponse> page = store.tlog->List(
        request.citizen_id(), consumer, query->from, query->to, query->page_size, token);
    if (!page.ok()) {
      CheckMalformed(page.status());
      FUZZ_CHECK(!token.empty());
      return;
    }
    uint64_t after = 0;
    const bool has_after = !token.empty();
    if (has_after) FUZZ_CHECK(absl::SimpleAtoi(token, &after));
    const uint64_t token_value = after;
    FUZZ_CHECK(page->events_size() <= (query->page_size == 0 ? 50 : query->page_size));
    for (const tellonce::v1::LoggedAccessEvent& e : page->events()) {
      FUZZ_CHECK(!has_after || e.index() > after);  // strictly after the token
      FUZZ_CHECK(e.index() < static_cast<uint64_t>(tellonce::fuzz::kEvents));
      FUZZ_CHECK(e.event().citizen_id() == request.citizen_id());
      const absl::Time at = tellonce::FromProtoTime(e.event().at());
      FUZZ_CHECK(at >= query->from && at < query->to);
      if (consumer.has_value()) FUZZ_CHECK(e.event().consumer() == *consumer);
      after = e.index();
    }
    if (page->next_page_token().empty()) return;
    uint64_t next = 0;
    FUZZ_CHECK(absl::SimpleAtoi(page->next_page_token(), &next));
    // The last index looked at: at or after the last one returned, after the token.
    FUZZ_CHECK(next >= after && (!has_after || next > token_value));
    token = page->next_page_token();
  }
  FUZZ_CHECK(false && "access event pages do not end");
}

void Deliveries(tellonce::v1::ListDeliveriesRequest request, bool prefix_real_token) {
  Store& store = TheStore();
  if (prefix_real_token) {
    absl::StatusOr<tellonce::v1::ListDeliveriesResponse> first =
        store.outbox->List("", tellonce::v1::Delivery::STATE_UNSPECIFIED, 3, "");
    FUZZ_CHECK(first.ok());
    request.set_page_token(first->next_page_token() + request.page_token());
  }
  if (absl::Status s =
          tellonce::broker::ValidateListDeliveries(request, tellonce::consent::RequestLimits());
      !s.ok()) {
    tellonce::fuzz::CheckRefusal(s, "");
    return;
  }
  std::string token = request.page_token();
  for (int walk = 0; walk < kMaxWalk; ++walk) {
    absl::StatusOr<tellonce::v1::ListDeliveriesResponse> page =
        store.outbox->List(request.subscriber(), request.state(), request.page_size(), token);
    if (!page.ok()) {
      CheckMalformed(page.status());
      return;
    }
    uint64_t after = 0;
    const bool has_after = !token.empty();
    if (has_after) FUZZ_CHECK(absl::SimpleAtoi(token, &after));
    FUZZ_CHECK(page->deliveries_size() <= (request.page_size() == 0 ? 50 : request.page_size()));
    for (const tellonce::v1::Delivery& d : page->deliveries()) {
      uint64_t id = 0;
      FUZZ_CHECK(absl::SimpleAtoi(d.delivery_id(), &id));
      FUZZ_CHECK(!has_after || id > after);
      if (!request.subscriber().empty()) FUZZ_CHECK(d.subscriber() == request.subscriber());
      if (request.state() != tellonce::v1::Delivery::STATE_UNSPECIFIED) {
        FUZZ_CHECK(d.state() == request.state());
      }
      after = id;
    }
    if (page->next_page_token().empty()) return;
    token = page->next_page_token();
  }
  FUZZ_CHECK(false && "delivery pages do not end");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tellonce::fuzz::Input in(data, size);
  const uint8_t which = in.Byte() % 3;
  const uint8_t flags = in.Byte();
  const std::string_view bytes = in.Rest();
  const int n = static_cast<int>(bytes.size());
  if (which == 0) {
    tellonce::v1::ListConsentsRequest request;
    if (request.ParseFromArray(bytes.data(), n)) Consents(request, flags & 2);
  } else if (which == 1) {
    tellonce::v1::ListAccessEventsRequest request;
    if (request.ParseFromArray(bytes.data(), n)) AccessEvents(request, flags & 1, flags & 2);
  } else {
    tellonce::v1::ListDeliveriesRequest request;
    if (request.ParseFromArray(bytes.data(), n)) Deliveries(request, flags & 2);
  }
  return 0;
}
