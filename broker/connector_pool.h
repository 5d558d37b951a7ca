#ifndef TELLONCE_BROKER_CONNECTOR_POOL_H_
#define TELLONCE_BROKER_CONNECTOR_POOL_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "certs/tls.h"
#include "consent/directory.h"
#include "grpcpp/channel.h"
#include "tellonce/v1/connector.grpc.pb.h"

namespace tellonce::broker {

// Design: one long-lived mutual TLS channel per agency connector, made on first use
// from the directory's connector_endpoint and kept, so a fetch never pays for a TLS
// handshake. The broker presents its own certificate and accepts only a server
// certificate carrying the agency's SPIFFE id, so a connector cannot be impersonated
// by another agency of the federation. Channels reconnect by themselves with a short
// back-off (at most `max_reconnect_backoff`), and calls on them are fail-fast: while a
// connector is down, a call fails at once with UNAVAILABLE instead of waiting for its
// deadline. When a reloaded directory moves an agency to another endpoint, the next
// call gets a new channel. Thread-safe.
class ConnectorPool {
 public:
  struct Options {
    // The broker's identity and the federation CA.
    certs::TlsPaths tls;
    // Longest wait between reconnection attempts to a connector that is down.
    absl::Duration max_reconnect_backoff = absl::Seconds(1);
  };
  explicit ConnectorPool(Options options) : options_(std::move(options)) {}

  // The stub for `agency_id`'s connector as `directory` describes it. NOT_FOUND when
  // the agency is unknown or has no connector_endpoint; the credential error when the
  // TLS files cannot be loaded.
  absl::StatusOr<std::shared_ptr<tellonce::v1::ConnectorService::Stub>> StubFor(
      const consent::Directory& directory, const std::string& agency_id) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    std::string endpoint;
    std::shared_ptr<tellonce::v1::ConnectorService::Stub> stub;
  };

  Options options_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tellonce::broker

#endif  // TELLONCE_BROKER_CONNECTOR_POOL_H_
