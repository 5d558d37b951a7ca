// Acknowledged consent changes survive kill -9; SIGTERM drains and exits cleanly; a bad
// configuration stops start-up with the file and line named.

#include <atomic>
#include <fstream>
#include <mutex>
#include <thread>

#include "absl/time/clock.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "tellonce/v1/consent.grpc.pb.h"
#include "tests/integration/harness.h"

namespace tellonce::testing {
namespace {

using google::protobuf::util::TimeUtil;
using tellonce::v1::ConsentService;

tellonce::v1::GrantConsentRequest Grant(int n) {
  tellonce::v1::GrantConsentRequest r;
  r.set_request_id("durable-" + std::to_string(n));
  r.set_citizen_id(CitizenId(n % 50));
  r.set_consumer("tax");
  r.add_attributes(n % 2 ? "bank.interest_paid" : "person.address");
  r.set_purpose("TAX_DEDUCTION_CHECK");
  *r.mutable_expires_at() =
      TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(absl::Now() + absl::Hours(24)));
  r.set_mode(n % 3 ? tellonce::v1::UNTIL_EXPIRY : tellonce::v1::ONE_TIME);
  return r;
}

class DurabilityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<Pki> pki = MakePki(dir_.path() + "/pki", SampleDirectoryFile());
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *pki;
    broker_ =
        std::make_unique<BrokerProcess>(dir_.path() + "/broker", pki_, SampleDirectoryFor(pki_));
  }

  std::unique_ptr<ConsentService::Stub> Portal() {
    return ConsentService::NewStub(AgencyChannel(pki_, "portal", broker_->address()));
  }

  TempDir dir_;
  Pki pki_;
  std::unique_ptr<BrokerProcess> broker_;
};

TEST_F(DurabilityTest, AcknowledgedGrantsSurviveKill9) {
  ASSERT_TRUE(broker_->Start().ok()) << broker_->log();
  constexpr int kClients = 16;
  std::atomic<bool> stop{false};
  std::atomic<int> next{0};
  std::mutex mu;
  std::vector<std::pair<tellonce::v1::GrantConsentRequest, tellonce::v1::GrantConsentResponse>>
      acked;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&] {
      auto portal = Portal();
      while (!stop.load()) {
        tellonce::v1::GrantConsentRequest request = Grant(next.fetch_add(1));
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
        tellonce::v1::GrantConsentResponse response;
        AddCitizenAssertion(&context, pki_, request.citizen_id());
        grpc::Status status = portal->GrantConsent(&context, request, &response);
        if (!status.ok()) return;  // the broker is gone
        std::lock_guard<std::mutex> lock(mu);
        acked.emplace_back(std::move(request), std::move(response));
      }
    });
  }
  // Let a stream of grants build up, then kill the broker in the middle of it.
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (acked.size() >= 500) break;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  broker_->Kill9();
  stop = true;
  for (std::thread& t : clients) t.join();
  ASSERT_GE(acked.size(), 100u) << "too few grants acknowledged before the kill";
  int sent = next.load();
  ASSERT_GT(sent, static_cast<int>(acked.size())) << "the kill did not land mid-stream";

  ASSERT_TRUE(broker_->Start().ok()) << broker_->log();
  auto portal = Portal();
  for (const auto& [request, response] : acked) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    tellonce::v1::GetConsentRequest get;
    get.set_consent_id(response.consent().consent_id());
    get.set_citizen_id(request.citizen_id());
    tellonce::v1::GetConsentResponse got;
    AddCitizenAssertion(&context, pki_, get.citizen_id());
    grpc::Status status = portal->GetConsent(&context, get, &got);
    ASSERT_TRUE(status.ok()) << request.request_id() << ": " << status.error_message();
    EXPECT_TRUE(
        google::protobuf::util::MessageDifferencer::Equals(got.consent(), response.consent()))
        << request.request_id();
    EXPECT_EQ(got.receipt().SerializeAsString(), response.receipt().SerializeAsString());
  }
  // Idempotency survives the crash: retrying an acknowledged grant stores nothing new.
  for (size_t i = 0; i < acked.size(); i += acked.size() / 10 + 1) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    tellonce::v1::GrantConsentResponse again;
    AddCitizenAssertion(&context, pki_, acked[i].first.citizen_id());
    ASSERT_TRUE(portal->GrantConsent(&context, acked[i].first, &again).ok());
    EXPECT_EQ(again.consent().consent_id(), acked[i].second.consent().consent_id());
  }
  EXPECT_EQ(broker_->Terminate(), 0) << broker_->log();
}

TEST_F(DurabilityTest, SigtermDrainsAndExitsZeroAndDataRemains) {
  ASSERT_TRUE(broker_->Start().ok()) << broker_->log();
  tellonce::v1::GrantConsentResponse granted;
  {
    auto portal = Portal();
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    AddCitizenAssertion(&context, pki_, Grant(1).citizen_id());
    ASSERT_TRUE(portal->GrantConsent(&context, Grant(1), &granted).ok());
  }
  EXPECT_EQ(broker_->Terminate(), 0) << broker_->log();
  EXPECT_NE(broker_->log().find("stopped cleanly"), std::string::npos) << broker_->log();

  ASSERT_TRUE(broker_->Start().ok()) << broker_->log();
  auto portal = Portal();
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  tellonce::v1::GetConsentRequest get;
  get.set_consent_id(granted.consent().consent_id());
  get.set_citizen_id(granted.consent().citizen_id());
  tellonce::v1::GetConsentResponse got;
  AddCitizenAssertion(&context, pki_, get.citizen_id());
  ASSERT_TRUE(portal->GetConsent(&context, get, &got).ok());
  EXPECT_EQ(got.consent().consent_id(), granted.consent().consent_id());
}

TEST_F(DurabilityTest, SecondBrokerOnTheSameDataDirectoryRefusesToStart) {
  ASSERT_TRUE(broker_->Start().ok()) << broker_->log();
  std::string output;
  int code = RunCommand({BrokerBinary(), "--config", broker_->config_path()}, &output);
  EXPECT_EQ(code, 1) << output;
  EXPECT_NE(output.find("data"), std::string::npos) << output;
}

TEST_F(DurabilityTest, BadConfigurationStopsStartUpNamingFileAndLine) {
  std::string config = dir_.path() + "/bad.textproto";
  std::ofstream(config) << "listen_address: \"127.0.0.1:0\"\n"
                        << "data_dir: \"data\"\n"
                        << "tls_files { ca_file: \"x\" }\n";
  std::string output;
  EXPECT_EQ(RunCommand({BrokerBinary(), "--config", config}, &output), 1);
  EXPECT_NE(output.find("bad.textproto:3"), std::string::npos) << output;

  // A directory that references an unknown agency stops start-up with the field named.
  std::string directory = dir_.path() + "/directory.textproto";
  std::ofstream(directory)
      << "trust_domain: \"tellonce.local\"\n"
      << "agencies { id: \"ops\" roles: ADMIN }\n"
      << "attributes { name: \"person.name\" type: STRING provider: \"nobody\" }\n";
  BrokerProcess bad(dir_.path() + "/bad-broker", pki_, directory);
  absl::Status started = bad.Start();
  EXPECT_FALSE(started.ok());
  EXPECT_NE(bad.log().find("attributes[0].provider"), std::string::npos) << bad.log();
}

}  // namespace
}  // namespace tellonce::testing
