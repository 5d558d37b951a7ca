#include "broker/exchange_service.h"

#include <cstdint>
#include <utility>

#include "broker/authz.h"
#include "proto/grpc_status.h"

namespace tellonce::broker {

grpc::ServerUnaryReactor* ExchangeServiceImpl::GetAttributes(
    grpc::CallbackServerContext* context, const tellonce::v1::GetAttributesRequest* request,
    tellonce::v1::GetAttributesResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::shared_ptr<const consent::Directory> directory = directory_->Current();
  absl::StatusOr<std::string> consumer =
      AuthorizeAgency(*context, *directory, tellonce::v1::CONSUMER, "ExchangeService");
  if (!consumer.ok()) {
    reactor->Finish(ToGrpcStatus(consumer.status()));
    return reactor;
  }
  // gRPC marks "no deadline" with an infinite time.
  const absl::Time deadline = context->raw_deadline().tv_sec == INT64_MAX
                                  ? absl::InfiniteFuture()
                                  : absl::FromChrono(context->deadline());
  exchange_->GetAttributes(
      *consumer, *request, deadline,
      [reactor, response](absl::StatusOr<tellonce::v1::GetAttributesResponse> result) {
        FinishWith(reactor, response, std::move(result));
      },
      std::move(directory));
  return reactor;
}

}  // namespace tellonce::broker
