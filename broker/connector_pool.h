#ifndef TELLONCE_BROKER_CONNECTOR_POOL_H_
#define TELLONCE_BROKER_CONNECTOR_POOL_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "broker/circuit_breaker.h"
#include "certs/tls.h"
#include "certs/tls_watch.h"
#include "consent/directory.h"
#include "grpcpp/channel.h"
#include "grpcpp/support/status.h"
#include "ops/metrics.h"
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
// call gets a new channel.
//
// Fetches are batched per connector, without ever waiting for a timer: a fetch goes
// out at once while fewer than `batches_in_flight` batch calls to its connector are
// in flight; otherwise it waits, and when a batch call returns, everything waiting
// goes out together in one FetchAttributesBatch call. Under light load every fetch is
// a batch of one (no added latency); under heavy load one call carries many fetches,
// which costs the broker and the connector a fraction of a call each. A fetch never
// waits past its deadline for a slot: if it would end before every batch in flight,
// it goes out at once on its own. A connector that answers UNIMPLEMENTED to the batch
// call (not built with this SDK) gets one FetchAttributes call per fetch from then
// on.
//
// Isolation: one provider cannot take the broker with it. At most
// `max_fetches_per_provider` fetches per connector are outstanding (waiting or in
// flight); beyond that a fetch fails at once. Each connector has a CircuitBreaker fed
// with every fetch's outcome: after `breaker.failure_threshold` failures in a row
// (unreachable, no answer in time, internal error) fetches fail at once for
// `breaker.cool_down`, then one probe goes out and its success closes the breaker. Its
// state is the gauge tellonce_connector_circuit_open{provider} and one log line per
// change. Refusals made by the pool itself carry kRefusedByBroker as error details and
// a message saying which limit and why. Thread-safe.
class ConnectorPool {
 public:
  struct Options {
    // The broker's identity and the federation CA.
    certs::TlsPaths tls;
    // The broker's watched TLS material, not owned; when set, channels are made from it
    // (new connections follow a reloaded certificate and CRL) instead of from `tls`.
    certs::TlsMaterialWatcher* tls_watcher = nullptr;
    // Longest wait between reconnection attempts to a connector that is down.
    absl::Duration max_reconnect_backoff = absl::Seconds(1);
    // Most fetches in one batch call; 1 turns batching off (one FetchAttributes call
    // per fetch, all sent at once).
    uint32_t max_fetches_per_batch = 64;
    // Batch calls in flight per connector before fetches wait to be batched.
    uint32_t batches_in_flight = 2;
    // Where to count connector calls by provider and outcome, with their latency
    // (not owned; must outlive the pool). Null: not counted.
    ops::MetricsRegistry* metrics = nullptr;
    // Fetches per connector outstanding at once (waiting for a batch slot or in
    // flight); beyond it a fetch fails at once with UNAVAILABLE. Default 512.
    uint32_t max_fetches_per_provider = 512;
    // Circuit breaker per connector (failure_threshold 0: off). Defaults 5 failures in
    // a row, 5 s cool-down. Its on_change is the pool's own.
    CircuitBreaker::Options breaker;
    // A fetch that ran out of time counts as a breaker failure only when it was given
    // at least this long: a consumer that sets tiny deadlines cannot open a healthy
    // provider's breaker for everyone. Default 500 ms.
    absl::Duration breaker_min_timeout = absl::Milliseconds(500);
  };

  // error_details of a status made by the pool itself (a limit or an open breaker),
  // not by the connector: its message is the pool's, and may be shown to consumers.
  static constexpr char kRefusedByBroker[] = "tellonce.broker/refused";

  // What the pool counts, for operators and benchmarks. Monotonic.
  struct Counters {
    std::atomic<uint64_t> fetches{0};
    // Calls made: batch calls plus single FetchAttributes calls.
    std::atomic<uint64_t> calls{0};
    // Fetches refused at once: breaker open, or max_fetches_per_provider reached.
    std::atomic<uint64_t> refused_circuit_open{0};
    std::atomic<uint64_t> refused_provider_limit{0};
  };

  explicit ConnectorPool(Options options);
  // Every fetch must have completed (the broker stops its server first).
  ~ConnectorPool();

  // The stub for `agency_id`'s connector as `directory` describes it. NOT_FOUND when
  // the agency is unknown or has no connector_endpoint; the credential error when the
  // TLS files cannot be loaded.
  absl::StatusOr<std::shared_ptr<tellonce::v1::ConnectorService::Stub>> StubFor(
      const consent::Directory& directory, const std::string& agency_id) ABSL_LOCKS_EXCLUDED(mu_);

