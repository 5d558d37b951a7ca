// soak_load: the mixed load of `scripts/bench --soak`. Drives every kind of call a
// federation makes against one broker, each at a fixed rate (open loop: a call is
// scheduled every 1/rate s whatever happened to earlier ones, and its latency is
// measured from that time), runs the tax office's connector in-process to take the
// change notifications, and every 10 s prints the window's calls, errors and p99s with
// the broker's resident memory, open file descriptors and threads from /proc (and, with
// --data-dir, the size of its RocksDB write-ahead log: what its memtables hold). Every
// failed call is printed as it happens, with its time, so that scripts/bench can tell
// the failures its injected faults explain from the others (tests/bench/soak_report.py).
// Reports; decides nothing.
//
//   soak_load --broker HOST:PORT --pki DIR --broker-pid PID --subscriber-port PORT
//             [--data-dir DIR] [--seconds 600] [--scale 1] [--deadline-ms 5000]
//             [--bank-citizens 20000] [--registry-citizens 1000]
//   soak_load --write-registry-records FILE [--registry-citizens 1000]
//
// DIR is a make-dev-pki output (ca.pem, agencies/<id>.pem|key, idp/dev-idp.key). The
// broker's directory must give: tax a connector at 127.0.0.1:--subscriber-port, a
// subscription to ADDRESS_CHANGED of person.address and a mandate for person.address;
// benefits a mandate for person.name (TAX_ASSESSMENT). Synthetic citizens 0 ..
// --bank-citizens - 1 need a consent of tax for bank.interest_paid (TAX_DEDUCTION_CHECK)
// and a bank record (preload_consents), 0 .. --registry-citizens - 1 a registry record
// (the file --write-registry-records writes).
//
// Calls, per second at --scale 1:
//   get-bank       100  tax: GetAttributes bank.interest_paid (consent), from the bank
//   get-registry    50  benefits: GetAttributes person.name (mandate), from the registry
//   grant           20  portal: GrantConsent (tax, bank.account_iban), then at once
//   revoke              RevokeConsent of it, and after every 5th, ListConsents
//   list-consents       of that citizen (first page)
//   publish         20  registry: PublishChange ADDRESS_CHANGED, person.address; each is
//   delivery            delivered to tax's connector here (latency: publish to delivery)
//   list-events     10  portal: ListAccessEvents of a citizen of get-bank (first page)
//   checkpoint       5  portal: GetCheckpoint (the latest)
//   inclusion       10  portal: GetInclusionProof of a random event of that checkpoint
// Portal calls carry a fresh citizen ID token (dev identity provider). Each kind goes
// over its own agency's connections (tax over 4), as separate agencies would.
//
// A call fails when its gRPC status is not OK, or (exchanges) its result is not
// RESULT_OK, or (grant, revoke) the consent's status is not what was asked. Failures
// are printed as
//   soak error unix_ms=MS op=OP code=CODE message=TEXT
// (CODE: the gRPC status code's name, or the exchange's RESULT_* name); a call that
// could not be sent because 2,000 of its kind were already in flight is an error with
// code CLIENT_BACKLOG. Each window, at its end:
//   soak window=W t=SECONDS unix=S rss_kb=K fds=N threads=N wal_kb=K calls=N errors=N
//        p99_ms=MS p99_ms.exchange=MS ok.OP=N err.OP=N p99_ms.OP=MS ...
// (p99_ms over every call kind but delivery; exchange: get-bank and get-registry).
// Last:
//   soak done seconds=S calls=N errors=N published=N delivered=N undelivered=N
//        redelivered=N skipped_errors_not_printed=N

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "certs/citizen_assertion.h"
#include "certs/identity.h"
#include "certs/tls.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "proto/textproto.h"
#include "tellonce/v1/connector.grpc.pb.h"
#include "tellonce/v1/consent.grpc.pb.h"
#include "tellonce/v1/exchange.grpc.pb.h"
#include "tellonce/v1/notification.grpc.pb.h"
#include "tellonce/v1/transparency.grpc.pb.h"
#include "tests/bench/flags.h"
#include "tests/bench/latency.h"
#include "tests/bench/synthetic.h"

