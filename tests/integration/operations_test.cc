// What an operator sees of a running federation: the admin listener's /metrics (parsed
// by Prometheus's own client library), /healthz and /readyz without a client
// certificate, and logs that are JSON lines without citizen data. Real processes, real
// mutual TLS on 127.0.0.1.

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/byte_buffer.h"
#include "gtest/gtest.h"
#include "proto/textproto.h"
#include "tellonce/v1/agency_records.pb.h"
#include "tellonce/v1/exchange.grpc.pb.h"
#include "tests/integration/harness.h"

namespace tellonce::testing {
namespace {

// A citizen present in both sample data files, and one with no consent at all.
constexpr char kCitizen[] = "37605030299";
constexpr char kStranger[] = "49403136526";

// Samples of one scrape: "name|label=value,...|" -> value (labels sorted by name).
using Samples = std::map<std::string, double>;

// Scrapes /metrics and parses it with prometheus_client's parser
// (tests/integration/parse_metrics.py); fails the test when it does not parse.
Samples Scrape(int admin_port, const std::string& dir) {
  std::string body;
  EXPECT_EQ(HttpGet(admin_port, "/metrics", &body), 200);
  const std::string file = dir + "/scrape.txt";
  std::ofstream(file) << body;
  std::string output;
  const int rc = RunCommand(
      {std::string(std::getenv("TELLONCE_SOURCE_DIR")) + "/tests/integration/parse_metrics.py",
       file},
      &output);
  EXPECT_EQ(rc, 0) << output;
  Samples samples;
  for (absl::string_view line : absl::StrSplit(output, '\n', absl::SkipEmpty())) {
    std::vector<std::string> parts = absl::StrSplit(line, '|');
    if (parts.size() != 3) continue;
    double value = 0;
    if (!absl::SimpleAtod(parts[2], &value)) continue;
    samples[parts[0] + "|" + parts[1]] = value;
  }
  EXPECT_GT(samples.size(), 50u) << output;
  return samples;
}

double Value(const Samples& s, const std::string& key) {
  auto it = s.find(key);
  return it == s.end() ? 0 : it->second;
}

// The sum of every sample named `name` whose labels contain `label_part`.
double Sum(const Samples& s, const std::string& name, const std::string& label_part = "") {
  double sum = 0;
  for (const auto& [key, value] : s) {
    if (absl::StartsWith(key, name + "|") && absl::StrContains(key, label_part)) sum += value;
  }
  return sum;
}

class OperationsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    absl::StatusOr<Pki> pki = MakePki(dir_->path() + "/pki", SampleDirectoryFile());
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = new Pki(*pki);
    const std::string json_log = "log { format: JSON level: INFO }\n";
    absl::StatusOr<SampleConnectors> connectors = StartSampleConnectors(
        dir_->path(), *pki_, json_log, json_log + "admin { listen_address: \"127.0.0.1:0\" }\n");
    ASSERT_TRUE(connectors.ok()) << connectors.status();
    registry_ = connectors->registry.release();
    bank_ = connectors->bank.release();
    directory_ = connectors->directory_file;
    broker_ = new BrokerProcess(dir_->path() + "/broker", *pki_, directory_, json_log);
    ASSERT_TRUE(broker_->Start().ok()) << broker_->log();
    ASSERT_GT(broker_->admin_port(), 0);
  }
  static void TearDownTestSuite() {
    delete broker_;
    delete bank_;
    delete registry_;
    delete pki_;
    delete dir_;
  }

  void SetUp() override {
    for (ServerProcess* p :
         {static_cast<ServerProcess*>(registry_), static_cast<ServerProcess*>(bank_)}) {
      if (!p->running()) {
        ASSERT_TRUE(p->Start().ok()) << p->log();
      }
    }
  }

  // kCitizen lets the tax office see `attributes` for TAX_DEDUCTION_CHECK.
  static absl::StatusOr<std::string> GrantTaxConsent(std::vector<std::string> attributes) {
    return GrantConsent(*pki_, broker_->address(),
                        {.citizen = kCitizen,
                         .consumer = "tax",
                         .attributes = std::move(attributes),
                         .purpose = "TAX_DEDUCTION_CHECK"});
  }

  static tellonce::v1::AttributeResult Fetch(const std::string& citizen,
                                             const std::string& attribute,
                                             const std::string& request_id) {
    tellonce::v1::GetAttributesResponse response;
    grpc::Status status =
        GetAttributes(*pki_, broker_->address(), "tax", citizen, {attribute}, "TAX_DEDUCTION_CHECK",
                      &response, absl::Seconds(10), request_id);
    EXPECT_TRUE(status.ok()) << status.error_message();
    if (!status.ok() || response.results_size() != 1) return {};
    return response.results(0);
  }

