#include "broker/notification_service.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/authz.h"
#include "proto/grpc_status.h"

namespace tellonce::broker {

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
  std::shared_ptr<const consent::Directory> directory = directory_->Current();
  absl::StatusOr<std::string> agency =
      AuthenticateAgency(*context, *directory, "DeliveryAdminService");
  if (!agency.ok()) {
    reactor->Finish(ToGrpcStatus(agency.status()));
    return reactor;
  }
  FinishWith(reactor, response, admin_.List(*directory, *agency, *request));
  return reactor;
}

grpc::ServerUnaryReactor* DeliveryAdminServiceImpl::RetryDeliveries(
    grpc::CallbackServerContext* context, const tellonce::v1::RetryDeliveriesRequest* request,
    tellonce::v1::RetryDeliveriesResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::shared_ptr<const consent::Directory> directory = directory_->Current();
  absl::StatusOr<std::string> agency =
      AuthenticateAgency(*context, *directory, "DeliveryAdminService");
  if (!agency.ok()) {
    reactor->Finish(ToGrpcStatus(agency.status()));
    return reactor;
  }
  FinishWith(reactor, response, admin_.Retry(*directory, *agency, *request));
  return reactor;
}

}  // namespace tellonce::broker
