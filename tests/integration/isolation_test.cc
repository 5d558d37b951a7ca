// One agency cannot take the broker from the others (issue 13, deliverables 2 and 3):
// a hung provider is cut off by its circuit breaker while another consumer's
// exchanges keep succeeding, a greedy consumer hits its own limit, caller deadlines are
// capped, and a certificate of the federation CA for an agency outside the directory
// does not get past the TLS handshake. Real processes on 127.0.0.1.

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "tellonce/v1/exchange.grpc.pb.h"
#include "tests/integration/harness.h"

namespace tellonce::testing {
namespace {

using tellonce::v1::GetAttributesRequest;
using tellonce::v1::GetAttributesResponse;

constexpr char kCitizen[] = "37605030299";
// Small limits, so that the test can reach them; the breaker opens after 3 failures
// and probes every 2 s; no caller waits more than 1.5 s.
constexpr char kBrokerConfig[] =
    "exchange {\n"
    "  max_in_flight: 64\n"
    "  max_in_flight_per_consumer: 32\n"
    "  max_fetches_per_provider: 16\n"
    "  max_deadline_ms: 1500\n"
    "  circuit_breaker { failure_threshold: 3 cool_down_ms: 2000 }\n"
    "}\n";

class IsolationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    absl::StatusOr<Pki> pki = MakePki(dir_->path() + "/pki", SampleDirectoryFile(), {"intruder"});
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = new Pki(*pki);
    absl::StatusOr<SampleConnectors> connectors = StartSampleConnectors(dir_->path(), *pki_);
    ASSERT_TRUE(connectors.ok()) << connectors.status();
    registry_ = connectors->registry.release();
    bank_ = connectors->bank.release();
    const std::string directory = connectors->directory_file;
    broker_ = new BrokerProcess(dir_->path() + "/broker", *pki_, directory, kBrokerConfig);
    ASSERT_TRUE(broker_->Start().ok()) << broker_->log();
    // The tax office may obtain the bank's figure; the benefits agency the address.
    for (const auto& [consumer, attribute, purpose] :
         {std::tuple{"tax", "bank.interest_paid", "TAX_DEDUCTION_CHECK"},
          std::tuple{"benefits", "person.address", "TAX_ASSESSMENT"}}) {
      absl::StatusOr<std::string> id = GrantConsent(*pki_, broker_->address(),
                                                    {.citizen = kCitizen,
                                                     .consumer = consumer,
                                                     .attributes = {attribute},
                                                     .purpose = purpose,
                                                     .mode = tellonce::v1::UNTIL_EXPIRY,
                                                     .lifetime = absl::Hours(24),
                                                     .request_id = ""});
      ASSERT_TRUE(id.ok()) << id.status();
    }
    tax_ = tellonce::v1::ExchangeService::NewStub(AgencyChannel(*pki_, "tax", broker_->address()))
               .release();
    benefits_ =
        tellonce::v1::ExchangeService::NewStub(AgencyChannel(*pki_, "benefits", broker_->address()))
            .release();
  }

  static void TearDownTestSuite() {
    delete tax_;
    delete benefits_;
    delete broker_;
    delete bank_;
    delete registry_;
    delete pki_;
    delete dir_;
  }

  void SetUp() override {
    ASSERT_NE(broker_, nullptr) << "suite set-up failed";
    registry_->Resume();
    bank_->Resume();
  }

  static GetAttributesRequest Request(const std::string& attribute, const std::string& purpose) {
    static std::atomic<int> n{0};
    GetAttributesRequest r;
    r.set_request_id("isolation-" + std::to_string(n++));
    r.set_citizen_id(kCitizen);
    r.add_attributes(attribute);
    r.set_purpose(purpose);
    return r;
  }

