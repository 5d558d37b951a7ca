// grant_load: drives durable GrantConsent calls through the broker's gRPC API, closed
// loop at a fixed number of concurrent portals, over mutual TLS with a portal
// certificate. Reports throughput and latency; it decides nothing (see scripts/bench).
//
//   grant_load --broker 127.0.0.1:PORT --ca ca.pem --cert portal.pem --key portal.key
//              [--concurrency 64] [--seconds 10] [--connections 4]

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "certs/identity.h"
#include "certs/tls.h"
#include "consent/directory.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/create_channel.h"
#include "proto/textproto.h"
#include "tellonce/v1/consent.grpc.pb.h"

namespace {

using google::protobuf::util::TimeUtil;

std::string CitizenId(int n) {
  std::string prefix = absl::StrFormat("4%02d%02d%02d%03d", 50 + (n / 336000) % 40,
                                       (n / 28000) % 12 + 1, (n / 1000) % 28 + 1, n % 1000);
  for (char check = '0'; check <= '9'; ++check) {
    if (tellonce::consent::EstonianIsikukoodValid(prefix + check)) return prefix + check;
  }
  return prefix + "0";
}

struct Flags {
  std::string broker, ca, cert, key;
  int concurrency = 64;
  int seconds = 10;
  int connections = 4;
};

// One closed-loop worker: issues the next grant when the previous one completes.
class Load {
 public:
  Load(std::vector<std::unique_ptr<tellonce::v1::ConsentService::Stub>> stubs, int concurrency,
       absl::Time end)
      : stubs_(std::move(stubs)), concurrency_(concurrency), end_(end) {}

  void Run() {
    for (int w = 0; w < concurrency_; ++w) Issue(w);
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return finished_workers_ == concurrency_; });
  }

  std::vector<double>& latencies_ms() { return latencies_ms_; }
  int errors() const { return errors_; }
  std::string first_error() const { return first_error_; }

 private:
  struct Call {
    grpc::ClientContext context;
    tellonce::v1::GrantConsentRequest request;
    tellonce::v1::GrantConsentResponse response;
    absl::Time start;
  };

  void Issue(int worker) {
    if (absl::Now() >= end_) {
      std::lock_guard<std::mutex> lock(mu_);
      if (++finished_workers_ == concurrency_) done_cv_.notify_all();
      return;
    }
    auto* call = new Call;
    int n = next_.fetch_add(1);
    call->request.set_request_id(absl::StrFormat("bench-%d-%d", getpid(), n));
    call->request.set_citizen_id(CitizenId(n % 1000000));
    call->request.set_consumer("tax");
    call->request.add_attributes("bank.interest_paid");
    call->request.add_attributes("person.name");
    call->request.set_purpose("TAX_DEDUCTION_CHECK");
    *call->request.mutable_expires_at() =
        TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(absl::Now() + absl::Hours(24 * 30)));
    call->request.set_mode(tellonce::v1::UNTIL_EXPIRY);
    call->context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    call->start = absl::Now();
    stubs_[worker % stubs_.size()]->async()->GrantConsent(
        &call->context, &call->request, &call->response, [this, call, worker](grpc::Status s) {
          double ms = absl::ToDoubleMilliseconds(absl::Now() - call->start);
          {
            std::lock_guard<std::mutex> lock(mu_);
            if (s.ok()) {
              latencies_ms_.push_back(ms);
            } else {
              if (errors_++ == 0) first_error_ = s.error_message();
            }
          }
          delete call;
          Issue(worker);
        });
  }

  std::vector<std::unique_ptr<tellonce::v1::ConsentService::Stub>> stubs_;
  const int concurrency_;
  const absl::Time end_;
  std::atomic<int> next_{0};
  std::mutex mu_;
  std::condition_variable done_cv_;
  int finished_workers_ = 0;
  std::vector<double> latencies_ms_;
  int errors_ = 0;
  std::string first_error_;
};

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * v.size()));
  std::nth_element(v.begin(), v.begin() + i, v.end());
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string name = argv[i], value = argv[i + 1];
    if (name == "--broker") flags.broker = value;
    else if (name == "--ca") flags.ca = value;
    else if (name == "--cert") flags.cert = value;
    else if (name == "--key") flags.key = value;
    else if (name == "--concurrency") (void)absl::SimpleAtoi(value, &flags.concurrency);
    else if (name == "--seconds") (void)absl::SimpleAtoi(value, &flags.seconds);
    else if (name == "--connections") (void)absl::SimpleAtoi(value, &flags.connections);
    else {
      std::fprintf(stderr, "grant_load: unknown flag %s\n", name.c_str());
      return 2;
    }
  }
  if (flags.broker.empty() || flags.ca.empty() || flags.cert.empty() || flags.key.empty()) {
    std::fprintf(stderr, "grant_load: --broker, --ca, --cert and --key are required\n");
    return 2;
  }
  absl::StatusOr<std::string> pem = tellonce::ReadFileToString(flags.cert);
  if (!pem.ok()) return 1;
  absl::StatusOr<tellonce::certs::SpiffeId> self = tellonce::certs::CertificateSpiffeId(*pem);
  if (!self.ok()) return 1;
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      tellonce::certs::MakeChannelCredentials({flags.ca, flags.cert, flags.key, ""},
                                              tellonce::certs::BrokerSpiffeId(self->trust_domain));
  if (!creds.ok()) {
    std::fprintf(stderr, "grant_load: %s\n", std::string(creds.status().message()).c_str());
    return 1;
  }
  std::vector<std::unique_ptr<tellonce::v1::ConsentService::Stub>> stubs;
  for (int c = 0; c < std::max(1, flags.connections); ++c) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.channel_id", c);  // distinct args: a connection of its own
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    stubs.push_back(tellonce::v1::ConsentService::NewStub(
        grpc::CreateCustomChannel(flags.broker, *creds, args)));
  }
  absl::Time start = absl::Now();
  Load load(std::move(stubs), flags.concurrency, start + absl::Seconds(flags.seconds));
  load.Run();
  double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
  std::vector<double>& lat = load.latencies_ms();
  std::printf(
      "grants concurrency=%d seconds=%.1f ok=%zu errors=%d per_second=%.0f p50_ms=%.2f "
      "p99_ms=%.2f\n",
      flags.concurrency, elapsed, lat.size(), load.errors(), lat.size() / elapsed,
      Percentile(lat, 0.50), Percentile(lat, 0.99));
  if (load.errors() > 0) std::fprintf(stderr, "first error: %s\n", load.first_error().c_str());
  return load.errors() > 0 ? 1 : 0;
}
