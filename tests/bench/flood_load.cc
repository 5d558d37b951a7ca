// flood_load: the flood probes of issue 13 as a benchmark. One agency's certificate
// floods the broker in one of these modes while a second agency ("the probe") keeps
// making ordinary GetAttributes calls; the broker's resident memory is sampled
// throughout. Reports numbers; decides nothing.
//
//   flood_load --mode rapid-reset|idle-streams|connections|oversized|handshake
//              --target HOST:PORT --ca ca.pem --cert me.pem --key me.key
//              --probe-cert other.pem --probe-key other.key --broker-pid PID
//              [--server-id spiffe://tellonce.local/broker] [--seconds 5]
//              [--count N] [--connections 8] [--size BYTES]
//
//   rapid-reset   calls started and cancelled at once (gRPC sends HEADERS, then
//                 RST_STREAM), up to --count in --seconds over --connections
//   idle-streams  --count streams opened (HEADERS) that never send their message
//   connections   --count TLS connections held open, no calls
//   oversized     --count calls of --size bytes each (over the broker's limit)
//   handshake     --count TCP connections that never start TLS; how long the broker
//                 keeps them
//
// Output, one line:
//   flood: mode=M sent=N seconds=S rss_before_mb=B rss_peak_mb=P rss_after_mb=A
//          probe_ok=K probe_failed=F probe_p99_ms=MS [mode-specific fields]

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "certs/tls.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "tellonce/v1/exchange.grpc.pb.h"
#include "tests/bench/flags.h"

namespace tellonce::bench {
namespace {

struct Flags {
  std::string mode, target, ca, cert, key, probe_cert, probe_key;
  std::string server_id = "spiffe://tellonce.local/broker";
  int broker_pid = 0;
  double seconds = 5;
  int count = 100000;
  int connections = 8;
  int size = 32 << 20;
};

// A numeric field of /proc/<pid>/status ("VmRSS:" in kB, "Threads:").
double ProcStatus(int pid, const char* field) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  const size_t n = std::strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, n, field) == 0) return std::atof(line.c_str() + n);
  }
  return -1;
}
double RssMb(int pid) { return ProcStatus(pid, "VmRSS:") / 1024.0; }

std::shared_ptr<grpc::Channel> Channel(const Flags& f, const std::string& cert,
                                       const std::string& key, int id) {
  auto creds = certs::MakeChannelCredentials(
      {.ca_file = f.ca, .cert_file = cert, .key_file = key, .crl_dir = ""}, f.server_id);
  if (!creds.ok()) {
    std::fprintf(stderr, "flood_load: %s\n", std::string(creds.status().message()).c_str());
    std::exit(2);
  }
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt("tellonce.flood.connection", id);  // one connection per channel
  args.SetMaxSendMessageSize(-1);
  return grpc::CreateCustomChannel(f.target, *creds, args);
}

tellonce::v1::GetAttributesRequest Request(const std::string& id) {
  tellonce::v1::GetAttributesRequest r;
  r.set_request_id(id);
  r.set_citizen_id("37605030299");
  r.add_attributes("person.name");
  r.set_purpose("TAX_ASSESSMENT");
  return r;
}

// Ordinary calls of another agency, one every 20 ms, for as long as the flood lasts.
struct Probe {
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<double> ms;
  std::string last_error;
  std::thread thread;

  void Start(const Flags& f) {
    thread = std::thread([this, &f] {
      auto stub = tellonce::v1::ExchangeService::NewStub(Channel(f, f.probe_cert, f.probe_key, -1));
      int n = 0;
      while (!stop.load()) {
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
        tellonce::v1::GetAttributesResponse response;
        const absl::Time start = absl::Now();
        grpc::Status status =
            stub->GetAttributes(&context, Request(absl::StrCat("probe-", n++)), &response);
        ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
        if (status.ok()) {
          ok++;
        } else {
          failed++;
          last_error = absl::StrCat(status.error_code(), " ", status.error_message());
        }
        absl::SleepFor(absl::Milliseconds(20));
      }
    });
  }
  void Stop() {
    stop = true;
    thread.join();
  }
  double P99() {
    if (ms.empty()) return 0;
    std::sort(ms.begin(), ms.end());
    return ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
  }
};

// Bounds the calls this process has outstanding.
class Window {
 public:
  explicit Window(int n) : free_(n) {}
  void Acquire() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return free_ > 0; });
    --free_;
  }
  void Release() {
    {
      std::lock_guard lock(mu_);
      ++free_;
    }
    cv_.notify_one();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int free_;
};