  static TempDir* dir_;
  static Pki* pki_;
  static std::string directory_;
  static ConnectorProcess* registry_;
  static ConnectorProcess* bank_;
  static BrokerProcess* broker_;
};

TempDir* OperationsTest::dir_ = nullptr;
Pki* OperationsTest::pki_ = nullptr;
std::string OperationsTest::directory_;
ConnectorProcess* OperationsTest::registry_ = nullptr;
ConnectorProcess* OperationsTest::bank_ = nullptr;
BrokerProcess* OperationsTest::broker_ = nullptr;

TEST_F(OperationsTest, MetricsCountEveryExchangeInItsResultSeries) {
  ASSERT_TRUE(GrantTaxConsent({"bank.interest_paid"}).ok());
  const Samples before = Scrape(broker_->admin_port(), dir_->path());
  constexpr int kAllowed = 5, kRefused = 3;
  for (int i = 0; i < kAllowed; ++i) {
    EXPECT_EQ(Fetch(kCitizen, "bank.interest_paid", absl::StrCat("ok-", i)).code(),
              tellonce::v1::RESULT_OK);
  }
  for (int i = 0; i < kRefused; ++i) {
    EXPECT_EQ(Fetch(kStranger, "bank.interest_paid", absl::StrCat("no-", i)).code(),
              tellonce::v1::RESULT_NO_BASIS);
  }
  // The RPC counters are taken once the status is sent, so the client may see the last
  // reply first: wait for them (failed under ASan, as the same wait in
  // RequestBytesThatDoNotParseAreInvalidArgumentNotUnimplemented).
  auto counted = [&](const Samples& now) {
    for (const char* key :
         {"tellonce_rpc_requests_total|code=OK,method=GetAttributes,service=ExchangeService",
          "tellonce_rpc_duration_seconds_count|method=GetAttributes,service=ExchangeService"}) {
      if (Value(now, key) - Value(before, key) < kAllowed + kRefused) return false;
    }
    return true;
  };
  Samples after = Scrape(broker_->admin_port(), dir_->path());
  const absl::Time counted_by = absl::Now() + absl::Seconds(10);
  while (!counted(after) && absl::Now() < counted_by) {
    absl::SleepFor(absl::Milliseconds(50));
    after = Scrape(broker_->admin_port(), dir_->path());
  }
  // The citizens of these exchanges appear nowhere in the exposition.
  std::string raw;
  ASSERT_EQ(HttpGet(broker_->admin_port(), "/metrics", &raw), 200);
  EXPECT_FALSE(absl::StrContains(raw, kCitizen));
  EXPECT_FALSE(absl::StrContains(raw, kStranger));

  auto delta = [&](const std::string& key) { return Value(after, key) - Value(before, key); };
  EXPECT_EQ(delta("tellonce_exchange_attribute_results_total|result=RESULT_OK"), kAllowed);
  EXPECT_EQ(delta("tellonce_exchange_attribute_results_total|result=RESULT_NO_BASIS"), kRefused);
  EXPECT_EQ(
      delta("tellonce_rpc_requests_total|code=OK,method=GetAttributes,service=ExchangeService"),
      kAllowed + kRefused);
  EXPECT_EQ(
      delta("tellonce_rpc_duration_seconds_count|method=GetAttributes,service=ExchangeService"),
      kAllowed + kRefused);
  EXPECT_GT(delta("tellonce_rpc_duration_seconds_sum|method=GetAttributes,service=ExchangeService"),
            0);
  // Only the allowed fetches reach the bank; batching may put several in one call.
  const double bank_calls = Sum(after, "tellonce_connector_calls_total", "provider=bank") -
                            Sum(before, "tellonce_connector_calls_total", "provider=bank");
  EXPECT_GE(bank_calls, 1);
  EXPECT_LE(bank_calls, kAllowed);
  EXPECT_EQ(delta("tellonce_connector_call_duration_seconds_count|provider=bank"), bank_calls);
  // Every exchange appends its access events durably: groups and writes moved.
  EXPECT_GE(delta("tellonce_commit_operations_total|"), kAllowed + kRefused);
  EXPECT_GE(delta("tellonce_commit_groups_total|"), 1);
  EXPECT_GE(delta("tellonce_commit_group_operations_count|"), 1);
  EXPECT_GE(delta("tellonce_commit_write_duration_seconds_count|"), 1);
  EXPECT_GT(Value(after, "process_resident_memory_bytes|"), 1e6);
  EXPECT_GT(Value(after, "process_open_fds|"), 3);
  EXPECT_GT(Value(after, "process_start_time_seconds|"), 1.7e9);
  EXPECT_EQ(Value(after, "tellonce_ready|"), 1);
  EXPECT_TRUE(after.count("tellonce_uptime_seconds|"));
  // The access log catches up off the request path.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  Samples later = after;
  while (Value(later, "tellonce_access_log_leaves|") -
                 Value(before, "tellonce_access_log_leaves|") <
             kAllowed + kRefused &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(200));
    later = Scrape(broker_->admin_port(), dir_->path());
  }
  EXPECT_GE(
      Value(later, "tellonce_access_log_leaves|") - Value(before, "tellonce_access_log_leaves|"),
      kAllowed + kRefused);
}

