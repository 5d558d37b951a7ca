#include "broker/connector_pool.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "certs/identity.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/support/channel_arguments.h"
#include "ops/log.h"
#include "ops/rpc_metrics.h"

namespace tellonce::broker {
namespace {

// A fetch joins a batch whose deadline is at most this much earlier than its own: it
// may be given up this much sooner than it had to be, never later.
constexpr absl::Duration kDeadlineSlack = absl::Milliseconds(50);
// Serialized requests per batch call; the SDK's connectors accept 64 KiB.
constexpr size_t kMaxBatchBytes = 48 * 1024;
// Largest answer accepted from a connector: a full batch of large values fits.
constexpr int kMaxAnswerBytes = 16 << 20;

grpc::Status OutcomeStatus(const tellonce::v1::FetchOutcome& outcome) {
  const int code = outcome.code();
  if (code < 0 || code > grpc::StatusCode::UNAUTHENTICATED) {
    return grpc::Status(grpc::StatusCode::UNKNOWN,
                        absl::StrCat("the connector answered status code ", code));
  }
  return grpc::Status(static_cast<grpc::StatusCode>(code), outcome.message());
}

// Whether a fetch that ended with `status`, having been given `allowed`, tells that
// the connector is failing (rather than answering, even with an error about the
// request).
bool IsConnectorFailure(const grpc::Status& status, absl::Duration allowed,
                        absl::Duration min_timeout) {
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::DATA_LOSS:
      return true;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return allowed >= min_timeout;
    default:
      return false;
  }
}

}  // namespace

ConnectorPool::ConnectorPool(Options options) : options_(std::move(options)) {
  if (options_.metrics != nullptr) {
    calls_family_ = &options_.metrics->AddCounter(
        "tellonce_connector_calls_total",
        "Calls to agency connectors (fetches, batches of fetches), by provider and status code.",
        {"provider", "code"});
    call_seconds_family_ = &options_.metrics->AddHistogram(
        "tellonce_connector_call_duration_seconds",
        "Latency of calls to agency connectors, by provider.", {"provider"}, ops::LatencyBuckets());
    circuit_open_family_ = &options_.metrics->AddGauge(
        "tellonce_connector_circuit_open",
        "1 while the circuit breaker of a provider's connector is open or half-open (calls "
        "to it fail at once), else 0.",
        {"provider"});
  }
}

CircuitBreaker::State ConnectorPool::BreakerState(const std::string& agency_id) const {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(agency_id);
  if (it == entries_.end()) return CircuitBreaker::State::kClosed;
  return it->second->breaker->state();
}

ConnectorPool::~ConnectorPool() = default;

void ConnectorPool::CallEnded(Connector& c, const grpc::Status& status, absl::Time started) {
  const int code = static_cast<int>(status.error_code());
  if (c.call_seconds != nullptr) {
    c.calls_by_code[code >= 0 && code < 17 ? code : 2]->Add();
    c.call_seconds->Observe(absl::ToDoubleSeconds(absl::Now() - started));
  }
  // UNAVAILABLE is the transport's word for "cannot reach it"; any answer at all means
  // the connector is there.
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    if (!c.down.exchange(true, std::memory_order_relaxed)) {
      ops::LogWarning("connector unreachable; calls to it fail until it is back",
                      {{"provider", c.agency_id},
                       {"endpoint", c.endpoint},
                       {"error", status.error_message().substr(0, 200)}});
    }
  } else if (c.down.load(std::memory_order_relaxed) &&
             c.down.exchange(false, std::memory_order_relaxed)) {
    ops::LogInfo("connector reachable again",
                 {{"provider", c.agency_id}, {"endpoint", c.endpoint}});
  }
}

