#ifndef TELLONCE_OPS_MALFORMED_REQUEST_H_
#define TELLONCE_OPS_MALFORMED_REQUEST_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "grpcpp/support/server_interceptor.h"

namespace tellonce::ops {

// gRPC 1.51's callback API answers a request whose bytes do not parse as the method's
// request message with UNIMPLEMENTED and an empty message, before any handler runs
// (CallbackUnaryHandler turns a failed deserialization into an unimplemented reactor).
// A client then believes the method does not exist. This server interceptor rewrites
// that status, on the methods of `services` only (full names, looked up in the
// generated descriptor pool), to INVALID_ARGUMENT "request: does not parse as
// <request message type>". The services' own handlers must never answer UNIMPLEMENTED
// themselves (the broker's do not); calls to methods that do not exist keep
// UNIMPLEMENTED. The factory must outlive the server.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MalformedRequestInterceptorFactory(const std::vector<std::string>& services);

}  // namespace tellonce::ops

#endif  // TELLONCE_OPS_MALFORMED_REQUEST_H_
