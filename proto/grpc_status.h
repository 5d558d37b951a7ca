#ifndef TELLONCE_PROTO_GRPC_STATUS_H_
#define TELLONCE_PROTO_GRPC_STATUS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/support/server_callback.h"
#include "grpcpp/support/status.h"

namespace tellonce {

// The one place where absl::Status becomes grpc::Status, for every server in the tree
// (the broker's services, the connector SDK). Codes map one to one (both follow
// google.rpc.Code); the message is passed through, so it must already be fit for a
// client (field and reason, no citizen data).
grpc::Status ToGrpcStatus(const absl::Status& status);

// Finishes a unary callback reactor with `result`: the value moved into `response` and
// OK, or the error converted by ToGrpcStatus.
template <typename Response>
void FinishWith(grpc::ServerUnaryReactor* reactor, Response* response,
                absl::StatusOr<Response> result) {
  if (result.ok()) *response = *std::move(result);
  reactor->Finish(ToGrpcStatus(result.status()));
}

}  // namespace tellonce

#endif  // TELLONCE_PROTO_GRPC_STATUS_H_