absl::StatusOr<ConnectorPool::Connector*> ConnectorPool::ConnectorFor(
    const consent::Directory& directory, const std::string& agency_id) {
  const tellonce::v1::Agency* agency = directory.FindAgency(agency_id);
  if (agency == nullptr || agency->connector_endpoint().empty()) {
    return absl::NotFoundError(absl::StrCat("agency ", agency_id, " has no connector"));
  }
  const std::string& endpoint = agency->connector_endpoint();
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(agency_id);
  if (it != entries_.end() && it->second->endpoint == endpoint) return it->second.get();

  const std::string agency_spiffe_id = certs::AgencySpiffeId(directory.trust_domain(), agency_id);
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      options_.tls_watcher != nullptr
          ? options_.tls_watcher->ChannelCredentials(agency_spiffe_id)
          : certs::MakeChannelCredentials(options_.tls, agency_spiffe_id);
  if (!credentials.ok()) return credentials.status();
  grpc::ChannelArguments args;
  const int backoff_ms =
      static_cast<int>(absl::ToInt64Milliseconds(options_.max_reconnect_backoff));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, std::min(100, backoff_ms));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, backoff_ms);
  // gRPC uses the "minimum reconnect back-off" as the minimum time a connection
  // attempt (TCP and TLS handshake) may take; too small and a slow handshake under load
  // is abandoned and retried forever. A refused connection still fails at once.
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 5000);
  // Notice a connector that vanished without closing its connections.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 20000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  // A channel of its own per connector, not shared through gRPC's global pool.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(kMaxAnswerBytes);
  auto connector = std::make_unique<Connector>();
  connector->agency_id = agency_id;
  connector->endpoint = endpoint;
  if (calls_family_ != nullptr) {
    for (int code = 0; code < 17; ++code) {
      connector->calls_by_code[code] = &calls_family_->With({agency_id, ops::StatusCodeName(code)});
    }
    connector->call_seconds = &call_seconds_family_->With({agency_id});
    connector->circuit_open = &circuit_open_family_->With({agency_id});
    connector->circuit_open->Set(0);
  }
  CircuitBreaker::Options breaker = options_.breaker;
  breaker.on_change = [c = connector.get(), threshold = breaker.failure_threshold,
                       cool_down = breaker.cool_down](CircuitBreaker::State from,
                                                      CircuitBreaker::State to) {
    if (c->circuit_open != nullptr) {
      c->circuit_open->Set(to == CircuitBreaker::State::kClosed ? 0 : 1);
    }
    // One WARN when an outage opens the breaker, one INFO when a probe closes it; the
    // probes in between are DEBUG.
    const std::string provider = c->agency_id;
    if (from == CircuitBreaker::State::kClosed) {
      ops::LogWarning(
          "circuit breaker open: calls to the provider fail at once until a probe "
          "succeeds",
          {{"provider", provider},
           {"failures_in_a_row", absl::StrCat(threshold)},
           {"cool_down", absl::FormatDuration(cool_down)}});
    } else if (to == CircuitBreaker::State::kClosed) {
      ops::LogInfo("circuit breaker closed: the provider answers again", {{"provider", provider}});
    } else {
      ops::Log(ops::LogLevel::kDebug,
               to == CircuitBreaker::State::kHalfOpen ? "circuit breaker half-open: one probe"
                                                      : "circuit breaker probe failed: open again",
               {{"provider", provider}});
    }
  };
  connector->breaker = std::make_unique<CircuitBreaker>(std::move(breaker));
  connector->stub =
      std::shared_ptr<tellonce::v1::ConnectorService::Stub>(tellonce::v1::ConnectorService::NewStub(
          grpc::CreateCustomChannel(endpoint, *credentials, args)));
  Connector* made = connector.get();
  if (it == entries_.end()) {
    entries_.emplace(agency_id, std::move(connector));
  } else {
    retired_.push_back(std::move(it->second));
    it->second = std::move(connector);
  }
  return made;
}

absl::StatusOr<std::shared_ptr<tellonce::v1::ConnectorService::Stub>> ConnectorPool::StubFor(
    const consent::Directory& directory, const std::string& agency_id) {
  absl::StatusOr<Connector*> connector = ConnectorFor(directory, agency_id);
  if (!connector.ok()) return connector.status();
  return (*connector)->stub;
}

