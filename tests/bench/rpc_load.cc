// rpc_load: a load generator for tellonce's unary gRPC calls over mutual TLS, with its
// own client certificate. Reports throughput, latency percentiles, errors and the CPU
// time per call of the processes under test; it decides nothing (see scripts/bench).
//
//   rpc_load --target HOST:PORT[,HOST:PORT...] --rpc fetch|get|grant --ca ca.pem
//            --cert me.pem --key me.key [--server-id spiffe://...]
//            [--concurrency 32 | --rate N] [--seconds 10] [--warmup 2] [--connections 4]
//            [--threads 2] [--citizens N] [--citizen-stride S] [--pid NAME=PID[,PID...]]...
//            [--label TEXT]
//
// RPCs, each GetAttributes-shaped (one citizen, one attribute, purpose
// TAX_DEDUCTION_CHECK, consumer "tax"):
//   fetch  ConnectorService.FetchAttributes of bank.interest_paid, as the broker calls
//          it: to a connector directly (present the broker's certificate) or through a
//          proxy in front of one. Success: the value came back.
//   get    ExchangeService.GetAttributes of bank.interest_paid through the broker
//          (present a consumer's certificate). Success: the result is RESULT_OK.
//   grant  ConsentService.GrantConsent (present a portal's certificate). Success: OK.
// The server must carry --server-id (default: the broker for get/grant, agency "bank"
// for fetch, in the trust domain of --cert).
//
// Closed loop (--concurrency C): C calls in flight, each issuing the next as it ends.
// Open loop (--rate N): a call is scheduled every 1/N s whatever happened to earlier
// ones, and its latency is measured from the scheduled time, not from when it could
// be sent, so a stall is charged to every call it delayed (no coordinated omission).
// Only the window after --warmup counts: closed-loop calls that end in it, open-loop
// calls scheduled in it.
//
// Citizens: call n asks for synthetic citizen (hash(n) mod --citizens) * --citizen-stride
// (tests/bench/synthetic.h), so the calls spread over the citizens that preload_consents
// gave consents and bank records.
//
// CPU: --pid NAME=PID,... reads utime+stime of those processes from /proc at both
// ends of the window and reports cpu_us_per_call.NAME; rpc_load's own is reported as
// cpu_us_per_call.rpc_load. Output is one line of key=value pairs.

#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "certs/citizen_assertion.h"
#include "certs/identity.h"
#include "certs/tls.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/completion_queue.h"
#include "grpcpp/create_channel.h"
#include "proto/textproto.h"
#include "tellonce/v1/connector.grpc.pb.h"
#include "tellonce/v1/consent.grpc.pb.h"
#include "tellonce/v1/exchange.grpc.pb.h"
#include "tests/bench/flags.h"
#include "tests/bench/in_flight.h"
#include "tests/bench/latency.h"
#include "tests/bench/process_cpu.h"
#include "tests/bench/synthetic.h"