TEST_F(OperationsTest, ConnectorServesItsOwnMetricsAndProbes) {
  ASSERT_GT(bank_->admin_port(), 0);
  EXPECT_EQ(HttpGet(bank_->admin_port(), "/healthz"), 200);
  EXPECT_EQ(HttpGet(bank_->admin_port(), "/readyz"), 200);
  const Samples before = Scrape(bank_->admin_port(), dir_->path());
  ASSERT_TRUE(GrantTaxConsent({"bank.interest_paid"}).ok());
  EXPECT_EQ(Fetch(kCitizen, "bank.interest_paid", "conn-1").code(), tellonce::v1::RESULT_OK);
  const Samples after = Scrape(bank_->admin_port(), dir_->path());
  EXPECT_EQ(Sum(after, "tellonce_rpc_requests_total", "code=OK,method=FetchAttributes") -
                Sum(before, "tellonce_rpc_requests_total", "code=OK,method=FetchAttributes"),
            1);
  EXPECT_GT(Value(after, "process_resident_memory_bytes|"), 1e6);
  // The registry has no admin listener configured: none is open.
  EXPECT_EQ(registry_->admin_port(), 0);
}

TEST_F(OperationsTest, ProbesNeedNoClientCertificateButTheAgencyPortDoes) {
  std::string body;
  EXPECT_EQ(HttpGet(broker_->admin_port(), "/healthz", &body), 200);
  EXPECT_EQ(body, "ok\n");
  EXPECT_EQ(HttpGet(broker_->admin_port(), "/readyz", &body), 200);
  EXPECT_EQ(body, "ready\n");
  EXPECT_EQ(HttpGet(broker_->admin_port(), "/nothing-here"), 404);

  // The same broker's mutual-TLS port: TLS that trusts the CA, but no client certificate.
  std::ifstream ca_in(pki_->ca());
  std::stringstream ca;
  ca << ca_in.rdbuf();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ca.str();
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");
  auto stub = tellonce::v1::ExchangeService::NewStub(
      grpc::CreateCustomChannel(broker_->address(), grpc::SslCredentials(ssl), args));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  tellonce::v1::GetAttributesRequest request;
  tellonce::v1::GetAttributesResponse response;
  grpc::Status status = stub->GetAttributes(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
}

TEST_F(OperationsTest, RequestBytesThatDoNotParseAreInvalidArgumentNotUnimplemented) {
  const Samples before = Scrape(broker_->admin_port(), dir_->path());
  grpc::GenericStub stub(AgencyChannel(*pki_, "portal", broker_->address()));
  // A length-delimited field 1 whose length runs past the end: not a GrantConsentRequest.
  const std::string garbage("\x0a\xff\xff\xff\x0f", 5);
  grpc::Slice slice(garbage);
  grpc::ByteBuffer request(&slice, 1);
  auto call = [&](const std::string& method) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    grpc::ByteBuffer response;
    std::promise<grpc::Status> done;
    stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                   [&done](grpc::Status s) { done.set_value(std::move(s)); });
    return done.get_future().get();
  };
  grpc::Status status = call("/tellonce.v1.ConsentService/GrantConsent");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_EQ(status.error_message(), "request: does not parse as tellonce.v1.GrantConsentRequest");
  // A method that does not exist is still UNIMPLEMENTED.
  status = call("/tellonce.v1.ConsentService/NoSuchMethod");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED) << status.error_message();
  // The metrics count what the client got. The count is taken once the status is sent,
  // so the client may see the status first: wait for it (the test failed about one run
  // in three without waiting, more often under the sanitizers).
  const std::string key =
      "tellonce_rpc_requests_total|code=INVALID_ARGUMENT,method=GrantConsent,"
      "service=ConsentService";
  Samples after = Scrape(broker_->admin_port(), dir_->path());
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (Value(after, key) - Value(before, key) < 1 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
    after = Scrape(broker_->admin_port(), dir_->path());
  }
  EXPECT_EQ(Value(after, key) - Value(before, key), 1);
}