namespace {

namespace v1 = tellonce::v1;
using Clock = std::chrono::steady_clock;
using tellonce::bench::LatencyHistogram;

enum Op {
  kGetBank,
  kGetRegistry,
  kGrant,
  kRevoke,
  kListConsents,
  kPublish,
  kDelivery,
  kListEvents,
  kCheckpoint,
  kInclusion,
  kOpCount
};
constexpr std::array<const char*, kOpCount> kOpNames = {
    "get-bank", "get-registry", "grant",       "revoke",     "list-consents",
    "publish",  "delivery",     "list-events", "checkpoint", "inclusion"};
// Calls per second at --scale 1 of the kinds that are scheduled (the others follow them).
constexpr std::array<double, kOpCount> kRates = {100, 50, 20, 0, 0, 20, 0, 10, 5, 10};
constexpr int64_t kWindowSeconds = 10;
constexpr int64_t kMaxInFlight = 2000;
constexpr int64_t kMaxErrorLines = 200000;

int64_t Nanos(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

struct Flags {
  std::string broker, pki, registry_records, data_dir;
  int broker_pid = 0;
  int subscriber_port = 0;
  double seconds = 600;
  double scale = 1;
  int deadline_ms = 5000;
  int64_t bank_citizens = 20000;
  int64_t registry_citizens = 1000;
};

// What one 10 s window saw. Recording is lock-free.
struct Window {
  std::array<LatencyHistogram, kOpCount> latency;
  LatencyHistogram all, exchange;
  std::array<std::atomic<int64_t>, kOpCount> ok{}, errors{};
};

// The broker's footprint from /proc, and the bytes in its RocksDB write-ahead log
// files (*.log in its data directory): the writes not yet flushed from its memtables;
// -1 for what could not be read.
struct Footprint {
  int64_t rss_kb = -1, fds = -1, threads = -1, wal_kb = -1;
};

Footprint ReadFootprint(int pid, const std::string& data_dir) {
  Footprint f;
  if (!data_dir.empty()) {
    if (DIR* dir = opendir(data_dir.c_str())) {
      int64_t bytes = 0;
      while (dirent* e = readdir(dir)) {
        const std::string name = e->d_name;
        struct stat st {};
        if (name.size() > 4 && name.substr(name.size() - 4) == ".log" &&
            stat((data_dir + "/" + name).c_str(), &st) == 0) {
          bytes += st.st_size;
        }
      }
      closedir(dir);
      f.wal_kb = bytes / 1024;
    }
  }
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    auto value = [&](const char* key, int64_t* out) {
      if (line.rfind(key, 0) != 0) return;
      std::string rest = line.substr(std::string(key).size());
      absl::StripAsciiWhitespace(&rest);
      if (rest.size() > 3 && rest.substr(rest.size() - 3) == " kB") rest.resize(rest.size() - 3);
      int64_t v = 0;
      if (absl::SimpleAtoi(rest, &v)) *out = v;
    };
    value("VmRSS:", &f.rss_kb);
    value("Threads:", &f.threads);
  }
  if (DIR* dir = opendir(absl::StrCat("/proc/", pid, "/fd").c_str())) {
    int64_t n = 0;
    while (dirent* e = readdir(dir)) {
      if (e->d_name[0] != '.') ++n;
    }
    closedir(dir);
    f.fds = n;
  }
  return f;
}

class Soak;

// The tax office's connector: takes each change notification and acknowledges it.
class Subscriber final : public v1::ConnectorService::CallbackService {
 public:
  explicit Subscriber(Soak* soak) : soak_(soak) {}
  grpc::ServerUnaryReactor* DeliverChange(grpc::CallbackServerContext* context,
                                          const v1::DeliverChangeRequest* request,
                                          v1::DeliverChangeResponse*) override;

 private:
  Soak* const soak_;
};

class Soak {
 public:
  Soak(const Flags& flags, Clock::time_point begin) : flags_(flags), begin_(begin) {
    const size_t windows = static_cast<size_t>(flags.seconds / kWindowSeconds) + 8;
    for (size_t i = 0; i < windows; ++i) windows_.push_back(std::make_unique<Window>());
  }

  absl::Status Connect();
  // Issues call number `n` of `op`, scheduled at `scheduled`.
  void Issue(Op op, int64_t n, Clock::time_point scheduled);
  // Prints window `w` with `footprint`.
  void PrintWindow(size_t w, const Footprint& footprint);
  void Delivered(const std::string& event_id);

  int64_t in_flight(Op op) const { return in_flight_[op].load(); }
  int64_t total_in_flight() const {
    int64_t n = 0;
    for (const auto& i : in_flight_) n += i.load();
    return n;
  }
  size_t undelivered() {
    std::lock_guard<std::mutex> lock(mu_);
    return pending_.size();
  }
  void PrintDone(double seconds);
  // A call that could not be sent: too many of its kind in flight.
  void Backlogged(Op op) { Fail(op, "CLIENT_BACKLOG", "too many calls of this kind in flight"); }