namespace {

using Clock = std::chrono::steady_clock;
using tellonce::bench::LatencyHistogram;

constexpr char kAttribute[] = "bank.interest_paid";
constexpr char kConsumer[] = "tax";
constexpr char kPurpose[] = "TAX_DEDUCTION_CHECK";

int64_t Nanos(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

using tellonce::bench::ProcessCpuSeconds;
using tellonce::bench::ProcessGroup;

double SelfCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// splitmix64: spreads call numbers over the citizens without a shared generator.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Issues one call of the configured RPC. Thread-safe.
class Caller {
 public:
  using Done = std::function<void(absl::Status)>;
  virtual ~Caller() = default;
  // Starts call `n` on connection `connection`; `done` runs on a gRPC thread with OK
  // when the call succeeded as the RPC's description above says.
  virtual void Issue(int64_t n, size_t connection, Clock::time_point deadline, Done done) = 0;
};

// A Caller for one unary RPC of `Service` over gRPC's completion-queue API: one
// completion queue per polling thread (gRPC's own qps benchmark client does the same;
// on this 2-core machine it needs about a third less CPU per call than the callback
// API, CPU the server under test gets instead). `prepare` is the stub's
// PrepareAsync<Method>, `fill` writes request n, `check` judges the response of a call
// whose status was OK.
template <typename Service, typename Request, typename Response>
class UnaryCaller final : public Caller {
 public:
  using Stub = typename Service::Stub;
  using Prepare = std::function<std::unique_ptr<grpc::ClientAsyncResponseReader<Response>>(
      Stub&, grpc::ClientContext*, const Request&, grpc::CompletionQueue*)>;
  UnaryCaller(std::vector<std::shared_ptr<grpc::Channel>> channels, int threads, Prepare prepare,
              std::function<void(int64_t, Request*)> fill,
              std::function<absl::Status(const Response&)> check)
      : prepare_(std::move(prepare)), fill_(std::move(fill)), check_(std::move(check)) {
    for (auto& c : channels) stubs_.push_back(Service::NewStub(c));
    for (int i = 0; i < threads; ++i) queues_.push_back(std::make_unique<grpc::CompletionQueue>());
    for (auto& q : queues_) pollers_.emplace_back([q = q.get()] { Poll(*q); });
  }
  ~UnaryCaller() override {
    for (auto& q : queues_) q->Shutdown();
    for (std::thread& t : pollers_) t.join();
  }

  void Issue(int64_t n, size_t connection, Clock::time_point deadline, Done done) override {
    auto* call = new Call(this, std::move(done));
    fill_(n, &call->request);
    call->context.set_deadline(std::chrono::system_clock::now() + (deadline - Clock::now()));
    call->reader = prepare_(*stubs_[connection % stubs_.size()], &call->context, call->request,
                            queues_[connection % queues_.size()].get());
    call->reader->StartCall();
    call->reader->Finish(&call->response, &call->status, call);
  }

 private:
  struct Call {
    Call(UnaryCaller* caller, Done done) : caller(caller), done(std::move(done)) {}
    UnaryCaller* caller;
    Done done;
    grpc::ClientContext context;
    Request request;
    Response response;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<Response>> reader;
  };

  static void Poll(grpc::CompletionQueue& queue) {
    void* tag = nullptr;
    bool ok = false;
    while (queue.Next(&tag, &ok)) {
      std::unique_ptr<Call> call(static_cast<Call*>(tag));
      absl::Status result =
          call->status.ok() ? call->caller->check_(call->response)
                            : absl::Status(static_cast<absl::StatusCode>(call->status.error_code()),
                                           call->status.error_message());
      Done done = std::move(call->done);
      call.reset();
      done(std::move(result));
    }
  }

  std::vector<std::unique_ptr<Stub>> stubs_;
  Prepare prepare_;
  std::function<void(int64_t, Request*)> fill_;
  std::function<absl::Status(const Response&)> check_;
  std::vector<std::unique_ptr<grpc::CompletionQueue>> queues_;
  std::vector<std::thread> pollers_;
};

struct Flags {
  std::string target, rpc = "get", ca, cert, key, server_id, label;
  // grant: mints each request's citizen ID token with this dev identity provider key.
  std::string dev_idp_key;
  int concurrency = 32;
  double rate = 0;  // > 0: open loop
  double seconds = 10;
  double warmup = 2;
  int connections = 4;
  int threads = 2;
  int64_t citizens = 1;
  int64_t citizen_stride = 1;
  int deadline_ms = 10000;
  std::vector<ProcessGroup> watched;
};

// The window that counts and what happened in it.
class Tally {
 public:
  Tally(Clock::time_point from, Clock::time_point to) : from_(Nanos(from)), to_(Nanos(to)) {}

  bool InWindow(int64_t t) const { return t >= from_ && t < to_; }

  void Count(const absl::Status& status, int64_t latency_ns) {
    if (status.ok()) {
      latency_.Record(latency_ns);
      return;
    }
    if (errors_.fetch_add(1, std::memory_order_relaxed) == 0) {
      std::lock_guard<std::mutex> lock(mu_);
      first_error_ = status.ToString();
    }
  }

  // Open loop: how late the generator sent a call (it must stay small, or the
  // generator, not the server, is what is measured).
  void RecordSendLag(int64_t nanos) { send_lag_.Record(nanos); }

  const LatencyHistogram& latency() const { return latency_; }
  const LatencyHistogram& send_lag() const { return send_lag_; }
  int64_t errors() const { return errors_.load(); }
  std::string first_error() {
    std::lock_guard<std::mutex> lock(mu_);
    return first_error_;
  }

 private:
  const int64_t from_, to_;
  LatencyHistogram latency_;
  LatencyHistogram send_lag_;
  std::atomic<int64_t> errors_{0};
  std::mutex mu_;
  std::string first_error_;
};

using tellonce::bench::InFlight;

// Closed loop: `concurrency` chains of calls until `end`.
void RunClosed(Caller& caller, const Flags& flags, Clock::time_point end, Tally& tally,
               InFlight& in_flight) {
  std::atomic<int64_t> next{0};
  const auto deadline = std::chrono::milliseconds(flags.deadline_ms);
  std::function<void(int)> issue = [&](int worker) {
    const Clock::time_point start = Clock::now();
    if (start >= end) {
      in_flight.Done();
      return;
    }
    caller.Issue(next.fetch_add(1, std::memory_order_relaxed), static_cast<size_t>(worker),
                 start + deadline, [&, start, worker](absl::Status status) {
                   const int64_t now = Nanos(Clock::now());
                   if (tally.InWindow(now)) tally.Count(status, now - Nanos(start));
                   issue(worker);
                 });
  };
  for (int w = 0; w < flags.concurrency; ++w) {
    in_flight.Add();
    issue(w);
  }
  in_flight.WaitForNone().IgnoreError();  // errors are tallied per call
}

// Open loop: one call every 1/rate s from `begin` until `end`, latency from the
// scheduled time.
void RunOpen(Caller& caller, const Flags& flags, Clock::time_point begin, Clock::time_point end,
             Tally& tally, InFlight& in_flight) {
  const double interval_ns = 1e9 / flags.rate;
  const auto deadline = std::chrono::milliseconds(flags.deadline_ms);
  for (int64_t k = 0;; ++k) {
    const Clock::time_point scheduled =
        begin + std::chrono::nanoseconds(static_cast<int64_t>(k * interval_ns));
    if (scheduled >= end) break;
    if (scheduled > Clock::now()) std::this_thread::sleep_until(scheduled);
    const int64_t at = Nanos(scheduled);
    if (tally.InWindow(at)) tally.RecordSendLag(Nanos(Clock::now()) - at);
    in_flight.Add();
    caller.Issue(k, static_cast<size_t>(k), scheduled + deadline,
                 [&tally, &in_flight, scheduled](absl::Status status) {
                   const int64_t at = Nanos(scheduled);
                   if (tally.InWindow(at)) tally.Count(status, Nanos(Clock::now()) - at);
                   in_flight.Done();
                 });
  }
  in_flight.WaitForNone().IgnoreError();  // errors are tallied per call
}

google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

std::unique_ptr<Caller> MakeCaller(const Flags& flags,
                                   std::vector<std::shared_ptr<grpc::Channel>> channels) {
  const int64_t citizens = std::max<int64_t>(1, flags.citizens);
  const int64_t stride = std::max<int64_t>(1, flags.citizen_stride);
  auto citizen = [citizens, stride](int64_t n) {
    return tellonce::bench::CitizenId(
        static_cast<int64_t>(Mix(static_cast<uint64_t>(n)) % static_cast<uint64_t>(citizens)) *
        stride);
  };
  const std::string run = absl::StrCat(getpid(), "-", absl::ToUnixSeconds(absl::Now()));
  namespace v1 = tellonce::v1;
  if (flags.rpc == "fetch") {
    return std::make_unique<
        UnaryCaller<v1::ConnectorService, v1::FetchAttributesRequest, v1::FetchAttributesResponse>>(
        std::move(channels), flags.threads,
        [](auto& stub, auto* context, const auto& request, auto* queue) {
          return stub.PrepareAsyncFetchAttributes(context, request, queue);
        },
        [citizen, run](int64_t n, v1::FetchAttributesRequest* r) {
          r->set_exchange_id(absl::StrCat("bench-", run, "-", n));
          r->set_citizen_id(citizen(n));
          r->add_attributes(kAttribute);
          r->set_consumer(kConsumer);
          r->set_purpose(kPurpose);
          r->mutable_basis()->set_consent_id("01JBENCHBENCHBENCHBENCHBEN");
        },
        [](const v1::FetchAttributesResponse& r) {
          if (r.attributes_size() != 1 || r.attributes(0).name() != kAttribute ||
              r.attributes(0).not_found() || !r.attributes(0).has_value()) {
            return absl::NotFoundError("the answer holds no bank.interest_paid");
          }
          return absl::OkStatus();
        });
  }
  if (flags.rpc == "get") {
    return std::make_unique<
        UnaryCaller<v1::ExchangeService, v1::GetAttributesRequest, v1::GetAttributesResponse>>(
        std::move(channels), flags.threads,
        [](auto& stub, auto* context, const auto& request, auto* queue) {
          return stub.PrepareAsyncGetAttributes(context, request, queue);
        },
        [citizen, run](int64_t n, v1::GetAttributesRequest* r) {
          r->set_request_id(absl::StrCat("bench-", run, "-", n));
          r->set_citizen_id(citizen(n));
          r->add_attributes(kAttribute);
          r->set_purpose(kPurpose);
        },
        [](const v1::GetAttributesResponse& r) {
          if (r.results_size() != 1 || r.results(0).code() != v1::RESULT_OK) {
            return absl::FailedPreconditionError(absl::StrCat(
                "result ",
                r.results_size() == 1 ? v1::ResultCode_Name(r.results(0).code()) : "missing",
                r.results_size() == 1 ? absl::StrCat(": ", r.results(0).detail()) : ""));
          }
          return absl::OkStatus();
        });
  }
  if (flags.rpc == "grant") {
    const absl::Time expires = absl::Now() + absl::Hours(24 * 30);
    std::shared_ptr<const tellonce::certs::CitizenAssertionSigner> signer;
    if (!flags.dev_idp_key.empty()) {
      absl::StatusOr<tellonce::certs::CitizenAssertionSigner> s =
          tellonce::certs::CitizenAssertionSigner::FromPemFile(flags.dev_idp_key);
      if (s.ok())
        signer = std::make_shared<const tellonce::certs::CitizenAssertionSigner>(*std::move(s));
    }
    return std::make_unique<
        UnaryCaller<v1::ConsentService, v1::GrantConsentRequest, v1::GrantConsentResponse>>(
        std::move(channels), flags.threads,
        [signer](auto& stub, auto* context, const auto& request, auto* queue) {
          // A portal forwards the citizen's ID token; here each one is minted fresh.
          if (signer != nullptr) {
            tellonce::certs::CitizenAssertionClaims claims;
            claims.issuer = "https://eid.tellonce.local";
            claims.audience = "tellonce-portal";
            claims.citizen_id = request.citizen_id();
            absl::StatusOr<std::string> token = signer->Mint(claims);
            if (token.ok())
              context->AddMetadata(tellonce::certs::kCitizenAssertionMetadataKey, *token);
          }
          return stub.PrepareAsyncGrantConsent(context, request, queue);
        },
        [citizen, run, expires](int64_t n, v1::GrantConsentRequest* r) {
          r->set_request_id(absl::StrCat("bench-", run, "-", n));
          r->set_citizen_id(citizen(n));
          r->set_consumer(kConsumer);
          r->add_attributes(kAttribute);
          r->add_attributes("person.name");
          r->set_purpose(kPurpose);
          *r->mutable_expires_at() = ToTimestamp(expires);
          r->set_mode(v1::UNTIL_EXPIRY);
        },
        [](const v1::GrantConsentResponse&) { return absl::OkStatus(); });
  }
  return nullptr;
}

constexpr char kUsage[] =
    "usage: rpc_load --target HOST:PORT[,...] --rpc fetch|get|grant --ca FILE --cert FILE "
    "--key FILE\n"
    "                [--server-id SPIFFE_ID] [--concurrency 32 | --rate CALLS_PER_S]\n"
    "                [--seconds 10] [--warmup 2] [--connections 4] [--threads 2]\n"
    "                [--deadline-ms 10000]\n"
    "                [--citizens 1] [--citizen-stride 1] [--pid NAME=PID[,PID...]]...\n"
    "                [--label TEXT]\n";

bool ParseFlags(int argc, char** argv, Flags* flags) {
  using tellonce::bench::Number;
  using tellonce::bench::Text;
  if (!tellonce::bench::ParseFlags(argc, argv,
                                   {{"--target", Text(&flags->target)},
                                    {"--rpc", Text(&flags->rpc)},
                                    {"--ca", Text(&flags->ca)},
                                    {"--cert", Text(&flags->cert)},
                                    {"--key", Text(&flags->key)},
                                    {"--dev-idp-key", Text(&flags->dev_idp_key)},
                                    {"--server-id", Text(&flags->server_id)},
                                    {"--label", Text(&flags->label)},
                                    {"--concurrency", Number(&flags->concurrency)},
                                    {"--rate", Number(&flags->rate)},
                                    {"--seconds", Number(&flags->seconds)},
                                    {"--warmup", Number(&flags->warmup)},
                                    {"--connections", Number(&flags->connections)},
                                    {"--threads", Number(&flags->threads)},
                                    {"--deadline-ms", Number(&flags->deadline_ms)},
                                    {"--citizens", Number(&flags->citizens)},
                                    {"--citizen-stride", Number(&flags->citizen_stride)},
                                    {"--pid", tellonce::bench::ProcessGroups(&flags->watched)}},
                                   kUsage)) {
    return false;
  }
  if (flags->target.empty() || flags->ca.empty() || flags->cert.empty() || flags->key.empty()) {
    std::fprintf(stderr, "rpc_load: --target, --ca, --cert and --key are required\n%s", kUsage);
    return false;
  }
  if (flags->concurrency < 1 || flags->connections < 1 || flags->threads < 1 ||
      flags->seconds <= 0 || flags->warmup < 0 || flags->rate < 0) {
    std::fprintf(stderr,
                 "rpc_load: --concurrency, --connections, --threads and --seconds must be > 0\n");
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) return 2;

  absl::StatusOr<std::string> pem = tellonce::ReadFileToString(flags.cert);
  if (!pem.ok()) {
    std::fprintf(stderr, "rpc_load: %s\n", pem.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<tellonce::certs::SpiffeId> self = tellonce::certs::CertificateSpiffeId(*pem);
  if (!self.ok()) {
    std::fprintf(stderr, "rpc_load: --cert: %s\n", self.status().ToString().c_str());
    return 1;
  }
  if (flags.server_id.empty()) {
    flags.server_id = flags.rpc == "fetch"
                          ? tellonce::certs::AgencySpiffeId(self->trust_domain, "bank")
                          : tellonce::certs::BrokerSpiffeId(self->trust_domain);
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      tellonce::certs::MakeChannelCredentials({flags.ca, flags.cert, flags.key, ""},
                                              flags.server_id);
  if (!creds.ok()) {
    std::fprintf(stderr, "rpc_load: %s\n", creds.status().ToString().c_str());
    return 1;
  }
  // Several targets (replicas of one broker): connection c goes to target c mod n.
  const std::vector<std::string> targets = absl::StrSplit(flags.target, ',');
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int c = 0; c < flags.connections; ++c) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.channel_id", c);  // distinct arguments: a connection of its own
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    const std::string& target = targets[c % targets.size()];
    channels.push_back(grpc::CreateCustomChannel(target, *creds, args));
    // Connect (and handshake) before the clock starts.
    if (!channels.back()->WaitForConnected(std::chrono::system_clock::now() +
                                           std::chrono::seconds(10))) {
      std::fprintf(stderr, "rpc_load: cannot connect to %s as %s\n", target.c_str(),
                   flags.server_id.c_str());
      return 1;
    }
  }
  std::unique_ptr<Caller> caller = MakeCaller(flags, channels);
  if (caller == nullptr) {
    std::fprintf(stderr, "rpc_load: --rpc must be fetch, get or grant\n");
    return 2;
  }

  const Clock::time_point begin = Clock::now();
  const auto seconds = [](double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  };
  const Clock::time_point from = begin + seconds(flags.warmup);
  const Clock::time_point to = from + seconds(flags.seconds);
  Tally tally(from, to);
  InFlight in_flight;
  std::thread driver([&] {
    if (flags.rate > 0) {
      RunOpen(*caller, flags, begin, to, tally, in_flight);
    } else {
      RunClosed(*caller, flags, to, tally, in_flight);
    }
  });
  // CPU used by each watched process (and by this one) within the window.
  std::this_thread::sleep_until(from);
  for (ProcessGroup& w : flags.watched) w.start_seconds = ProcessCpuSeconds(w.pids);
  const double self_start = SelfCpuSeconds();
  std::this_thread::sleep_until(to);
  std::vector<double> used;
  for (ProcessGroup& w : flags.watched) {
    const double now = ProcessCpuSeconds(w.pids);
    used.push_back(now < 0 || w.start_seconds < 0 ? -1 : now - w.start_seconds);
  }
  const double self_used = SelfCpuSeconds() - self_start;
  driver.join();

  const LatencyHistogram& lat = tally.latency();
  const uint64_t ok = lat.count();
  const double window = flags.seconds;
  const double calls = static_cast<double>(ok + tally.errors());
  auto per_call_us = [&](double cpu) { return cpu < 0 || calls == 0 ? -1 : cpu / calls * 1e6; };
  std::string line = absl::StrFormat(
      "rpc_load label=%s rpc=%s loop=%s concurrency=%d rate=%.0f max_in_flight=%d "
      "connections=%d seconds=%.1f ok=%d errors=%d per_second=%.0f p50_ms=%.3f p90_ms=%.3f "
      "p99_ms=%.3f p999_ms=%.3f",
      flags.label.empty() ? "-" : flags.label, flags.rpc, flags.rate > 0 ? "open" : "closed",
      flags.rate > 0 ? 0 : flags.concurrency, flags.rate, in_flight.max(), flags.connections,
      window, ok, tally.errors(), ok / window, lat.Percentile(0.50) / 1e6,
      lat.Percentile(0.90) / 1e6, lat.Percentile(0.99) / 1e6, lat.Percentile(0.999) / 1e6);
  if (flags.rate > 0) {
    absl::StrAppendFormat(&line, " send_lag_p99_ms=%.3f send_lag_max_ms=%.3f",
                          tally.send_lag().Percentile(0.99) / 1e6,
                          tally.send_lag().Percentile(1.0) / 1e6);
  }
  for (size_t i = 0; i < flags.watched.size(); ++i) {
    absl::StrAppendFormat(&line, " cpu_us_per_call.%s=%.1f", flags.watched[i].name,
                          per_call_us(used[i]));
  }
  absl::StrAppendFormat(&line, " cpu_us_per_call.rpc_load=%.1f", per_call_us(self_used));
  std::printf("%s\n", line.c_str());
  if (tally.errors() > 0)
    std::fprintf(stderr, "rpc_load: first error: %s\n", tally.first_error().c_str());
  return 0;
}
