#ifndef TELLONCE_OPS_ADMIN_SERVER_H_
#define TELLONCE_OPS_ADMIN_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "ops/metrics.h"

namespace httplib {
class Server;
}

namespace tellonce::ops {

// Design: the admin listener of a tellonce program, plain HTTP (cpp-httplib from
// Debian), apart from the mutual-TLS port, so that Prometheus, a load balancer or a
// kubelet can watch the process without a federation certificate. It serves only
// what holds no citizen data:
//   GET /metrics  the registry's exposition, text format 0.0.4
//   GET /healthz  200 "ok" while the process serves HTTP at all
//   GET /readyz   200 "ready" when `not_ready` returns nothing; otherwise 503 with one
//                 reason per line (database closed, directory not loaded, CRL expired)
// Anything else is 404; methods other than GET (and HEAD) are 405. Requests are served
// on a small thread pool of its own, never on the program's gRPC threads.
class AdminServer {
 public:
  struct Options {
    // host:port; port 0 picks a free one. Loopback by default in every config.
    std::string address;
    // Not owned; must outlive the server.
    const MetricsRegistry* metrics = nullptr;
    // Reasons the program is not ready; empty when ready. Called per /readyz request,
    // from the server's threads: must be thread-safe and quick.
    std::function<std::vector<std::string>()> not_ready;
  };

  // Binds and starts serving. INVALID_ARGUMENT for a malformed address, UNAVAILABLE
  // naming the address when it cannot be bound.
  static absl::StatusOr<std::unique_ptr<AdminServer>> Start(Options options);
  // Stops serving and joins the server's threads.
  ~AdminServer();

  int port() const { return port_; }

 private:
  AdminServer() = default;

  Options options_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace tellonce::ops

#endif  // TELLONCE_OPS_ADMIN_SERVER_H_