std::string RapidReset(const Flags& f, int* sent) {
  std::vector<std::unique_ptr<tellonce::v1::ExchangeService::Stub>> stubs;
  for (int i = 0; i < f.connections; ++i) {
    stubs.push_back(tellonce::v1::ExchangeService::NewStub(Channel(f, f.cert, f.key, i)));
  }
  struct Call {
    grpc::ClientContext context;
    tellonce::v1::GetAttributesRequest request;
    tellonce::v1::GetAttributesResponse response;
    // The callback and the cancelling loop each drop one; the last deletes.
    std::atomic<int> refs{2};
    void Unref() {
      if (refs.fetch_sub(1) == 1) delete this;
    }
  };
  Window window(4096);
  std::atomic<int> cancelled{0}, answered{0}, other{0};
  const tellonce::v1::GetAttributesRequest request = Request("rapid-reset");
  const absl::Time end = absl::Now() + absl::Seconds(f.seconds);
  int n = 0;
  while (n < f.count && absl::Now() < end) {
    window.Acquire();
    auto* call = new Call;
    call->request = request;
    stubs[n % stubs.size()]->async()->GetAttributes(
        &call->context, &call->request, &call->response, [&, call](grpc::Status status) {
          if (status.error_code() == grpc::StatusCode::CANCELLED) {
            cancelled++;
          } else if (status.ok()) {
            answered++;
          } else {
            other++;
          }
          call->Unref();
          window.Release();
        });
    call->context.TryCancel();
    call->Unref();
    ++n;
  }
  *sent = n;
  for (int i = 0; i < 4096; ++i) window.Acquire();  // all calls ended
  return absl::StrCat("cancelled=", cancelled.load(), " answered=", answered.load(),
                      " other=", other.load());
}

std::string IdleStreams(const Flags& f, int* sent, double hold_seconds) {
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  for (int i = 0; i < f.connections; ++i) {
    stubs.push_back(std::make_unique<grpc::GenericStub>(Channel(f, f.cert, f.key, i)));
  }
  grpc::CompletionQueue cq;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::GenericClientAsyncReaderWriter>> calls;
  for (int i = 0; i < f.count; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    contexts.back()->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    calls.push_back(stubs[i % stubs.size()]->PrepareCall(
        contexts.back().get(), "/tellonce.v1.ExchangeService/GetAttributes", &cq));
    calls.back()->StartCall(reinterpret_cast<void*>(static_cast<intptr_t>(i)));
  }
  *sent = f.count;
  // Drains start completions while the streams stay open.
  int started = 0;
  const absl::Time end = absl::Now() + absl::Seconds(hold_seconds);
  void* tag;
  bool ok;
  while (absl::Now() < end) {
    if (cq.AsyncNext(&tag, &ok, absl::ToChronoTime(absl::Now() + absl::Milliseconds(100))) ==
            grpc::CompletionQueue::GOT_EVENT &&
        ok) {
      ++started;
    }
  }
  for (auto& c : contexts) c->TryCancel();
  calls.clear();
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return absl::StrCat("streams_started=", started);
}

std::string Connections(const Flags& f, int* sent, double hold_seconds) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  int connected = 0;
  for (int i = 0; i < f.count; ++i) {
    channels.push_back(Channel(f, f.cert, f.key, i));
    channels.back()->GetState(/*try_to_connect=*/true);
  }
  for (auto& c : channels) {
    if (c->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Seconds(2)))) ++connected;
  }
  *sent = f.count;
  absl::SleepFor(absl::Seconds(hold_seconds));
  return absl::StrCat("connected=", connected);
}

std::string Oversized(const Flags& f, int* sent) {
  auto stub = tellonce::v1::ExchangeService::NewStub(Channel(f, f.cert, f.key, 0));
  tellonce::v1::GetAttributesRequest big = Request(std::string(f.size, 'x'));
  std::vector<std::thread> threads;
  std::atomic<int> refused{0};
  std::string code;
  for (int i = 0; i < f.count; ++i) {
    threads.emplace_back([&] {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
      tellonce::v1::GetAttributesResponse response;
      grpc::Status status = stub->GetAttributes(&context, big, &response);
      if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) refused++;
      code = std::to_string(status.error_code());
    });
  }
  for (auto& t : threads) t.join();
  *sent = f.count;
  return absl::StrCat("refused=", refused.load(), " size_mb=", f.size >> 20, " last_code=", code);
}