  static grpc::Status Call(tellonce::v1::ExchangeService::Stub* stub, const std::string& attribute,
                           const std::string& purpose, GetAttributesResponse* response,
                           absl::Duration deadline = absl::Seconds(10)) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    response->Clear();
    return stub->GetAttributes(&context, Request(attribute, purpose), response);
  }
  static grpc::Status BankCall(GetAttributesResponse* response,
                               absl::Duration deadline = absl::Seconds(10)) {
    return Call(tax_, "bank.interest_paid", "TAX_DEDUCTION_CHECK", response, deadline);
  }
  static grpc::Status RegistryCall(GetAttributesResponse* response) {
    return Call(benefits_, "person.address", "TAX_ASSESSMENT", response);
  }

  // The value of `name{labels}` on the broker's /metrics; -1 when absent.
  static double Metric(const std::string& sample) {
    std::string body;
    if (HttpGet(broker_->admin_port(), "/metrics", &body) != 200) return -1;
    for (absl::string_view line : absl::StrSplit(body, '\n')) {
      if (absl::StartsWith(line, sample + " ")) {
        double v = -1;
        if (absl::SimpleAtod(line.substr(sample.size() + 1), &v)) return v;
      }
    }
    return -1;
  }

  static TempDir* dir_;
  static Pki* pki_;
  static ConnectorProcess* registry_;
  static ConnectorProcess* bank_;
  static BrokerProcess* broker_;
  static tellonce::v1::ExchangeService::Stub* tax_;
  static tellonce::v1::ExchangeService::Stub* benefits_;
};

TempDir* IsolationTest::dir_ = nullptr;
Pki* IsolationTest::pki_ = nullptr;
ConnectorProcess* IsolationTest::registry_ = nullptr;
ConnectorProcess* IsolationTest::bank_ = nullptr;
BrokerProcess* IsolationTest::broker_ = nullptr;
tellonce::v1::ExchangeService::Stub* IsolationTest::tax_ = nullptr;
tellonce::v1::ExchangeService::Stub* IsolationTest::benefits_ = nullptr;

// Calls of the tax office to the bank, kept at `width` in flight (each issuing the next
// as it ends) until Stop(); counts how they ended.
class BankFlood {
 public:
  BankFlood(tellonce::v1::ExchangeService::Stub* stub, int width) : stub_(stub) {
    for (int i = 0; i < width; ++i) Start();
  }
  ~BankFlood() { Stop(); }

  void Stop() {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return in_flight_ == 0; };
    mu_.Await(absl::Condition(&idle));
  }
  int consumer_limited() {
    absl::MutexLock lock(&mu_);
    return consumer_limited_;
  }
  std::string last_refusal() {
    absl::MutexLock lock(&mu_);
    return last_refusal_;
  }

 private:
  struct Call {
    grpc::ClientContext context;
    GetAttributesRequest request;
    GetAttributesResponse response;
  };
  // Starts one more call unless stopping; the caller holds an in_flight_ count, which
  // the call takes over.
  void Next() {
    auto* call = new Call;
    call->context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Hours(1)));
    call->request.set_request_id("flood-" + std::to_string(n_++));
    call->request.set_citizen_id(kCitizen);
    call->request.add_attributes("bank.interest_paid");
    call->request.set_purpose("TAX_DEDUCTION_CHECK");
    stub_->async()->GetAttributes(&call->context, &call->request, &call->response,
                                  [this, call](grpc::Status status) { Ended(call, status); });
  }
  void Start() {
    {
      absl::MutexLock lock(&mu_);
      ++in_flight_;
    }
    Next();
  }
  void Ended(Call* call, const grpc::Status& status) {
    delete call;
    // Calls refused at once come back at once: keep the flood from spinning.
    absl::SleepFor(absl::Milliseconds(5));
    bool again;
    {
      absl::MutexLock lock(&mu_);
      if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
        ++consumer_limited_;
        last_refusal_ = status.error_message();
      }
      again = !stop_;
      if (!again) --in_flight_;  // the last thing this call does with the flood
    }
    if (again) Next();
  }

  tellonce::v1::ExchangeService::Stub* stub_;
  std::atomic<int> n_{0};
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int consumer_limited_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_refusal_ ABSL_GUARDED_BY(mu_);
};

