// broker::ConnectorPool's batching of fetches, against a real connector (the SDK's
// ConnectorServer, in-process) over mutual TLS on 127.0.0.1: every fetch gets its own
// answer, errors stay with their fetch, a fetch never waits past its deadline for a
// batch slot, and a connector without the batch call still gets every fetch.

#include "broker/connector_pool.h"

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "certs/tls.h"
#include "connectors/sdk.h"
#include "consent/directory.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "tests/testing/loopback_connector.h"
#include "tests/testing/sample_directory.h"
#include "tests/testing/temp_dir.h"

namespace tellonce::broker {
namespace {

using ::tellonce::testing::AgencyTls;
using ::tellonce::testing::BrokerTls;
using ::tellonce::testing::LoopbackConnectorOptions;
using ::tellonce::testing::TempDir;
using ::tellonce::v1::FetchAttributesRequest;
using ::tellonce::v1::FetchAttributesResponse;

std::string SourceDir() {
  const char* src = std::getenv("TELLONCE_SOURCE_DIR");
  return src != nullptr ? src : ".";
}

FetchAttributesRequest Ask(const std::string& citizen) {
  FetchAttributesRequest r;
  r.set_exchange_id(absl::StrCat("x-", citizen));
  r.set_citizen_id(citizen);
  r.add_attributes("bank.interest_paid");
  r.set_consumer("tax");
  r.set_purpose("TAX_DEDUCTION_CHECK");
  return r;
}

// Answers each fetch with the citizen id as the value, after `delay`; citizens
// starting with "unknown" are NOT_FOUND, those starting with "held" wait for Release().
class EchoSource final : public connectors::AttributeSource {
 public:
  explicit EchoSource(absl::Duration delay = absl::ZeroDuration()) : delay_(delay) {}

  absl::StatusOr<FetchAttributesResponse> Fetch(const connectors::FetchContext& ctx) override {
    fetched_.fetch_add(1);
    if (absl::StartsWith(ctx.citizen_id, "held")) released_.WaitForNotification();
    if (delay_ > absl::ZeroDuration()) absl::SleepFor(delay_);
    if (absl::StartsWith(ctx.citizen_id, "unknown")) {
      return absl::NotFoundError("no such customer");
    }
    FetchAttributesResponse response;
    auto* a = response.add_attributes();
    a->set_name(ctx.attributes[0]);
    a->mutable_value()->set_string_value(ctx.citizen_id);
    return response;
  }
  void Release() {
    if (!released_.HasBeenNotified()) released_.Notify();
  }
  int fetched() const { return fetched_.load(); }