 private:
  struct Stubs {
    std::vector<std::unique_ptr<v1::ExchangeService::Stub>> tax;
    std::unique_ptr<v1::ExchangeService::Stub> benefits;
    std::vector<std::unique_ptr<v1::ConsentService::Stub>> consent;
    std::unique_ptr<v1::TransparencyService::Stub> transparency;
    std::unique_ptr<v1::NotificationService::Stub> notification;
  };

  Window& WindowNow() {
    const int64_t w = (Nanos(Clock::now()) - Nanos(begin_)) / (kWindowSeconds * 1'000'000'000);
    return *windows_[std::min<size_t>(static_cast<size_t>(std::max<int64_t>(0, w)),
                                      windows_.size() - 1)];
  }
  void Succeed(Op op, Clock::time_point start) {
    const int64_t latency = Nanos(Clock::now()) - Nanos(start);
    Window& w = WindowNow();
    w.ok[op].fetch_add(1, std::memory_order_relaxed);
    w.latency[op].Record(latency);
    if (op != kDelivery) w.all.Record(latency);
    if (op == kGetBank || op == kGetRegistry) w.exchange.Record(latency);
  }
  void Fail(Op op, absl::string_view code, absl::string_view message) {
    WindowNow().errors[op].fetch_add(1, std::memory_order_relaxed);
    if (error_lines_.fetch_add(1) >= kMaxErrorLines) {
      errors_not_printed_.fetch_add(1);
      return;
    }
    std::string text = absl::StrReplaceAll(message, {{"\n", " "}, {"\r", " "}});
    Print(absl::StrFormat("soak error unix_ms=%d op=%s code=%s message=%s",
                          absl::ToUnixMillis(absl::Now()), kOpNames[op], code, text));
  }
  // Judges a finished call: `check` runs only when the status is OK and returns
  // (code, message) of a failure, or an empty code for success.
  void Finish(Op op, Clock::time_point start, const grpc::Status& status,
              const std::function<std::pair<std::string, std::string>()>& check) {
    if (!status.ok()) {
      Fail(op, StatusCodeName(status.error_code()), status.error_message());
    } else if (auto [code, message] = check(); !code.empty()) {
      Fail(op, code, message);
    } else {
      Succeed(op, start);
    }
    in_flight_[op].fetch_sub(1);
  }
  static std::string StatusCodeName(grpc::StatusCode code) {
    static constexpr std::array<const char*, 17> kNames = {"OK",
                                                           "CANCELLED",
                                                           "UNKNOWN",
                                                           "INVALID_ARGUMENT",
                                                           "DEADLINE_EXCEEDED",
                                                           "NOT_FOUND",
                                                           "ALREADY_EXISTS",
                                                           "PERMISSION_DENIED",
                                                           "RESOURCE_EXHAUSTED",
                                                           "FAILED_PRECONDITION",
                                                           "ABORTED",
                                                           "OUT_OF_RANGE",
                                                           "UNIMPLEMENTED",
                                                           "INTERNAL",
                                                           "UNAVAILABLE",
                                                           "DATA_LOSS",
                                                           "UNAUTHENTICATED"};
    const int c = static_cast<int>(code);
    return c >= 0 && c < 17 ? kNames[c] : absl::StrCat("CODE_", c);
  }
  void Print(const std::string& line) {
    std::lock_guard<std::mutex> lock(print_mu_);
    std::fputs(line.c_str(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }
  void SetDeadline(grpc::ClientContext* context) const {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::milliseconds(flags_.deadline_ms));
  }
  void AddToken(grpc::ClientContext* context, const std::string& citizen) const {
    tellonce::certs::CitizenAssertionClaims claims;
    claims.issuer = "https://eid.tellonce.local";
    claims.audience = "tellonce-portal";
    claims.citizen_id = citizen;
    absl::StatusOr<std::string> token = signer_->Mint(claims);
    if (token.ok()) context->AddMetadata(tellonce::certs::kCitizenAssertionMetadataKey, *token);
  }

  void GetAttributes(Op op, int64_t n, Clock::time_point start);
  void Grant(int64_t n, Clock::time_point start);
  void Revoke(const std::string& consent_id, const std::string& citizen, bool list);
  void ListConsents(const std::string& citizen);
  void Publish(int64_t n, Clock::time_point start);
  void ListEvents(int64_t n, Clock::time_point start);
  void Checkpoint(Clock::time_point start);
  void Inclusion(int64_t n, Clock::time_point start);

  const Flags flags_;
  const Clock::time_point begin_;
  const std::string run_ = absl::StrCat(getpid(), "-", absl::ToUnixSeconds(absl::Now()));
  std::vector<std::unique_ptr<Window>> windows_;
  std::array<std::atomic<int64_t>, kOpCount> in_flight_{};
  std::array<std::atomic<int64_t>, kOpCount> total_ok_{}, total_errors_{};
  std::atomic<int64_t> error_lines_{0}, errors_not_printed_{0};
  std::atomic<uint64_t> tree_size_{0};
  Stubs stubs_;
  std::unique_ptr<tellonce::certs::CitizenAssertionSigner> signer_;
  std::mutex print_mu_;
  std::mutex mu_;
  absl::flat_hash_map<std::string, Clock::time_point> pending_;  // published, not delivered
  int64_t published_ = 0, delivered_ = 0, redelivered_ = 0;
};

grpc::ServerUnaryReactor* Subscriber::DeliverChange(grpc::CallbackServerContext* context,
                                                    const v1::DeliverChangeRequest* request,
                                                    v1::DeliverChangeResponse*) {
  soak_->Delivered(request->event_id());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

absl::Status Soak::Connect() {
  absl::StatusOr<tellonce::certs::CitizenAssertionSigner> signer =
      tellonce::certs::CitizenAssertionSigner::FromPemFile(flags_.pki + "/idp/dev-idp.key");
  if (!signer.ok()) return signer.status();
  signer_ = std::make_unique<tellonce::certs::CitizenAssertionSigner>(*std::move(signer));
  int channel_id = 0;
  auto channel = [&](const std::string& agency) -> absl::StatusOr<std::shared_ptr<grpc::Channel>> {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
        tellonce::certs::MakeChannelCredentials(
            {flags_.pki + "/ca.pem", flags_.pki + "/agencies/" + agency + ".pem",
             flags_.pki + "/agencies/" + agency + ".key", ""},
            "spiffe://tellonce.local/broker");
    if (!creds.ok()) return creds.status();
    grpc::ChannelArguments args;
    args.SetInt("grpc.channel_id", ++channel_id);  // a connection of its own
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    std::shared_ptr<grpc::Channel> c = grpc::CreateCustomChannel(flags_.broker, *creds, args);
    if (!c->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
      return absl::UnavailableError(
          absl::StrCat("cannot connect to ", flags_.broker, " as ", agency));
    }
    return c;
  };
  for (int i = 0; i < 4; ++i) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> c = channel("tax");
    if (!c.ok()) return c.status();
    stubs_.tax.push_back(v1::ExchangeService::NewStub(*c));
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> benefits = channel("benefits");
  if (!benefits.ok()) return benefits.status();
  stubs_.benefits = v1::ExchangeService::NewStub(*benefits);
  absl::StatusOr<std::shared_ptr<grpc::Channel>> portal = channel("portal");
  if (!portal.ok()) return portal.status();
  stubs_.consent.push_back(v1::ConsentService::NewStub(*portal));
  stubs_.transparency = v1::TransparencyService::NewStub(*portal);
  absl::StatusOr<std::shared_ptr<grpc::Channel>> registry = channel("registry");
  if (!registry.ok()) return registry.status();
  stubs_.notification = v1::NotificationService::NewStub(*registry);
  return absl::OkStatus();
}

void Soak::Issue(Op op, int64_t n, Clock::time_point scheduled) {
  in_flight_[op].fetch_add(1);
  switch (op) {
    case kGetBank:
    case kGetRegistry:
      GetAttributes(op, n, scheduled);
      break;
    case kGrant:
      Grant(n, scheduled);
      break;
    case kPublish:
      Publish(n, scheduled);
      break;
    case kListEvents:
      ListEvents(n, scheduled);
      break;
    case kCheckpoint:
      Checkpoint(scheduled);
      break;
    case kInclusion:
      Inclusion(n, scheduled);
      break;
    default:
      in_flight_[op].fetch_sub(1);
      break;
  }
}

// splitmix64: spreads call numbers over citizens.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

void Soak::GetAttributes(Op op, int64_t n, Clock::time_point start) {
  struct Call {
    grpc::ClientContext context;
    v1::GetAttributesRequest request;
    v1::GetAttributesResponse response;
  };
  auto* call = new Call;
  const bool bank = op == kGetBank;
  const int64_t citizens = bank ? flags_.bank_citizens : flags_.registry_citizens;
  call->request.set_request_id(absl::StrCat("soak-", run_, "-", kOpNames[op], "-", n));
  call->request.set_citizen_id(tellonce::bench::CitizenId(
      static_cast<int64_t>(Mix(static_cast<uint64_t>(n)) % static_cast<uint64_t>(citizens))));
  call->request.add_attributes(bank ? "bank.interest_paid" : "person.name");
  call->request.set_purpose(bank ? "TAX_DEDUCTION_CHECK" : "TAX_ASSESSMENT");
  SetDeadline(&call->context);
  v1::ExchangeService::Stub& stub =
      bank ? *stubs_.tax[static_cast<size_t>(n) % stubs_.tax.size()] : *stubs_.benefits;
  stub.async()->GetAttributes(&call->context, &call->request, &call->response,
                              [this, op, call, start](grpc::Status s) {
                                Finish(op, start, s, [&]() -> std::pair<std::string, std::string> {
                                  if (call->response.results_size() != 1)
                                    return {"RESULT_MISSING", "no result"};
                                  const v1::AttributeResult& r = call->response.results(0);
                                  if (r.code() != v1::RESULT_OK)
                                    return {v1::ResultCode_Name(r.code()), r.detail()};
                                  return {};
                                });
                                delete call;
                              });
}

void Soak::Grant(int64_t n, Clock::time_point start) {
  struct Call {
    grpc::ClientContext context;
    v1::GrantConsentRequest request;
    v1::GrantConsentResponse response;
  };
  auto* call = new Call;
  // Citizens of their own, after those of the exchanges.
  const std::string citizen = tellonce::bench::CitizenId(
      flags_.bank_citizens + static_cast<int64_t>(Mix(static_cast<uint64_t>(n)) % 5000));
  call->request.set_request_id(absl::StrCat("soak-", run_, "-grant-", n));
  call->request.set_citizen_id(citizen);
  call->request.set_consumer("tax");
  call->request.add_attributes("bank.account_iban");
  call->request.set_purpose("TAX_DEDUCTION_CHECK");
  *call->request.mutable_expires_at() = google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
      absl::ToUnixNanos(absl::Now() + absl::Hours(24 * 30)));
  call->request.set_mode(v1::UNTIL_EXPIRY);
  SetDeadline(&call->context);
  AddToken(&call->context, citizen);
  stubs_.consent[0]->async()->GrantConsent(
      &call->context, &call->request, &call->response, [this, call, start, n](grpc::Status s) {
        std::string consent_id;
        Finish(kGrant, start, s, [&]() -> std::pair<std::string, std::string> {
          if (call->response.consent().status() != v1::ACTIVE) {
            return {"WRONG_STATUS", "the granted consent is not ACTIVE"};
          }
          consent_id = call->response.consent().consent_id();
          return {};
        });
        if (!consent_id.empty()) {
          in_flight_[kRevoke].fetch_add(1);
          Revoke(consent_id, call->request.citizen_id(), n % 5 == 0);
        }
        delete call;
      });
}

void Soak::Revoke(const std::string& consent_id, const std::string& citizen, bool list) {
  struct Call {
    grpc::ClientContext context;
    v1::RevokeConsentRequest request;
    v1::RevokeConsentResponse response;
  };
  auto* call = new Call;
  call->request.set_consent_id(consent_id);
  call->request.set_citizen_id(citizen);
  call->request.set_reason("soak");
  SetDeadline(&call->context);
  AddToken(&call->context, citizen);
  const Clock::time_point start = Clock::now();
  stubs_.consent[0]->async()->RevokeConsent(
      &call->context, &call->request, &call->response, [this, call, start, list](grpc::Status s) {
        Finish(kRevoke, start, s, [&]() -> std::pair<std::string, std::string> {
          if (call->response.consent().status() != v1::REVOKED) {
            return {"WRONG_STATUS", "the revoked consent is not REVOKED"};
          }
          return {};
        });
        if (list) {
          in_flight_[kListConsents].fetch_add(1);
          ListConsents(call->request.citizen_id());
        }
        delete call;
      });
}

void Soak::ListConsents(const std::string& citizen) {
  struct Call {
    grpc::ClientContext context;
    v1::ListConsentsRequest request;
    v1::ListConsentsResponse response;
  };
  auto* call = new Call;
  call->request.set_citizen_id(citizen);
  call->request.set_page_size(10);
  SetDeadline(&call->context);
  AddToken(&call->context, citizen);
  const Clock::time_point start = Clock::now();
  stubs_.consent[0]->async()->ListConsents(
      &call->context, &call->request, &call->response, [this, call, start](grpc::Status s) {
        Finish(kListConsents, start, s, [&]() -> std::pair<std::string, std::string> {
          if (call->response.consents_size() == 0) return {"EMPTY", "no consent listed"};
          return {};
        });
        delete call;
      });
}

void Soak::Publish(int64_t n, Clock::time_point start) {
  struct Call {
    grpc::ClientContext context;
    v1::PublishChangeRequest request;
    v1::PublishChangeResponse response;
  };
  auto* call = new Call;
  call->request.set_event_id(absl::StrCat("soak-", run_, "-", n));
  call->request.set_citizen_id(tellonce::bench::CitizenId(static_cast<int64_t>(
      Mix(static_cast<uint64_t>(n) + 7) % static_cast<uint64_t>(flags_.bank_citizens))));
  call->request.set_event_type("ADDRESS_CHANGED");
  call->request.add_attributes("person.address");
  *call->request.mutable_occurred_at() =
      google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::GetCurrentTimeNanos());
  SetDeadline(&call->context);
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_[call->request.event_id()] = start;
    ++published_;
  }
  stubs_.notification->async()->PublishChange(
      &call->context, &call->request, &call->response, [this, call, start](grpc::Status s) {
        bool failed = false;
        Finish(kPublish, start, s, [&]() -> std::pair<std::string, std::string> {
          if (call->response.replayed()) return {"REPLAYED", "a new event taken as a replay"};
          return {};
        });
        failed = !s.ok();
        if (failed) {
          // Maybe stored, maybe not: a delivery that comes anyway is counted as a stray.
          std::lock_guard<std::mutex> lock(mu_);
          pending_.erase(call->request.event_id());
          --published_;
        }
        delete call;
      });
}

void Soak::Delivered(const std::string& event_id) {
  Clock::time_point start;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pending_.find(event_id);
    if (it == pending_.end()) {
      ++redelivered_;
      return;
    }
    start = it->second;
    pending_.erase(it);
    ++delivered_;
  }
  Succeed(kDelivery, start);
}

