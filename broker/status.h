#ifndef TELLONCE_BROKER_STATUS_H_
#define TELLONCE_BROKER_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace tellonce::broker {

// The one place where absl::Status becomes grpc::Status. Codes map one to one (both
// follow google.rpc.Code); the message is passed through, so it must already be fit
// for a client (field and reason, no citizen data).
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace tellonce::broker

#endif  // TELLONCE_BROKER_STATUS_H_