 private:
  const absl::Duration delay_;
  absl::Notification released_;
  std::atomic<int> fetched_{0};
};

// A connector built without FetchAttributesBatch (gRPC answers it UNIMPLEMENTED).
class UnaryOnlyService final : public tellonce::v1::ConnectorService::CallbackService {
 public:
  grpc::ServerUnaryReactor* FetchAttributes(grpc::CallbackServerContext* context,
                                            const FetchAttributesRequest* request,
                                            FetchAttributesResponse* response) override {
    auto* a = response->add_attributes();
    a->set_name(request->attributes(0));
    a->mutable_value()->set_string_value(request->citizen_id());
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

// The outcome of one fetch, filled by its callback.
struct Answer {
  absl::Mutex mu;
  bool done ABSL_GUARDED_BY(mu) = false;
  grpc::Status status ABSL_GUARDED_BY(mu);
  std::string value ABSL_GUARDED_BY(mu);

  ConnectorPool::FetchDone Callback() {
    return [this](const grpc::Status& s, FetchAttributesResponse response) {
      absl::MutexLock lock(&mu);
      status = s;
      if (s.ok() && response.attributes_size() == 1) {
        value = response.attributes(0).value().string_value();
      }
      done = true;
    };
  }
  // Waits up to `timeout` for the callback; false if it has not run.
  bool Wait(absl::Duration timeout) {
    absl::MutexLock lock(&mu);
    return mu.AwaitWithTimeout(absl::Condition(&done), timeout);
  }
};

class ConnectorPoolTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    ASSERT_EQ(std::system(absl::StrCat(SourceDir(), "/certs/make-dev-pki --out ", dir_->path(),
                                       "/pki --directory ", SourceDir(),
                                       "/deploy/local/directory.textproto > /dev/null 2>&1")
                              .c_str()),
              0);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string PkiDir() { return dir_->path() + "/pki"; }

  ~ConnectorPoolTest() override {
    if (source_ != nullptr) source_->Release();
    bank_.reset();
  }

  // Serves an EchoSource answering after `delay` as the bank's connector.
  EchoSource& StartBank(absl::Duration delay = absl::ZeroDuration()) {
    source_ = std::make_unique<EchoSource>(delay);
    StartBankWith(source_.get());
    return *source_;
  }
  void StartBankWith(connectors::AttributeSource* source) {
    absl::StatusOr<std::unique_ptr<connectors::ConnectorServer>> server =
        connectors::ConnectorServer::Start(LoopbackConnectorOptions(PkiDir(), "bank"), source);
    ASSERT_TRUE(server.ok()) << server.status();
    bank_ = *std::move(server);
    PointBankAt(absl::StrCat("127.0.0.1:", bank_->port()));
  }

  void PointBankAt(const std::string& endpoint) {
    absl::StatusOr<std::shared_ptr<const consent::Directory>> directory =
        ::tellonce::testing::LoadSampleDirectory(SourceDir() + "/deploy/local/directory.textproto",
                                                 dir_->path());
    ASSERT_TRUE(directory.ok()) << directory.status();
    tellonce::v1::Directory proto = (*directory)->proto();
    for (auto& agency : *proto.mutable_agencies()) {
      if (agency.id() == "bank") agency.set_connector_endpoint(endpoint);
    }
    absl::StatusOr<std::shared_ptr<const consent::Directory>> patched =
        consent::Directory::FromProto(proto);
    ASSERT_TRUE(patched.ok()) << patched.status();
    directory_ = *patched;
  }

  std::unique_ptr<ConnectorPool> MakePool(uint32_t max_per_batch, uint32_t in_flight) {
    return std::make_unique<ConnectorPool>(
        ConnectorPool::Options{.tls = BrokerTls(PkiDir()),
                               .max_fetches_per_batch = max_per_batch,
                               .batches_in_flight = in_flight});
  }

  void Fetch(ConnectorPool& pool, const std::string& citizen, Answer& answer,
             absl::Duration deadline = absl::Seconds(10)) {
    pool.Fetch(*directory_, "bank", Ask(citizen), absl::Now() + deadline, answer.Callback());
  }

  // Fetches `citizens` from 4 threads at once; every answer must arrive.
  std::vector<std::unique_ptr<Answer>> FetchAll(ConnectorPool& pool,
                                                const std::vector<std::string>& citizens) {
    std::vector<std::unique_ptr<Answer>> answers;
    for (size_t i = 0; i < citizens.size(); ++i) answers.push_back(std::make_unique<Answer>());
    std::vector<std::thread> threads;
    for (size_t t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (size_t i = t; i < citizens.size(); i += 4) Fetch(pool, citizens[i], *answers[i]);
      });
    }
    for (std::thread& t : threads) t.join();
    for (size_t i = 0; i < answers.size(); ++i) {
      EXPECT_TRUE(answers[i]->Wait(absl::Seconds(20))) << "fetch " << i << " never answered";
    }
    return answers;
  }

