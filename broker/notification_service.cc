#include "broker/notification_service.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/authz.h"
#include "broker/status.h"

namespace tellonce::broker {

absl::Status ValidateListDeliveries(const tellonce::v1::ListDeliveriesRequest& request) {
  if (request.page_size() < 0 || request.page_size() > 500) {
    return absl::InvalidArgumentError("page_size: must be between 0 and 500");
  }
  if (request.page_token().size() > 20) {
    return absl::InvalidArgumentError("page_token: malformed");
  }
  return absl::OkStatus();
}

absl::Status ValidateRetryDeliveries(const tellonce::v1::RetryDeliveriesRequest& request) {
  if (request.delivery_ids_size() > 1000) {
    return absl::InvalidArgumentError("delivery_ids: at most 1000");
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* NotificationServiceImpl::PublishChange(
    grpc::CallbackServerContext* context, const tellonce::v1::PublishChangeRequest* request,
    tellonce::v1::PublishChangeResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::string> provider = AuthorizeAgency(
      *context, *directory_->Current(), tellonce::v1::PROVIDER, "NotificationService");
  if (!provider.ok()) {
    reactor->Finish(ToGrpcStatus(provider.status()));
    return reactor;
  }
  if (publish_limit_ != nullptr) {
    if (absl::Status admitted = publish_limit_->Admit(*provider); !admitted.ok()) {
      reactor->Finish(ToGrpcStatus(admitted));
      return reactor;
    }
  }
  publisher_->Publish(
      *provider, *request,
      [reactor, response](absl::StatusOr<tellonce::v1::PublishChangeResponse> result) {
        FinishWith(reactor, response, std::move(result));
      });
  return reactor;
}

grpc::ServerUnaryReactor* DeliveryAdminServiceImpl::ListDeliveries(
    grpc::CallbackServerContext* context, const tellonce::v1::ListDeliveriesRequest* request,
    tellonce::v1::ListDeliveriesResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::string> admin = AuthorizeAgency(*context, *directory_->Current(),
                                                      tellonce::v1::ADMIN, "DeliveryAdminService");
  auto run = [&]() -> absl::StatusOr<tellonce::v1::ListDeliveriesResponse> {
    if (!admin.ok()) return admin.status();
    if (absl::Status s = ValidateListDeliveries(*request); !s.ok()) return s;
    return outbox_->List(request->subscriber(), request->state(), request->page_size(),
                         request->page_token());
  };
  FinishWith(reactor, response, run());
  return reactor;
}

grpc::ServerUnaryReactor* DeliveryAdminServiceImpl::RetryDeliveries(
    grpc::CallbackServerContext* context, const tellonce::v1::RetryDeliveriesRequest* request,
    tellonce::v1::RetryDeliveriesResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::string> admin = AuthorizeAgency(*context, *directory_->Current(),
                                                      tellonce::v1::ADMIN, "DeliveryAdminService");
  auto run = [&]() -> absl::StatusOr<int> {
    if (!admin.ok()) return admin.status();
    if (absl::Status s = ValidateRetryDeliveries(*request); !s.ok()) return s;
    return outbox_->Retry(
        std::vector<std::string>(request->delivery_ids().begin(), request->delivery_ids().end()),
        request->subscriber());
  };
  absl::StatusOr<int> requeued = run();
  if (requeued.ok()) response->set_requeued(*requeued);
  reactor->Finish(ToGrpcStatus(requeued.status()));
  return reactor;
}

}  // namespace tellonce::broker