TEST_F(IsolationTest, HungProviderIsCutOffAndOtherConsumersKeepBeingServed) {
  GetAttributesResponse response;
  ASSERT_TRUE(BankCall(&response).ok());
  ASSERT_EQ(response.results(0).code(), tellonce::v1::RESULT_OK) << response.DebugString();
  EXPECT_EQ(Metric("tellonce_connector_circuit_open{provider=\"bank\"}"), 0);

  bank_->Pause();  // accepts connections, answers nothing
  {
    // The tax office keeps 100 calls to the stopped bank going: more than its own
    // limit (32), more than the broker's (64).
    BankFlood flood(tax_, 100);
    // Meanwhile another consumer's registry-only exchanges all succeed.
    const absl::Time until = absl::Now() + absl::Seconds(6);
    int served = 0;
    while (absl::Now() < until) {
      grpc::Status status = RegistryCall(&response);
      ASSERT_TRUE(status.ok()) << status.error_message();
      ASSERT_EQ(response.results(0).code(), tellonce::v1::RESULT_OK)
          << response.results(0).detail();
      ++served;
      absl::SleepFor(absl::Milliseconds(50));
    }
    EXPECT_GE(served, 20);
    EXPECT_GT(flood.consumer_limited(), 0) << "the greedy consumer never hit its own limit";
    EXPECT_THAT(flood.last_refusal(), ::testing::HasSubstr("max_in_flight_per_consumer"));
  }

  // The breaker is open: bank calls fail at once, saying why.
  EXPECT_EQ(Metric("tellonce_connector_circuit_open{provider=\"bank\"}"), 1);
  // Fail fast: each refusal well inside the call's 10 s deadline, and the typical one
  // within 50 ms (the median, so that one call slowed by a busy CI machine does not
  // decide it).
  std::vector<absl::Duration> refusals;
  for (int i = 0; i < 10; ++i) {
    const absl::Time start = absl::Now();
    grpc::Status status = BankCall(&response);
    const absl::Duration took = absl::Now() - start;
    ASSERT_TRUE(status.ok()) << status.error_message();
    const tellonce::v1::AttributeResult& r = response.results(0);
    if (r.code() == tellonce::v1::RESULT_DEADLINE_EXCEEDED) continue;  // a half-open probe
    EXPECT_EQ(r.code(), tellonce::v1::RESULT_PROVIDER_UNAVAILABLE) << r.detail();
    EXPECT_THAT(r.detail(), ::testing::HasSubstr("circuit breaker open"));
    EXPECT_LT(took, absl::Seconds(1)) << "call " << i;
    refusals.push_back(took);
  }
  ASSERT_FALSE(refusals.empty());
  std::sort(refusals.begin(), refusals.end());
  EXPECT_LT(refusals[refusals.size() / 2], absl::Milliseconds(50));
  EXPECT_THAT(broker_->log(), ::testing::HasSubstr("circuit breaker open"));

  // The bank comes back: service returns by itself, once a probe gets through.
  bank_->Resume();
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  bool back = false;
  while (!back && absl::Now() < give_up) {
    grpc::Status status = BankCall(&response);
    back = status.ok() && response.results(0).code() == tellonce::v1::RESULT_OK;
    if (!back) absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_TRUE(back) << response.DebugString();
  EXPECT_EQ(Metric("tellonce_connector_circuit_open{provider=\"bank\"}"), 0);
  EXPECT_THAT(broker_->log(), ::testing::HasSubstr("circuit breaker closed"));
}

TEST_F(IsolationTest, CallerDeadlineIsCapped) {
  // The registry stops answering; a caller asking for an hour gets max_deadline_ms.
  registry_->Pause();
  GetAttributesResponse response;
  const absl::Time start = absl::Now();
  grpc::Status status =
      Call(benefits_, "person.address", "TAX_ASSESSMENT", &response, absl::Hours(1));
  const absl::Duration took = absl::Now() - start;
  registry_->Resume();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.results(0).code(), tellonce::v1::RESULT_DEADLINE_EXCEEDED)
      << response.results(0).detail();
  EXPECT_LT(took, absl::Seconds(6));  // the cap, not the hour (slack for a busy machine)
  EXPECT_GT(took, absl::Seconds(1));
}

TEST_F(IsolationTest, CertificateOfAnAgencyOutsideTheDirectoryFailsTheHandshake) {
  // The federation CA issued it, but "intruder" is not in the directory.
  std::shared_ptr<grpc::Channel> channel = AgencyChannel(*pki_, "intruder", broker_->address());
  EXPECT_FALSE(channel->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Seconds(3))));
  auto stub = tellonce::v1::ExchangeService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  GetAttributesResponse response;
  grpc::Status status =
      stub->GetAttributes(&context, Request("person.address", "TAX_ASSESSMENT"), &response);
  // UNAVAILABLE: no connection; PERMISSION_DENIED would mean a stream was accepted.
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_THAT(broker_->log(), ::testing::HasSubstr("not an agency of the directory"));
  // A member still gets in.
  ASSERT_TRUE(RegistryCall(&response).ok());
}

}  // namespace
}  // namespace tellonce::testing