  static TempDir* dir_;
  std::shared_ptr<const consent::Directory> directory_;
  // The source outlives the server that calls it.
  std::unique_ptr<EchoSource> source_;
  std::unique_ptr<connectors::ConnectorServer> bank_;
};

TempDir* ConnectorPoolTest::dir_ = nullptr;

TEST_F(ConnectorPoolTest, ConcurrentFetchesShareCallsAndEachGetsItsOwnAnswer) {
  EchoSource& source = StartBank(absl::Milliseconds(1));
  auto pool = MakePool(64, 2);
  std::vector<std::string> citizens;
  for (int i = 0; i < 400; ++i) citizens.push_back(absl::StrCat("c", i));
  auto answers = FetchAll(*pool, citizens);
  for (size_t i = 0; i < answers.size(); ++i) {
    absl::MutexLock lock(&answers[i]->mu);
    EXPECT_TRUE(answers[i]->status.ok()) << i << ": " << answers[i]->status.error_message();
    EXPECT_EQ(answers[i]->value, citizens[i]);
  }
  EXPECT_EQ(pool->counters().fetches.load(), 400u);
  EXPECT_EQ(source.fetched(), 400);
  // 400 fetches of >= 1 ms each, at most 2 calls in flight: they cannot all have had
  // a call of their own.
  EXPECT_LT(pool->counters().calls.load(), 200u);
}

TEST_F(ConnectorPoolTest, AnErrorOfOneFetchStaysWithThatFetch) {
  StartBank(absl::Milliseconds(1));
  auto pool = MakePool(64, 1);
  std::vector<std::string> citizens;
  for (int i = 0; i < 100; ++i) citizens.push_back(absl::StrCat(i % 5 == 0 ? "unknown" : "c", i));
  auto answers = FetchAll(*pool, citizens);
  for (size_t i = 0; i < answers.size(); ++i) {
    absl::MutexLock lock(&answers[i]->mu);
    if (i % 5 == 0) {
      EXPECT_EQ(answers[i]->status.error_code(), grpc::StatusCode::NOT_FOUND) << i;
    } else {
      EXPECT_TRUE(answers[i]->status.ok()) << i << ": " << answers[i]->status.error_message();
      EXPECT_EQ(answers[i]->value, citizens[i]);
    }
  }
  EXPECT_LT(pool->counters().calls.load(), 100u);
}

TEST_F(ConnectorPoolTest, AFetchNeverWaitsPastItsDeadlineForABatchSlot) {
  EchoSource& source = StartBank();
  auto pool = MakePool(64, 1);
  // The only slot: a batch held by the connector for as long as the test wants.
  Answer held;
  Fetch(*pool, "held-1", held, absl::Seconds(20));
  for (int i = 0; i < 500 && source.fetched() == 0; ++i) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_EQ(source.fetched(), 1);

  // A fetch that may wait longer than the held batch waits for its slot...
  Answer patient;
  Fetch(*pool, "c-patient", patient, absl::Seconds(30));
  // ...one that would end before it goes out at once, on a call of its own.
  Answer hurried;
  Fetch(*pool, "c-hurried", hurried, absl::Seconds(3));
  EXPECT_TRUE(hurried.Wait(absl::Seconds(2)));
  {
    absl::MutexLock lock(&hurried.mu);
    EXPECT_TRUE(hurried.status.ok()) << hurried.status.error_message();
    EXPECT_EQ(hurried.value, "c-hurried");
  }
  EXPECT_FALSE(patient.Wait(absl::Milliseconds(200))) << "went out while the slot was taken";

  source.Release();
  EXPECT_TRUE(held.Wait(absl::Seconds(10)));
  EXPECT_TRUE(patient.Wait(absl::Seconds(10)));
  absl::MutexLock lock(&patient.mu);
  EXPECT_TRUE(patient.status.ok()) << patient.status.error_message();
  EXPECT_EQ(patient.value, "c-patient");
}

TEST_F(ConnectorPoolTest, AFetchWhoseDeadlinePassedIsNotSent) {
  EchoSource& source = StartBank();
  auto pool = MakePool(64, 2);
  Answer late;
  Fetch(*pool, "c1", late, -absl::Seconds(1));
  ASSERT_TRUE(late.Wait(absl::Seconds(5)));
  absl::MutexLock lock(&late.mu);
  EXPECT_EQ(late.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(source.fetched(), 0);
}

TEST_F(ConnectorPoolTest, WithoutBatchingEveryFetchIsACall) {
  StartBank();
  auto pool = MakePool(1, 2);
  std::vector<std::string> citizens;
  for (int i = 0; i < 50; ++i) citizens.push_back(absl::StrCat("c", i));
  auto answers = FetchAll(*pool, citizens);
  for (size_t i = 0; i < answers.size(); ++i) {
    absl::MutexLock lock(&answers[i]->mu);
    EXPECT_TRUE(answers[i]->status.ok()) << answers[i]->status.error_message();
    EXPECT_EQ(answers[i]->value, citizens[i]);
  }
  EXPECT_EQ(pool->counters().calls.load(), 50u);
}

TEST_F(ConnectorPoolTest, AConnectorWithoutTheBatchCallGetsOneCallPerFetch) {
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      certs::MakeServerCredentials(AgencyTls(PkiDir(), "bank"));
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  UnaryOnlyService service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", *credentials, &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  PointBankAt(absl::StrCat("127.0.0.1:", port));

  auto pool = MakePool(64, 2);
  std::vector<std::string> citizens;
  for (int i = 0; i < 40; ++i) citizens.push_back(absl::StrCat("c", i));
  auto answers = FetchAll(*pool, citizens);
  for (size_t i = 0; i < answers.size(); ++i) {
    absl::MutexLock lock(&answers[i]->mu);
    EXPECT_TRUE(answers[i]->status.ok()) << i << ": " << answers[i]->status.error_message();
    EXPECT_EQ(answers[i]->value, citizens[i]);
  }
  // Once refused, the batch call is not tried again.
  const uint64_t calls = pool->counters().calls.load();
  Answer one_more;
  Fetch(*pool, "c-last", one_more);
  ASSERT_TRUE(one_more.Wait(absl::Seconds(10)));
  EXPECT_EQ(pool->counters().calls.load(), calls + 1);
  pool.reset();
  server->Shutdown();
}

TEST_F(ConnectorPoolTest, AConnectorThatIsDownFailsEveryFetchAtOnce) {
  PointBankAt("127.0.0.1:1");
  auto pool = MakePool(64, 2);
  std::vector<std::string> citizens = {"c1", "c2", "c3", "c4", "c5"};
  const absl::Time start = absl::Now();
  auto answers = FetchAll(*pool, citizens);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  for (auto& answer : answers) {
    absl::MutexLock lock(&answer->mu);
    EXPECT_EQ(answer->status.error_code(), grpc::StatusCode::UNAVAILABLE);
  }
}

TEST_F(ConnectorPoolTest, AnAgencyWithoutAConnectorIsUnavailable) {
  PointBankAt("127.0.0.1:1");
  auto pool = MakePool(64, 2);
  Answer answer;
  pool->Fetch(*directory_, "portal", Ask("c1"), absl::Now() + absl::Seconds(5), answer.Callback());
  ASSERT_TRUE(answer.Wait(absl::Seconds(1)));
  absl::MutexLock lock(&answer.mu);
  EXPECT_EQ(answer.status.error_code(), grpc::StatusCode::UNAVAILABLE);
}

// Isolation (issue 13): the breaker and the per-provider limit.
std::unique_ptr<ConnectorPool> MakeGuardedPool(const std::string& pki, uint32_t threshold,
                                               uint32_t max_outstanding) {
  CircuitBreaker::Options breaker;
  breaker.failure_threshold = threshold;
  breaker.cool_down = absl::Hours(1);
  return std::make_unique<ConnectorPool>(ConnectorPool::Options{
      .tls = BrokerTls(pki), .max_fetches_per_provider = max_outstanding, .breaker = breaker});
}

TEST_F(ConnectorPoolTest, AfterFailuresInARowTheBreakerRefusesFetchesAtOnceSayingWhy) {
  PointBankAt("127.0.0.1:1");
  auto pool = MakeGuardedPool(PkiDir(), 3, 512);
  for (int i = 0; i < 3; ++i) {
    Answer answer;
    Fetch(*pool, "c1", answer);
    ASSERT_TRUE(answer.Wait(absl::Seconds(10)));
    absl::MutexLock lock(&answer.mu);
    EXPECT_EQ(answer.status.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_NE(answer.status.error_details(), ConnectorPool::kRefusedByBroker) << "fetch " << i;
  }
  EXPECT_EQ(pool->BreakerState("bank"), CircuitBreaker::State::kOpen);
  Answer refused;
  const absl::Time start = absl::Now();
  Fetch(*pool, "c1", refused);
  ASSERT_TRUE(refused.Wait(absl::Seconds(1)));
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(50));
  absl::MutexLock lock(&refused.mu);
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(refused.status.error_details(), ConnectorPool::kRefusedByBroker);
  EXPECT_TRUE(absl::StrContains(refused.status.error_message(), "circuit breaker open"))
      << refused.status.error_message();
  EXPECT_EQ(pool->counters().refused_circuit_open.load(), 1u);
}

TEST_F(ConnectorPoolTest, AnswersThatAreErrorsAboutTheRequestDoNotOpenTheBreaker) {
  StartBank();
  auto pool = MakeGuardedPool(PkiDir(), 2, 512);
  for (int i = 0; i < 5; ++i) {
    Answer answer;
    Fetch(*pool, absl::StrCat("unknown-", i), answer);
    ASSERT_TRUE(answer.Wait(absl::Seconds(10)));
    absl::MutexLock lock(&answer.mu);
    EXPECT_EQ(answer.status.error_code(), grpc::StatusCode::NOT_FOUND);
  }
  EXPECT_EQ(pool->BreakerState("bank"), CircuitBreaker::State::kClosed);
}

TEST_F(ConnectorPoolTest, FetchesBeyondTheProviderLimitFailAtOnce) {
  EchoSource& source = StartBank();
  auto pool = MakeGuardedPool(PkiDir(), 5, 2);
  Answer held1, held2, over;
  Fetch(*pool, "held-1", held1);
  Fetch(*pool, "held-2", held2);
  Fetch(*pool, "c3", over);
  ASSERT_TRUE(over.Wait(absl::Seconds(1))) << "the third fetch waited";
  {
    absl::MutexLock lock(&over.mu);
    EXPECT_EQ(over.status.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_EQ(over.status.error_details(), ConnectorPool::kRefusedByBroker);
    EXPECT_TRUE(absl::StrContains(over.status.error_message(), "max_fetches_per_provider"))
        << over.status.error_message();
  }
  source.Release();
  ASSERT_TRUE(held1.Wait(absl::Seconds(10)));
  ASSERT_TRUE(held2.Wait(absl::Seconds(10)));
  // Their places are free again.
  Answer again;
  Fetch(*pool, "c4", again);
  ASSERT_TRUE(again.Wait(absl::Seconds(10)));
  absl::MutexLock lock(&again.mu);
  EXPECT_TRUE(again.status.ok()) << again.status.error_message();
  EXPECT_EQ(again.value, "c4");
}

}  // namespace
}  // namespace tellonce::broker
