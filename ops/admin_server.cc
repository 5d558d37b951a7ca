#include "ops/admin_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "proto/identifiers.h"

namespace tellonce::ops {

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::Start(Options options) {
  const std::optional<HostPort> address = ParseHostPort(options.address);
  if (!address.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("admin.listen_address: must be host:port, got \"", options.address, "\""));
  }
  const std::string host(address->host);
  int port = static_cast<int>(address->port);

  std::unique_ptr<AdminServer> admin(new AdminServer);
  admin->options_ = std::move(options);
  admin->server_ = std::make_unique<httplib::Server>();
  httplib::Server& http = *admin->server_;
  // Scrapes and probes are small and rare: two threads, short timeouts, so a stalled
  // client cannot hold the listener.
  http.new_task_queue = [] { return new httplib::ThreadPool(2); };
  http.set_read_timeout(5, 0);
  http.set_write_timeout(5, 0);
  http.set_keep_alive_max_count(100);
  http.set_payload_max_length(1024);
  // httplib's default sets SO_REUSEPORT, which would let a second broker bind the same
  // port and silently take half the scrapes. SO_REUSEADDR only: restarts still rebind
  // at once, a second process fails to start.
  http.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });

  const MetricsRegistry* metrics = admin->options_.metrics;
  http.Get("/metrics", [metrics](const httplib::Request&, httplib::Response& res) {
    if (metrics == nullptr) {
      res.status = 404;
      res.set_content("no metrics\n", "text/plain; charset=utf-8");
      return;
    }
    res.set_content(metrics->Render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  http.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain; charset=utf-8");
  });
  auto not_ready = admin->options_.not_ready;
  http.Get("/readyz", [not_ready](const httplib::Request&, httplib::Response& res) {
    std::vector<std::string> reasons;
    if (not_ready) reasons = not_ready();
    if (reasons.empty()) {
      res.set_content("ready\n", "text/plain; charset=utf-8");
    } else {
      res.status = 503;
      res.set_content(absl::StrCat("not ready\n", absl::StrJoin(reasons, "\n"), "\n"),
                      "text/plain; charset=utf-8");
    }
  });
  auto method_not_allowed = [](const httplib::Request&, httplib::Response& res) {
    res.status = 405;
    res.set_content("only GET is served here\n", "text/plain; charset=utf-8");
  };
  for (const char* path : {"/metrics", "/healthz", "/readyz"}) {
    http.Post(path, method_not_allowed);
    http.Put(path, method_not_allowed);
    http.Delete(path, method_not_allowed);
    http.Patch(path, method_not_allowed);
  }

  if (port == 0) {
    port = http.bind_to_any_port(host);
    if (port <= 0) port = -1;
  } else if (!http.bind_to_port(host, port)) {
    port = -1;
  }
  if (port < 0) {
    return absl::UnavailableError(
        absl::StrCat("admin.listen_address: cannot listen on ", admin->options_.address));
  }
  admin->port_ = port;
  auto ended = std::make_shared<std::atomic<bool>>(false);
  admin->thread_ = std::thread([&http, ended] {
    http.listen_after_bind();
    ended->store(true);
  });
  // httplib's stop() does nothing until the listening loop has begun; wait for it, so
  // that destroying the server right after Start cannot leave the loop running.
  while (!http.is_running() && !ended->load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return admin;
}

AdminServer::~AdminServer() {
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace tellonce::ops