void Soak::ListEvents(int64_t n, Clock::time_point start) {
  struct Call {
    grpc::ClientContext context;
    v1::ListAccessEventsRequest request;
    v1::ListAccessEventsResponse response;
  };
  auto* call = new Call;
  const std::string citizen = tellonce::bench::CitizenId(static_cast<int64_t>(
      Mix(static_cast<uint64_t>(n) + 11) % static_cast<uint64_t>(flags_.bank_citizens)));
  call->request.set_citizen_id(citizen);
  call->request.set_page_size(20);
  SetDeadline(&call->context);
  AddToken(&call->context, citizen);
  stubs_.transparency->async()->ListAccessEvents(
      &call->context, &call->request, &call->response, [this, call, start](grpc::Status s) {
        Finish(kListEvents, start, s, [] { return std::pair<std::string, std::string>(); });
        delete call;
      });
}

void Soak::Checkpoint(Clock::time_point start) {
  struct Call {
    grpc::ClientContext context;
    v1::GetCheckpointRequest request;
    v1::GetCheckpointResponse response;
  };
  auto* call = new Call;
  SetDeadline(&call->context);
  stubs_.transparency->async()->GetCheckpoint(
      &call->context, &call->request, &call->response, [this, call, start](grpc::Status s) {
        Finish(kCheckpoint, start, s, [&]() -> std::pair<std::string, std::string> {
          v1::Checkpoint body;
          if (!body.ParseFromString(call->response.checkpoint().body())) {
            return {"BAD_CHECKPOINT", "the checkpoint's body does not parse"};
          }
          uint64_t seen = tree_size_.load();
          if (body.tree_size() < seen) {
            return {"CHECKPOINT_SHRANK",
                    absl::StrCat("tree size ", body.tree_size(), " after ", seen)};
          }
          while (body.tree_size() > seen &&
                 !tree_size_.compare_exchange_weak(seen, body.tree_size())) {
          }
          return {};
        });
        delete call;
      });
}