TEST_F(OperationsTest, ReadyzSaysWhyWhileTheDirectoryOnDiskIsRefused) {
  const std::string good = *ReadFileToString(directory_);
  std::ofstream(directory_) << "agencies { id: \"broken\" roles: [ NOT_A_ROLE ] }\n";
  broker_->Hangup();
  std::string body;
  int code = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while ((code = HttpGet(broker_->admin_port(), "/readyz", &body)) != 503 &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(code, 503);
  EXPECT_TRUE(absl::StrContains(body, "directory")) << body;
  EXPECT_TRUE(absl::StrContains(body, directory_)) << body;
  const Samples refused = Scrape(broker_->admin_port(), dir_->path());
  EXPECT_EQ(Value(refused, "tellonce_ready|"), 0);
  EXPECT_GE(Value(refused, "tellonce_directory_reloads_total|result=refused"), 1);
  // The previous directory is still in force meanwhile: exchanges go on.
  EXPECT_EQ(Fetch(kStranger, "bank.interest_paid", "during-refusal").code(),
            tellonce::v1::RESULT_NO_BASIS);

  std::ofstream(directory_) << good;
  broker_->Hangup();
  const absl::Time again = absl::Now() + absl::Seconds(10);
  while ((code = HttpGet(broker_->admin_port(), "/readyz", &body)) != 200 && absl::Now() < again) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(code, 200) << body;
}

// Runs last (name order is not run order; gtest keeps declaration order): the bank goes
// down, and what was logged during the whole suite is checked.
TEST_F(OperationsTest, ZzLogsAreJsonLinesWithoutCitizenDataAndOneLinePerOutage) {
  ASSERT_TRUE(GrantTaxConsent({"bank.interest_paid", "bank.account_iban"}).ok());
  const tellonce::v1::AttributeResult iban = Fetch(kCitizen, "bank.account_iban", "log-1");
  ASSERT_EQ(iban.code(), tellonce::v1::RESULT_OK);
  const tellonce::v1::AttributeResult interest = Fetch(kCitizen, "bank.interest_paid", "log-2");
  ASSERT_EQ(interest.code(), tellonce::v1::RESULT_OK);
  ASSERT_EQ(Fetch(kStranger, "bank.account_iban", "log-3").code(), tellonce::v1::RESULT_NO_BASIS);

  // The bank goes away: several exchanges fail, one warning says so.
  ASSERT_EQ(bank_->Terminate(), 0);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(Fetch(kCitizen, "bank.interest_paid", absl::StrCat("down-", i)).code(),
              tellonce::v1::RESULT_PROVIDER_UNAVAILABLE);
  }
  ASSERT_TRUE(bank_->Start().ok()) << bank_->log();
  // Back: the next exchange that reaches it logs that it is reachable again.
  const absl::Time deadline = absl::Now() + absl::Seconds(15);
  while (Fetch(kCitizen, "bank.interest_paid", "back").code() != tellonce::v1::RESULT_OK &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(200));
  }

  const std::vector<std::string> secrets = {kCitizen, kStranger, iban.value().string_value(),
                                            interest.value().decimal_value()};
  int unreachable = 0, reachable = 0, refusals = 0;
  for (ServerProcess* p : {static_cast<ServerProcess*>(broker_), static_cast<ServerProcess*>(bank_),
                           static_cast<ServerProcess*>(registry_)}) {
    const std::string log = p->log();
    int lines = 0;
    for (absl::string_view line : absl::StrSplit(log, '\n', absl::SkipEmpty())) {
      ++lines;
      google::protobuf::Struct parsed;
      auto s = google::protobuf::util::JsonStringToMessage(
          google::protobuf::StringPiece(line.data(), line.size()), &parsed);
      ASSERT_TRUE(s.ok()) << "not a JSON line: " << line;
      for (const char* key : {"time", "level", "program", "message"}) {
        EXPECT_TRUE(parsed.fields().contains(key)) << key << " missing in " << line;
      }
      for (const std::string& secret : secrets) {
        ASSERT_FALSE(secret.empty());
        EXPECT_FALSE(absl::StrContains(line, secret)) << "citizen data in a log line: " << line;
      }
      const std::string message = parsed.fields().at("message").string_value();
      if (absl::StartsWith(message, "connector unreachable")) {
        ++unreachable;
        EXPECT_EQ(parsed.fields().at("level").string_value(), "WARN");
        EXPECT_EQ(parsed.fields().at("provider").string_value(), "bank");
      }
      if (message == "connector reachable again") ++reachable;
      if (message == "exchange refused attributes") {
        ++refusals;
        EXPECT_EQ(parsed.fields().at("level").string_value(), "WARN");
        EXPECT_EQ(parsed.fields().at("consumer").string_value(), "tax");
        EXPECT_TRUE(parsed.fields().contains("exchange_id"));
        EXPECT_TRUE(parsed.fields().contains("request_id"));
      }
    }
    EXPECT_GE(lines, 1) << log;
  }
  EXPECT_EQ(unreachable, 1);
  EXPECT_EQ(reachable, 1);
  EXPECT_GE(refusals, 1);
}

}  // namespace
}  // namespace tellonce::testing