  // Gets `done` called exactly once with the connector's answer to `request`, or the
  // error FetchAttributes would have failed with (UNAVAILABLE when the agency has no
  // connector or cannot be reached, DEADLINE_EXCEEDED at `deadline`, the connector's
  // own error for this request), or UNAVAILABLE with kRefusedByBroker details at once
  // when the connector's breaker is open or max_fetches_per_provider are outstanding. `done` runs
  // on a gRPC thread, or on the caller's when the fetch fails at once; it must not block.
  // Thread-safe.
  using FetchDone =
      absl::AnyInvocable<void(const grpc::Status&, tellonce::v1::FetchAttributesResponse)>;
  void Fetch(const consent::Directory& directory, const std::string& agency_id,
             tellonce::v1::FetchAttributesRequest request, absl::Time deadline, FetchDone done)
      ABSL_LOCKS_EXCLUDED(mu_);

  const Counters& counters() const { return counters_; }

  // The breaker state of `agency_id`'s connector; kClosed when it has none yet.
  CircuitBreaker::State BreakerState(const std::string& agency_id) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Pending {
    tellonce::v1::FetchAttributesRequest request;
    absl::Time deadline;
    FetchDone done;
  };
  struct Batch {
    // The earliest deadline of its fetches: the batch call's.
    absl::Time deadline;
    std::vector<Pending> fetches;
  };
  struct Connector {
    std::string agency_id;
    std::string endpoint;
    std::shared_ptr<tellonce::v1::ConnectorService::Stub> stub;
    // Set once the connector answered UNIMPLEMENTED to a batch call.
    std::atomic<bool> batch_unsupported{false};
    // Set while the connector is unreachable: the outage is logged once, when it
    // begins, and its end once.
    std::atomic<bool> down{false};
    // Fetches outstanding (waiting or in flight), for max_fetches_per_provider.
    std::atomic<uint32_t> outstanding{0};
    std::unique_ptr<CircuitBreaker> breaker;
    // 1 while the breaker is open or half-open; null without metrics.
    ops::Gauge* circuit_open = nullptr;
    // Calls by status code, and their latency; null without metrics.
    std::array<ops::Counter*, 17> calls_by_code{};
    ops::Histogram* call_seconds = nullptr;

    absl::Mutex mu;
    // Fetches waiting for a batch slot, oldest first.
    std::deque<Pending> queue ABSL_GUARDED_BY(mu);
    // The deadline of each batch call in flight.
    std::vector<absl::Time> in_flight ABSL_GUARDED_BY(mu);
  };

  // The connector for `agency_id`, made or replaced as for StubFor.
  absl::StatusOr<Connector*> ConnectorFor(const consent::Directory& directory,
                                          const std::string& agency_id) ABSL_LOCKS_EXCLUDED(mu_);
  // Removes from `c`'s queue what may go out now, as batches (each counted in flight)
  // and the fetches whose deadline has passed.
  void TakeSendable(Connector& c, absl::Time now, std::vector<Batch>& batches,
                    std::vector<Pending>& expired);
  // Completes `expired` with DEADLINE_EXCEEDED and sends `batches`, outside c.mu.
  void SendAndExpire(Connector& c, std::vector<Batch> batches, std::vector<Pending> expired);
  void Send(Connector& c, Batch batch);
  // One FetchAttributes call per fetch of `batch`; when `holds_slot`, the batch was
  // counted in flight and its slot is freed after the last call.
  void SendSingly(Connector& c, Batch batch, bool holds_slot = false);
  // A batch call of `c` ended: frees its slot and sends what may go out now.
  void Release(Connector& c, absl::Time deadline);
  // Counts one call to connector `c` that ended with `status` after `started`, and
  // logs an outage's start and end.
  void CallEnded(Connector& c, const grpc::Status& status, absl::Time started);

  Options options_;
  Counters counters_;
  ops::Family<ops::Counter>* calls_family_ = nullptr;
  ops::Family<ops::Histogram>* call_seconds_family_ = nullptr;
  ops::Family<ops::Gauge>* circuit_open_family_ = nullptr;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<Connector>> entries_ ABSL_GUARDED_BY(mu_);
  // Connectors replaced after an endpoint change: kept until the pool goes, so calls
  // still in flight on them never drop a channel's last reference on a gRPC thread.
  std::vector<std::unique_ptr<Connector>> retired_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tellonce::broker

#endif  // TELLONCE_BROKER_CONNECTOR_POOL_H_