void Soak::Inclusion(int64_t n, Clock::time_point start) {
  const uint64_t size = tree_size_.load();
  if (size == 0) {  // no checkpoint seen yet
    in_flight_[kInclusion].fetch_sub(1);
    return;
  }
  struct Call {
    grpc::ClientContext context;
    v1::GetInclusionProofRequest request;
    v1::GetInclusionProofResponse response;
  };
  auto* call = new Call;
  call->request.set_index(Mix(static_cast<uint64_t>(n) + 13) % size);
  call->request.set_tree_size(size);
  SetDeadline(&call->context);
  stubs_.transparency->async()->GetInclusionProof(
      &call->context, &call->request, &call->response, [this, call, start](grpc::Status s) {
        Finish(kInclusion, start, s, [&]() -> std::pair<std::string, std::string> {
          if (call->response.event_bytes().empty()) return {"NO_LEAF", "no event bytes"};
          return {};
        });
        delete call;
      });
}

void Soak::PrintWindow(size_t w, const Footprint& f) {
  Window& win = *windows_[std::min(w, windows_.size() - 1)];
  int64_t calls = 0, errors = 0;
  std::string per_op;
  for (int op = 0; op < kOpCount; ++op) {
    const int64_t ok = win.ok[op].load(), err = win.errors[op].load();
    total_ok_[op] += ok;
    total_errors_[op] += err;
    if (op != kDelivery) {
      calls += ok + err;
      errors += err;
    }
    absl::StrAppendFormat(&per_op, " ok.%s=%d err.%s=%d p99_ms.%s=%.2f", kOpNames[op], ok,
                          kOpNames[op], err, kOpNames[op], win.latency[op].Percentile(0.99) / 1e6);
  }
  Print(absl::StrFormat(
      "soak window=%d t=%d unix=%d rss_kb=%d fds=%d threads=%d wal_kb=%d calls=%d errors=%d "
      "p99_ms=%.2f p99_ms.exchange=%.2f%s",
      w, (w + 1) * kWindowSeconds, absl::ToUnixSeconds(absl::Now()), f.rss_kb, f.fds, f.threads,
      f.wal_kb, calls, errors, win.all.Percentile(0.99) / 1e6, win.exchange.Percentile(0.99) / 1e6,
      per_op));
}