void ConnectorPool::Fetch(const consent::Directory& directory, const std::string& agency_id,
                          tellonce::v1::FetchAttributesRequest request, absl::Time deadline,
                          FetchDone done) {
  counters_.fetches.fetch_add(1, std::memory_order_relaxed);
  absl::StatusOr<Connector*> connector = ConnectorFor(directory, agency_id);
  if (!connector.ok()) {
    done(grpc::Status(grpc::StatusCode::UNAVAILABLE, "no connector"), {});
    return;
  }
  Connector& c = **connector;
  if (c.outstanding.fetch_add(1, std::memory_order_relaxed) >= options_.max_fetches_per_provider) {
    c.outstanding.fetch_sub(1, std::memory_order_relaxed);
    counters_.refused_provider_limit.fetch_add(1, std::memory_order_relaxed);
    done(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                      absl::StrCat("the provider has ", options_.max_fetches_per_provider,
                                   " fetches in progress (exchange.max_fetches_per_provider); "
                                   "retry later"),
                      kRefusedByBroker),
         {});
    return;
  }
  if (!c.breaker->Allow()) {
    c.outstanding.fetch_sub(1, std::memory_order_relaxed);
    counters_.refused_circuit_open.fetch_add(1, std::memory_order_relaxed);
    done(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                      absl::StrCat("circuit breaker open: the provider's connector failed ",
                                   options_.breaker.failure_threshold,
                                   " times in a row; calls fail at once until a probe succeeds"),
                      kRefusedByBroker),
         {});
    return;
  }
  // Every fetch let out reports its outcome to the breaker and frees its place.
  done = [this, &c, allowed = deadline - absl::Now(), done = std::move(done)](
             const grpc::Status& status, tellonce::v1::FetchAttributesResponse response) mutable {
    c.outstanding.fetch_sub(1, std::memory_order_relaxed);
    if (IsConnectorFailure(status, allowed, options_.breaker_min_timeout)) {
      c.breaker->RecordFailure();
    } else {
      c.breaker->RecordSuccess();
    }
    done(status, std::move(response));
  };
  if (options_.max_fetches_per_batch <= 1) {
    Batch single{.deadline = deadline, .fetches = {}};
    single.fetches.push_back(Pending{std::move(request), deadline, std::move(done)});
    SendSingly(c, std::move(single));
    return;
  }
  std::vector<Batch> batches;
  std::vector<Pending> expired;
  {
    absl::MutexLock lock(&c.mu);
    c.queue.push_back(Pending{std::move(request), deadline, std::move(done)});
    TakeSendable(c, absl::Now(), batches, expired);
  }
  SendAndExpire(c, std::move(batches), std::move(expired));
}

void ConnectorPool::TakeSendable(Connector& c, absl::Time now, std::vector<Batch>& batches,
                                 std::vector<Pending>& expired) {
  c.mu.AssertHeld();
  for (auto it = c.queue.begin(); it != c.queue.end();) {
    if (it->deadline <= now) {
      expired.push_back(std::move(*it));
      it = c.queue.erase(it);
    } else {
      ++it;
    }
  }
  while (!c.queue.empty()) {
    // The fetch that seeds the next batch: the oldest while a slot is free, else one
    // that would end before every batch in flight (it must not wait for them).
    size_t seed = 0;
    if (c.in_flight.size() >= options_.batches_in_flight) {
      const absl::Time first_end = *std::min_element(c.in_flight.begin(), c.in_flight.end());
      while (seed < c.queue.size() && c.queue[seed].deadline >= first_end) ++seed;
      if (seed == c.queue.size()) break;
    }
    Batch batch{.deadline = c.queue[seed].deadline, .fetches = {}};
    size_t bytes = 0;
    std::deque<Pending> rest;
    for (size_t i = 0; i < c.queue.size(); ++i) {
      Pending& p = c.queue[i];
      const size_t size = p.request.ByteSizeLong();
      const bool joins =
          i == seed ||
          (i > seed && batch.fetches.size() < options_.max_fetches_per_batch &&
           p.deadline >= batch.deadline && p.deadline - batch.deadline <= kDeadlineSlack &&
           bytes + size <= kMaxBatchBytes);
      if (joins) {
        bytes += size;
        batch.fetches.push_back(std::move(p));
      } else {
        rest.push_back(std::move(p));
      }
    }
    c.queue.swap(rest);
    c.in_flight.push_back(batch.deadline);
    batches.push_back(std::move(batch));
  }
}

void ConnectorPool::Release(Connector& c, absl::Time deadline) {
  std::vector<Batch> batches;
  std::vector<Pending> expired;
  {
    absl::MutexLock lock(&c.mu);
    auto it = std::find(c.in_flight.begin(), c.in_flight.end(), deadline);
    if (it != c.in_flight.end()) c.in_flight.erase(it);
    TakeSendable(c, absl::Now(), batches, expired);
  }
  SendAndExpire(c, std::move(batches), std::move(expired));
}

void ConnectorPool::SendAndExpire(Connector& c, std::vector<Batch> batches,
                                  std::vector<Pending> expired) {
  for (Pending& p : expired) {
    p.done(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "deadline passed while waiting"), {});
  }
  for (Batch& b : batches) Send(c, std::move(b));
}