std::string Handshake(const Flags& f, int* sent) {
  std::vector<std::string> hp = absl::StrSplit(f.target, ':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(hp[1].c_str())));
  inet_pton(AF_INET, hp[0].c_str(), &addr.sin_addr);
  std::vector<int> fds;
  for (int i = 0; i < f.count; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      close(fd);
      continue;
    }
    fds.push_back(fd);
  }
  *sent = static_cast<int>(fds.size());
  const absl::Time start = absl::Now();
  // Waits (up to 150 s) for the broker to close each one; records when.
  std::vector<double> closed_after;
  std::vector<std::thread> waiters;
  std::mutex mu;
  for (int fd : fds) {
    waiters.emplace_back([&, fd] {
      timeval tv{.tv_sec = 150, .tv_usec = 0};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      char b;
      const ssize_t got = recv(fd, &b, 1, 0);
      std::lock_guard lock(mu);
      if (got <= 0) closed_after.push_back(absl::ToDoubleSeconds(absl::Now() - start));
      close(fd);
    });
  }
  for (auto& t : waiters) t.join();
  std::sort(closed_after.begin(), closed_after.end());
  const double max_s = closed_after.empty() ? -1 : closed_after.back();
  return absl::StrCat("closed_by_broker=", closed_after.size(),
                      " held_max_s=", absl::StrFormat("%.1f", max_s));
}

}  // namespace
}  // namespace tellonce::bench

int main(int argc, char** argv) {
  using namespace tellonce::bench;
  Flags f;
  static const char kUsage[] =
      "usage: flood_load --mode rapid-reset|idle-streams|connections|oversized|handshake\n"
      "  --target HOST:PORT --ca F --cert F --key F --probe-cert F --probe-key F\n"
      "  --broker-pid PID [--server-id ID] [--seconds 5] [--count N] [--connections 8]\n"
      "  [--size BYTES]\n";
  if (!ParseFlags(argc, argv,
                  {{"--mode", Text(&f.mode)},
                   {"--target", Text(&f.target)},
                   {"--ca", Text(&f.ca)},
                   {"--cert", Text(&f.cert)},
                   {"--key", Text(&f.key)},
                   {"--probe-cert", Text(&f.probe_cert)},
                   {"--probe-key", Text(&f.probe_key)},
                   {"--server-id", Text(&f.server_id)},
                   {"--broker-pid", Number(&f.broker_pid)},
                   {"--seconds", Number(&f.seconds)},
                   {"--count", Number(&f.count)},
                   {"--connections", Number(&f.connections)},
                   {"--size", Number(&f.size)}},
                  kUsage) ||
      f.target.empty() || f.broker_pid <= 0) {
    if (f.target.empty() || f.broker_pid <= 0) std::fputs(kUsage, stderr);
    return 2;
  }
  const double before = RssMb(f.broker_pid);
  std::atomic<bool> sampling{true};
  std::atomic<double> peak{before};
  std::atomic<double> peak_threads{ProcStatus(f.broker_pid, "Threads:")};
  std::thread sampler([&] {
    while (sampling.load()) {
      const double now = RssMb(f.broker_pid);
      if (now > peak.load()) peak = now;
      const double threads = ProcStatus(f.broker_pid, "Threads:");
      if (threads > peak_threads.load()) peak_threads = threads;
      absl::SleepFor(absl::Milliseconds(50));
    }
  });
  Probe probe;
  probe.Start(f);
  const absl::Time start = absl::Now();
  int sent = 0;
  std::string extra;
  if (f.mode == "rapid-reset") {
    extra = RapidReset(f, &sent);
  } else if (f.mode == "idle-streams") {
    extra = IdleStreams(f, &sent, f.seconds);
  } else if (f.mode == "connections") {
    extra = Connections(f, &sent, f.seconds);
  } else if (f.mode == "oversized") {
    extra = Oversized(f, &sent);
  } else if (f.mode == "handshake") {
    extra = Handshake(f, &sent);
  } else {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const double took = absl::ToDoubleSeconds(absl::Now() - start);
  const double at_end = RssMb(f.broker_pid);
  absl::SleepFor(absl::Seconds(2));  // what stays after the flood
  probe.Stop();
  sampling = false;
  sampler.join();
  std::printf(
      "flood: mode=%s sent=%d seconds=%.1f rss_before_mb=%.0f rss_peak_mb=%.0f "
      "rss_end_mb=%.0f rss_after_mb=%.0f threads_peak=%.0f probe_ok=%d probe_failed=%d "
      "probe_p99_ms=%.1f %s\n",
      f.mode.c_str(), sent, took, before, peak.load(), at_end, RssMb(f.broker_pid),
      peak_threads.load(), probe.ok.load(), probe.failed.load(), probe.P99(), extra.c_str());
  if (probe.failed.load() > 0)
    std::fprintf(stderr, "probe: last error %s\n", probe.last_error.c_str());
  return 0;
}