void Soak::PrintDone(double seconds) {
  int64_t calls = 0, errors = 0;
  for (int op = 0; op < kOpCount; ++op) {
    if (op == kDelivery) continue;
    calls += total_ok_[op] + total_errors_[op];
    errors += total_errors_[op];
  }
  std::lock_guard<std::mutex> lock(mu_);
  Print(absl::StrFormat(
      "soak done seconds=%.0f calls=%d errors=%d published=%d delivered=%d undelivered=%d "
      "redelivered=%d skipped_errors_not_printed=%d",
      seconds, calls, errors, published_, delivered_, pending_.size(), redelivered_,
      errors_not_printed_.load()));
}

// Text-format tellonce.v1.AgencyRecords for the registry: person.name and
// person.address of synthetic citizens 0 .. citizens - 1.
bool WriteRegistryRecords(const std::string& path, int64_t citizens) {
  std::ofstream out(path);
  out << "# proto-message: tellonce.v1.AgencyRecords\n"
      << "# Generated by soak_load: synthetic Civil Registry records for the soak.\n";
  for (int64_t n = 0; n < citizens; ++n) {
    out << absl::StrFormat(
        "records {\n  citizen_id: \"%s\"\n"
        "  attributes { key: \"person.name\" value { string_value: \"Citizen %d\" } }\n"
        "  attributes { key: \"person.address\" value { string_value: \"Soak tn %d, Tallinn\" } "
        "}\n  as_of { seconds: 1738281600 }\n}\n",
        tellonce::bench::CitizenId(n), n, n);
  }
  out.close();
  return static_cast<bool>(out);
}

}  // namespace