void ConnectorPool::Send(Connector& c, Batch batch) {
  if (c.batch_unsupported.load(std::memory_order_relaxed)) {
    SendSingly(c, std::move(batch), /*holds_slot=*/true);
    return;
  }
  struct BatchCall {
    grpc::ClientContext context;
    tellonce::v1::FetchAttributesBatchRequest request;
    tellonce::v1::FetchAttributesBatchResponse response;
    Batch batch;
    absl::Time started = absl::Now();
  };
  auto call = std::make_unique<BatchCall>();
  call->context.set_deadline(absl::ToChronoTime(batch.deadline));
  call->request.mutable_requests()->Reserve(static_cast<int>(batch.fetches.size()));
  for (Pending& p : batch.fetches) *call->request.add_requests() = std::move(p.request);
  call->batch = std::move(batch);
  counters_.calls.fetch_add(1, std::memory_order_relaxed);
  BatchCall* raw = call.release();
  // The callback holds neither the stub nor the channel: the pool owns them (gRPC 1.51
  // cannot drop a channel's last reference on its own callback thread).
  c.stub->async()->FetchAttributesBatch(
      &raw->context, &raw->request, &raw->response, [this, &c, raw](grpc::Status status) {
        std::unique_ptr<BatchCall> call(raw);
        CallEnded(c, status, call->started);
        Batch batch = std::move(call->batch);
        if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
          // Not a connector of this SDK: one call per fetch, now and from now on.
          c.batch_unsupported.store(true, std::memory_order_relaxed);
          for (size_t i = 0; i < batch.fetches.size(); ++i) {
            batch.fetches[i].request =
                std::move(*call->request.mutable_requests(static_cast<int>(i)));
          }
          call.reset();
          SendSingly(c, std::move(batch), /*holds_slot=*/true);
          return;
        }
        tellonce::v1::FetchAttributesBatchResponse response = std::move(call->response);
        // The call's context goes now, on this thread, before the fetches complete and
        // the broker can shut down (and its channels with it).
        call.reset();
        // What waited goes out before these answers are handled.
        Release(c, batch.deadline);
        const size_t n = batch.fetches.size();
        if (status.ok() && static_cast<size_t>(response.outcomes_size()) != n) {
          status = grpc::Status(grpc::StatusCode::INTERNAL,
                                absl::StrCat("the connector answered ", response.outcomes_size(),
                                             " outcomes to ", n, " requests"));
        }
        for (size_t i = 0; i < n; ++i) {
          if (!status.ok()) {
            batch.fetches[i].done(status, {});
            continue;
          }
          tellonce::v1::FetchOutcome& outcome = *response.mutable_outcomes(static_cast<int>(i));
          batch.fetches[i].done(OutcomeStatus(outcome), std::move(*outcome.mutable_response()));
        }
      });
}

void ConnectorPool::SendSingly(Connector& c, Batch batch, bool holds_slot) {
  struct Single {
    grpc::ClientContext context;
    tellonce::v1::FetchAttributesRequest request;
    tellonce::v1::FetchAttributesResponse response;
    FetchDone done;
    absl::Time started = absl::Now();
  };
  // The batch's slot is freed when its last call ends.
  auto remaining = std::make_shared<std::atomic<size_t>>(batch.fetches.size());
  const absl::Time slot_deadline = batch.deadline;
  for (Pending& p : batch.fetches) {
    auto single = std::make_unique<Single>();
    single->context.set_deadline(absl::ToChronoTime(p.deadline));
    single->request = std::move(p.request);
    single->done = std::move(p.done);
    counters_.calls.fetch_add(1, std::memory_order_relaxed);
    Single* raw = single.release();
    c.stub->async()->FetchAttributes(
        &raw->context, &raw->request, &raw->response,
        [this, &c, raw, remaining, holds_slot, slot_deadline](grpc::Status status) {
          std::unique_ptr<Single> call(raw);
          CallEnded(c, status, call->started);
          FetchDone done = std::move(call->done);
          tellonce::v1::FetchAttributesResponse response = std::move(call->response);
          call.reset();
          if (holds_slot && remaining->fetch_sub(1) == 1) Release(c, slot_deadline);
          done(status, std::move(response));
        });
  }
}

}  // namespace tellonce::broker
