// notify_load: "tell us once" under load. Runs subscriber connectors in-process (one
// mutual-TLS ConnectorService server per subscriber agency, answering DeliverChange at
// once), publishes changes to the broker as a provider, and measures how fast each
// change reaches every subscriber. Reports numbers; decides nothing (see scripts/bench).
//
//   notify_load --broker HOST:PORT --pki DIR --publisher registry
//               --subscribers sub-0=PORT,sub-1=PORT,... [--concurrency 8] [--seconds 10]
//               [--warmup 2] [--citizens 100000] [--citizen-stride 1]
//               [--pid NAME=PID]...
//
// DIR is a make-dev-pki output: ca.pem and agencies/<id>.pem|key for the publisher and
// every subscriber. The broker's directory must list each subscriber with that
// connector_endpoint, a subscription to ADDRESS_CHANGED and a basis for person.address
// (scripts/bench gives each a mandate), and the publisher as its provider.
//
// Closed loop over whole deliveries: --concurrency changes in flight; a change is done
// when every subscriber has acknowledged it, and then the next one is published. Each
// change is about another citizen. Reports changes/s fully delivered, deliveries/s,
// PublishChange latency and publish-to-last-acknowledgement latency (p50/p99), from
// changes published within the window after --warmup.

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "certs/identity.h"
#include "certs/tls.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "proto/textproto.h"
#include "tellonce/v1/connector.grpc.pb.h"
#include "tellonce/v1/notification.grpc.pb.h"
#include "tests/bench/flags.h"
#include "tests/bench/in_flight.h"
#include "tests/bench/latency.h"
#include "tests/bench/process_cpu.h"
#include "tests/bench/synthetic.h"

namespace {

using Clock = std::chrono::steady_clock;
using tellonce::bench::LatencyHistogram;

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

struct Flags {
  std::string broker, pki, publisher = "registry";
  std::vector<std::pair<std::string, int>> subscribers;  // agency id, port
  int concurrency = 8;
  double seconds = 10;
  double warmup = 2;
  int64_t citizens = 100000;
  int64_t citizen_stride = 1;
  std::vector<tellonce::bench::ProcessGroup> pids;
};

// The changes in flight and what each subscriber has acknowledged. Thread-safe.
class Deliveries {
 public:
  using Complete = std::function<void(int worker)>;
  Deliveries(size_t subscribers, int64_t from, int64_t to, Complete complete)
      : all_((uint64_t{1} << subscribers) - 1),
        from_(from),
        to_(to),
        complete_(std::move(complete)) {}

  void Published(const std::string& event_id, int64_t start, int worker) {
    std::lock_guard<std::mutex> lock(mu_);
    pending_[event_id] = Pending{start, 0, worker};
  }

  void PublishAnswered(int64_t start, bool ok) {
    if (start < from_ || start >= to_) return;
    if (ok) {
      publish_.Record(Now() - start);
    } else {
      errors_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  // A publish failed: the change will never be delivered; the worker moves on.
  void Abandon(const std::string& event_id) {
    int worker;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = pending_.find(event_id);
      if (it == pending_.end()) return;
      worker = it->second.worker;
      pending_.erase(it);
    }
    complete_(worker);
  }

  void Acknowledged(size_t subscriber, const std::string& event_id) {
    int64_t start;
    int worker;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = pending_.find(event_id);
      if (it == pending_.end()) {
        ++strays_;  // a redelivery, or left over from an earlier run
        return;
      }
      it->second.acked |= uint64_t{1} << subscriber;
      if (it->second.acked != all_) return;
      start = it->second.start;
      worker = it->second.worker;
      pending_.erase(it);
    }
    if (start >= from_ && start < to_) last_ack_.Record(Now() - start);
    complete_(worker);
  }

  const LatencyHistogram& publish() const { return publish_; }
  const LatencyHistogram& last_ack() const { return last_ack_; }
  int64_t errors() const { return errors_.load(); }
  int64_t strays() {
    std::lock_guard<std::mutex> lock(mu_);
    return strays_;
  }
  size_t pending() {
    std::lock_guard<std::mutex> lock(mu_);
    return pending_.size();
  }

 private:
  struct Pending {
    int64_t start;
    uint64_t acked;
    int worker;
  };
  const uint64_t all_;
  const int64_t from_, to_;
  const Complete complete_;
  std::mutex mu_;
  absl::flat_hash_map<std::string, Pending> pending_;
  int64_t strays_ = 0;
  LatencyHistogram publish_, last_ack_;
  std::atomic<int64_t> errors_{0};
};

// One subscriber agency's connector: acknowledges every DeliverChange at once.
class Subscriber final : public tellonce::v1::ConnectorService::CallbackService {
 public:
  Subscriber(size_t index, Deliveries* deliveries) : index_(index), deliveries_(deliveries) {}

