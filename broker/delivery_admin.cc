#include "broker/delivery_admin.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/authz.h"
#include "proto/identifiers.h"

namespace tellonce::broker {
namespace {

constexpr char kService[] = "DeliveryAdminService";

// The subscriber filter: none, or an agency id.
absl::Status CheckSubscriber(const std::string& subscriber) {
  if (subscriber.empty() || IsAgencyId(subscriber)) return absl::OkStatus();
  return consent::InvalidField("subscriber", absl::StrCat("must match ", kAgencyIdPattern));
}

}  // namespace

absl::Status ValidateListDeliveries(const tellonce::v1::ListDeliveriesRequest& request,
                                    const consent::RequestLimits& limits) {
  if (absl::Status s = CheckSubscriber(request.subscriber()); !s.ok()) return s;
  if (!tellonce::v1::Delivery::State_IsValid(request.state())) {
    return consent::InvalidField("state", absl::StrCat("unknown value ", request.state()));
  }
  return consent::CheckPageRequest(request.page_size(), request.page_token(),
                                   consent::PageTokenForm::kPosition, limits);
}

absl::Status ValidateRetryDeliveries(const tellonce::v1::RetryDeliveriesRequest& request) {
  if (request.delivery_ids_size() > kMaxRetryDeliveryIds) {
    return consent::InvalidField("delivery_ids", absl::StrCat("at most ", kMaxRetryDeliveryIds));
  }
  return CheckSubscriber(request.subscriber());
}

absl::StatusOr<tellonce::v1::ListDeliveriesResponse> DeliveryAdmin::List(
    const consent::Directory& directory, const std::string& agency,
    const tellonce::v1::ListDeliveriesRequest& request) {
  if (absl::Status s = RequireRole(directory, agency, tellonce::v1::ADMIN, kService); !s.ok()) {
    return s;
  }
  if (absl::Status s = ValidateListDeliveries(request, limits_); !s.ok()) return s;
  return outbox_->List(request.subscriber(), request.state(), request.page_size(),
                       request.page_token());
}

absl::StatusOr<tellonce::v1::RetryDeliveriesResponse> DeliveryAdmin::Retry(
    const consent::Directory& directory, const std::string& agency,
    const tellonce::v1::RetryDeliveriesRequest& request) {
  if (absl::Status s = RequireRole(directory, agency, tellonce::v1::ADMIN, kService); !s.ok()) {
    return s;
  }
  if (absl::Status s = ValidateRetryDeliveries(request); !s.ok()) return s;
  absl::StatusOr<int> requeued = outbox_->Retry(
      std::vector<std::string>(request.delivery_ids().begin(), request.delivery_ids().end()),
      request.subscriber());
  if (!requeued.ok()) return requeued.status();
  tellonce::v1::RetryDeliveriesResponse response;
  response.set_requeued(*requeued);
  return response;
}

}  // namespace tellonce::broker
