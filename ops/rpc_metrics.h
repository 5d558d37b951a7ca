#ifndef TELLONCE_OPS_RPC_METRICS_H_
#define TELLONCE_OPS_RPC_METRICS_H_

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "grpcpp/support/server_interceptor.h"
#include "ops/metrics.h"

namespace tellonce::ops {

// gRPC's name of a status code ("OK", "UNAVAILABLE"); "UNKNOWN" outside 0..16.
const char* StatusCodeName(int code);

// Design: RPC metrics for a gRPC server, taken by a server interceptor so that no
// handler has to remember them:
//   tellonce_rpc_requests_total{service,method,code}   calls ended, by status code
//   tellonce_rpc_duration_seconds{service,method}       from arrival to status sent
// Every method of the given services gets its counters (one per status code) and its
// histogram up front, in an immutable table keyed by the method's path
// ("/tellonce.v1.ExchangeService/GetAttributes"); counting a call is a hash lookup in
// that table and three relaxed atomic adds, no lock. Calls to other paths count
// under service="unknown". A call that ends without a status (the client went away)
// counts as CANCELLED.
class RpcMetrics {
 public:
  // Registers the two families in `registry` (not owned, must outlive this), with a
  // child per method of each service (full names, "tellonce.v1.ExchangeService", looked
  // up in the generated descriptor pool; an unknown name is skipped).
  RpcMetrics(MetricsRegistry* registry, const std::vector<std::string>& services);

  // For ServerBuilder::experimental().SetInterceptorCreators. The factory refers to
  // this object, which must outlive the server.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> InterceptorFactory();

  struct Method {
    std::array<Counter*, 17> by_code{};
    Histogram* duration = nullptr;
  };
  // The entry for a method path; the "unknown" one when the path is not served.
  const Method& Find(const char* path) const;

 private:
  absl::flat_hash_map<std::string, Method> methods_;
  Method unknown_;
};

}  // namespace tellonce::ops

#endif  // TELLONCE_OPS_RPC_METRICS_H_