int main(int argc, char** argv) {
  constexpr char kUsage[] =
      "usage: soak_load --broker HOST:PORT --pki DIR --broker-pid PID --subscriber-port PORT\n"
      "                 [--data-dir DIR] [--seconds 600] [--scale 1] [--deadline-ms 5000]\n"
      "                 [--bank-citizens 20000] [--registry-citizens 1000]\n"
      "       soak_load --write-registry-records FILE [--registry-citizens 1000]\n";
  Flags flags;
  using tellonce::bench::Number;
  using tellonce::bench::Text;
  if (!tellonce::bench::ParseFlags(argc, argv,
                                   {{"--broker", Text(&flags.broker)},
                                    {"--pki", Text(&flags.pki)},
                                    {"--write-registry-records", Text(&flags.registry_records)},
                                    {"--data-dir", Text(&flags.data_dir)},
                                    {"--broker-pid", Number(&flags.broker_pid)},
                                    {"--subscriber-port", Number(&flags.subscriber_port)},
                                    {"--seconds", Number(&flags.seconds)},
                                    {"--scale", Number(&flags.scale)},
                                    {"--deadline-ms", Number(&flags.deadline_ms)},
                                    {"--bank-citizens", Number(&flags.bank_citizens)},
                                    {"--registry-citizens", Number(&flags.registry_citizens)}},
                                   kUsage)) {
    return 2;
  }
  if (flags.registry_citizens < 1 || flags.bank_citizens < 1) {
    std::fputs("soak_load: --bank-citizens and --registry-citizens must be at least 1\n", stderr);
    return 2;
  }
  if (!flags.registry_records.empty()) {
    if (!WriteRegistryRecords(flags.registry_records, flags.registry_citizens)) {
      std::fprintf(stderr, "soak_load: cannot write %s\n", flags.registry_records.c_str());
      return 1;
    }
    return 0;
  }
  if (flags.broker.empty() || flags.pki.empty() || flags.broker_pid <= 0 ||
      flags.subscriber_port <= 0 || flags.seconds <= 0 || flags.scale <= 0 ||
      flags.deadline_ms <= 0) {
    std::fputs(kUsage, stderr);
    return 2;
  }

  // The tax office's connector, up before anything is published.
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> server_creds =
      tellonce::certs::MakeServerCredentials({flags.pki + "/ca.pem",
                                              flags.pki + "/agencies/tax.pem",
                                              flags.pki + "/agencies/tax.key", ""});
  if (!server_creds.ok()) {
    std::fprintf(stderr, "soak_load: %s\n", server_creds.status().ToString().c_str());
    return 1;
  }
  const Clock::time_point begin = Clock::now();
  auto soak = std::make_unique<Soak>(flags, begin);
  Subscriber subscriber(soak.get());
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat("127.0.0.1:", flags.subscriber_port), *server_creds);
  builder.RegisterService(&subscriber);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) {
    std::fprintf(stderr, "soak_load: cannot listen on port %d\n", flags.subscriber_port);
    return 1;
  }
  if (absl::Status connected = soak->Connect(); !connected.ok()) {
    std::fprintf(stderr, "soak_load: %s\n", connected.ToString().c_str());
    return 1;
  }

  const auto at = [&](double s) {
    return begin + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  };
  const Clock::time_point end = at(flags.seconds);
  std::atomic<bool> finished{false};
  // Windows: printed 200 ms after each ends, with the broker's footprint at its end.
  std::thread reporter([&] {
    for (size_t w = 0;; ++w) {
      const Clock::time_point boundary = at(static_cast<double>((w + 1) * kWindowSeconds));
      std::this_thread::sleep_until(boundary);
      const Footprint f = ReadFootprint(flags.broker_pid, flags.data_dir);
      std::this_thread::sleep_until(boundary + std::chrono::milliseconds(200));
      soak->PrintWindow(w, f);
      if (finished.load() && boundary >= end) return;
    }
  });

  // The schedule: every kind at its rate, checked every millisecond.
  std::array<int64_t, kOpCount> issued{};
  for (Clock::time_point now = Clock::now(); now < end; now = Clock::now()) {
    const double elapsed = std::chrono::duration<double>(now - begin).count();
    for (int op = 0; op < kOpCount; ++op) {
      const double rate = kRates[op] * flags.scale;
      if (rate <= 0) continue;
      // Call k is due at k / rate s.
      const auto due = static_cast<int64_t>(elapsed * rate) + 1;
      for (; issued[op] < due; ++issued[op]) {
        const Clock::time_point scheduled = at(static_cast<double>(issued[op]) / rate);
        if (soak->in_flight(static_cast<Op>(op)) >= kMaxInFlight) {
          soak->Backlogged(static_cast<Op>(op));
        } else {
          soak->Issue(static_cast<Op>(op), issued[op], scheduled);
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // Drain: calls in flight end by their deadline; deliveries get 30 s more.
  const Clock::time_point give_up = Clock::now() + std::chrono::seconds(30);
  while ((soak->total_in_flight() > 0 || soak->undelivered() > 0) && Clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  finished.store(true);
  reporter.join();
  soak->PrintDone(flags.seconds);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  // Calls abandoned past the drain still reference the load; do not wait for them.
  std::_Exit(0);
}
