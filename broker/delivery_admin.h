#ifndef TELLONCE_BROKER_DELIVERY_ADMIN_H_
#define TELLONCE_BROKER_DELIVERY_ADMIN_H_

#include <string>

#include "absl/status/statusor.h"
#include "broker/outbox.h"
#include "consent/directory.h"
#include "consent/validation.h"
#include "tellonce/v1/notification.pb.h"

namespace tellonce::broker {

// Most delivery ids one RetryDeliveries call may name.
inline constexpr int kMaxRetryDeliveryIds = 1000;

// The request checks of DeliveryAdmin::List, apart from the role: subscriber empty or an
// agency id, a known state, and the page rule (consent::CheckPageRequest, a position
// token). INVALID_ARGUMENT "<field>: <reason>". Pure; the untrusted-input boundary
// tests/fuzz/admin_request_fuzz.cc and page_token_fuzz.cc drive.
absl::Status ValidateListDeliveries(const tellonce::v1::ListDeliveriesRequest& request,
                                    const consent::RequestLimits& limits);
// The request checks of DeliveryAdmin::Retry, apart from the role: at most
// kMaxRetryDeliveryIds ids (the outbox decodes each), subscriber empty or an agency id.
absl::Status ValidateRetryDeliveries(const tellonce::v1::RetryDeliveriesRequest& request);

// Design: the policy behind DeliveryAdminService, apart from gRPC: only an agency with
// the admin role lists and re-queues the outbox's deliveries; a list is one page under
// the broker's page rule (consent::CheckPageRequest, limits.max_page_size), filtered by
// an agency id and a known state; a retry names at most kMaxRetryDeliveryIds deliveries,
// or a subscriber, or all. The Outbox does the rest. Errors are absl::Status with
// client-facing messages. Thread-safe (the Outbox is).
class DeliveryAdmin {
 public:
  // `outbox` is not owned and must outlive this.
  DeliveryAdmin(Outbox* outbox, consent::RequestLimits limits) : outbox_(outbox), limits_(limits) {}

  // One page of stored deliveries, oldest first. PERMISSION_DENIED
  // "DeliveryAdminService requires the admin role" for another agency; INVALID_ARGUMENT
  // for a subscriber that is not an agency id, an unknown state or a bad page request;
  // the outbox's errors otherwise.
  absl::StatusOr<tellonce::v1::ListDeliveriesResponse> List(
      const consent::Directory& directory, const std::string& agency,
      const tellonce::v1::ListDeliveriesRequest& request);

  // Re-queues DEAD deliveries (Outbox::Retry); the response says how many.
  // PERMISSION_DENIED as for List; INVALID_ARGUMENT for more than kMaxRetryDeliveryIds
  // ids or a subscriber that is not an agency id; the outbox's errors otherwise
  // (NOT_FOUND, FAILED_PRECONDITION for a delivery that is not dead).
  absl::StatusOr<tellonce::v1::RetryDeliveriesResponse> Retry(
      const consent::Directory& directory, const std::string& agency,
      const tellonce::v1::RetryDeliveriesRequest& request);

 private:
  Outbox* const outbox_;
  const consent::RequestLimits limits_;
};

}  // namespace tellonce::broker

#endif  // TELLONCE_BROKER_DELIVERY_ADMIN_H_