  grpc::ServerUnaryReactor* DeliverChange(grpc::CallbackServerContext* context,
                                          const tellonce::v1::DeliverChangeRequest* request,
                                          tellonce::v1::DeliverChangeResponse*) override {
    deliveries_->Acknowledged(index_, request->event_id());
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  const size_t index_;
  Deliveries* const deliveries_;
};

// "sub-0=PORT,sub-1=PORT,..." -> (agency id, port) pairs.
bool ParseSubscribers(const std::string& value, std::vector<std::pair<std::string, int>>* out) {
  for (absl::string_view item : absl::StrSplit(value, ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
    int n = 0;
    if (kv.first.empty() || !absl::SimpleAtoi(kv.second, &n)) return false;
    out->emplace_back(kv.first, n);
  }
  return !out->empty();
}

}  // namespace

int main(int argc, char** argv) {
  constexpr char kUsage[] =
      "usage: notify_load --broker HOST:PORT --pki DIR --subscribers ID=PORT,... "
      "[--publisher registry] [--concurrency 8] [--seconds 10] [--warmup 2] "
      "[--citizens 100000] [--citizen-stride 1] [--pid NAME=PID[,PID...]]...\n";
  Flags flags;
  using tellonce::bench::Number;
  using tellonce::bench::Text;
  if (!tellonce::bench::ParseFlags(
          argc, argv,
          {{"--broker", Text(&flags.broker)},
           {"--pki", Text(&flags.pki)},
           {"--publisher", Text(&flags.publisher)},
           {"--subscribers",
            [&](const std::string& v) { return ParseSubscribers(v, &flags.subscribers); }},
           {"--pid", tellonce::bench::ProcessGroups(&flags.pids)},
           {"--concurrency", Number(&flags.concurrency)},
           {"--seconds", Number(&flags.seconds)},
           {"--warmup", Number(&flags.warmup)},
           {"--citizens", Number(&flags.citizens)},
           {"--citizen-stride", Number(&flags.citizen_stride)}},
          kUsage)) {
    return 2;
  }
  if (flags.broker.empty() || flags.pki.empty() || flags.subscribers.empty() ||
      flags.subscribers.size() > 64 || flags.concurrency < 1 || flags.seconds <= 0) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  auto tls = [&](const std::string& agency) {
    return tellonce::certs::TlsPaths{flags.pki + "/ca.pem",
                                     flags.pki + "/agencies/" + agency + ".pem",
                                     flags.pki + "/agencies/" + agency + ".key", ""};
  };

  const int64_t begin = Now();
  const int64_t from = begin + static_cast<int64_t>(flags.warmup * 1e9);
  const int64_t to = from + static_cast<int64_t>(flags.seconds * 1e9);

  // Publishing: worker w publishes change after change until the window ends.
  absl::StatusOr<std::string> pem = tellonce::ReadFileToString(tls(flags.publisher).cert_file);
  absl::StatusOr<tellonce::certs::SpiffeId> self =
      pem.ok() ? tellonce::certs::CertificateSpiffeId(*pem)
               : absl::StatusOr<tellonce::certs::SpiffeId>(pem.status());
  if (!self.ok()) {
    std::fprintf(stderr, "notify_load: %s\n", self.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      tellonce::certs::MakeChannelCredentials(tls(flags.publisher),
                                              tellonce::certs::BrokerSpiffeId(self->trust_domain));
  if (!creds.ok()) {
    std::fprintf(stderr, "notify_load: %s\n", creds.status().ToString().c_str());
    return 1;
  }
  auto stub = tellonce::v1::NotificationService::NewStub(grpc::CreateChannel(flags.broker, *creds));
  const std::string run = absl::StrCat(getpid(), "-", absl::ToUnixSeconds(absl::Now()));
  std::atomic<int64_t> next{0};
  tellonce::bench::InFlight workers;

  std::function<void(int)> publish;
  Deliveries deliveries(flags.subscribers.size(), from, to, [&](int w) { publish(w); });
  publish = [&](int worker) {
    const int64_t start = Now();
    if (start >= to) {
      workers.Done();
      return;
    }
    const int64_t n = next.fetch_add(1);
    struct Call {
      grpc::ClientContext context;
      tellonce::v1::PublishChangeRequest request;
      tellonce::v1::PublishChangeResponse response;
    };
    auto* call = new Call;
    call->request.set_event_id(absl::StrCat("bench-", run, "-", n));
    call->request.set_citizen_id(
        tellonce::bench::CitizenId((n % flags.citizens) * flags.citizen_stride));
    call->request.set_event_type("ADDRESS_CHANGED");
    call->request.add_attributes("person.address");
    *call->request.mutable_occurred_at() =
        google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::GetCurrentTimeNanos());
    call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    deliveries.Published(call->request.event_id(), start, worker);
    stub->async()->PublishChange(
        &call->context, &call->request, &call->response, [&, call, start](grpc::Status status) {
          deliveries.PublishAnswered(start, status.ok());
          if (!status.ok()) {
            std::fprintf(stderr, "notify_load: publish: %s\n", status.error_message().c_str());
            deliveries.Abandon(call->request.event_id());
          }
          delete call;
        });
  };

  // The subscribers' connectors, up before anything is published.
  std::vector<std::unique_ptr<Subscriber>> services;
  std::vector<std::unique_ptr<grpc::Server>> servers;
  for (size_t i = 0; i < flags.subscribers.size(); ++i) {
    const auto& [agency, port] = flags.subscribers[i];
    absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> server_creds =
        tellonce::certs::MakeServerCredentials(tls(agency));
    if (!server_creds.ok()) {
      std::fprintf(stderr, "notify_load: %s: %s\n", agency.c_str(),
                   server_creds.status().ToString().c_str());
      return 1;
    }
    services.push_back(std::make_unique<Subscriber>(i, &deliveries));
    grpc::ServerBuilder builder;
    builder.AddListeningPort(absl::StrCat("127.0.0.1:", port), *server_creds);
    builder.RegisterService(services.back().get());
    servers.push_back(builder.BuildAndStart());
    if (servers.back() == nullptr) {
      std::fprintf(stderr, "notify_load: cannot listen on port %d for %s\n", port, agency.c_str());
      return 1;
    }
  }

  using tellonce::bench::ProcessCpuSeconds;
  std::thread cpu_watch([&] {
    std::this_thread::sleep_for(std::chrono::nanoseconds(from - Now()));
    for (tellonce::bench::ProcessGroup& g : flags.pids) g.start_seconds = ProcessCpuSeconds(g.pids);
  });
  for (int w = 0; w < flags.concurrency; ++w) {
    workers.Add();
    publish(w);
  }
  cpu_watch.join();
  std::this_thread::sleep_for(std::chrono::nanoseconds(std::max<int64_t>(0, to - Now())));
  std::vector<double> cpu_used;
  for (const tellonce::bench::ProcessGroup& g : flags.pids) {
    const double now = ProcessCpuSeconds(g.pids);
    cpu_used.push_back(now < 0 || g.start_seconds < 0 ? -1 : now - g.start_seconds);
  }
  // Let the changes still in flight finish (a change that never completes is counted).
  const int64_t give_up = Now() + 15'000'000'000;
  while (deliveries.pending() > 0 && Now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const size_t unfinished = deliveries.pending();
  if (unfinished == 0) workers.WaitForNone().IgnoreError();

  const uint64_t done = deliveries.last_ack().count();
  std::string line = absl::StrFormat(
      "notify_load subscribers=%d concurrency=%d seconds=%.1f changes=%d per_second=%.0f "
      "deliveries_per_second=%.0f publish_p50_ms=%.3f publish_p99_ms=%.3f "
      "last_ack_p50_ms=%.3f last_ack_p99_ms=%.3f errors=%d unfinished=%d strays=%d",
      flags.subscribers.size(), flags.concurrency, flags.seconds, done, done / flags.seconds,
      done * flags.subscribers.size() / flags.seconds, deliveries.publish().Percentile(0.5) / 1e6,
      deliveries.publish().Percentile(0.99) / 1e6, deliveries.last_ack().Percentile(0.5) / 1e6,
      deliveries.last_ack().Percentile(0.99) / 1e6, deliveries.errors(), unfinished,
      deliveries.strays());
  for (size_t i = 0; i < flags.pids.size(); ++i) {
    absl::StrAppendFormat(&line, " cpu_us_per_change.%s=%.1f", flags.pids[i].name,
                          cpu_used[i] < 0 || done == 0 ? -1 : cpu_used[i] / done * 1e6);
  }
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  for (auto& s : servers) s->Shutdown(std::chrono::system_clock::now());
  // Unfinished changes leave workers waiting forever; exit without joining them.
  std::_Exit(0);
}
