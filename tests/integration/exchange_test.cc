// The "Pull attributes" flow across real processes: the broker, the civil registry
// and bank connectors, mutual TLS on 127.0.0.1 everywhere.

#include <atomic>
#include <filesystem>
#include <thread>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "certs/tls.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "proto/textproto.h"
#include "tellonce/v1/agency_records.pb.h"
#include "tellonce/v1/connector.grpc.pb.h"
#include "tellonce/v1/exchange.grpc.pb.h"
#include "tests/integration/harness.h"

namespace tellonce::testing {
namespace {

using tellonce::v1::AttributeResult;
using tellonce::v1::GetAttributesResponse;

// A citizen present in both sample data files.
constexpr char kCitizen[] = "37605030299";

class ExchangeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    absl::StatusOr<Pki> pki = MakePki(dir_->path() + "/pki", SampleDirectoryFile());
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = new Pki(*pki);
    absl::StatusOr<SampleConnectors> connectors = StartSampleConnectors(dir_->path(), *pki_);
    ASSERT_TRUE(connectors.ok()) << connectors.status();
    registry_ = connectors->registry.release();
    bank_ = connectors->bank.release();
    const std::string directory = connectors->directory_file;
    broker_ = new BrokerProcess(dir_->path() + "/broker", *pki_, directory);
    ASSERT_TRUE(broker_->Start().ok()) << broker_->log();
  }
  static void TearDownTestSuite() {
    delete broker_;
    delete bank_;
    delete registry_;
    delete pki_;
    delete dir_;
  }

  void SetUp() override {
    // Each test runs with all parts up, whatever an earlier test did to them.
    for (ServerProcess* p :
         {static_cast<ServerProcess*>(registry_), static_cast<ServerProcess*>(bank_)}) {
      p->Resume();
      if (!p->running()) {
        ASSERT_TRUE(p->Start().ok()) << p->log();
      }
    }
  }

  static std::string Consent(const std::string& citizen, const std::string& consumer,
                             std::vector<std::string> attributes, const std::string& purpose,
                             tellonce::v1::ConsentMode mode = tellonce::v1::UNTIL_EXPIRY,
                             absl::Duration lifetime = absl::Hours(24)) {
    absl::StatusOr<std::string> id = GrantConsent(*pki_, broker_->address(),
                                                  {.citizen = citizen,
                                                   .consumer = consumer,
                                                   .attributes = std::move(attributes),
                                                   .purpose = purpose,
                                                   .mode = mode,
                                                   .lifetime = lifetime,
                                                   .request_id = ""});
    EXPECT_TRUE(id.ok()) << id.status();
    return id.ok() ? *id : "";
  }

  static void Revoke(const std::string& citizen, const std::string& consent_id) {
    ASSERT_TRUE(RevokeConsent(*pki_, broker_->address(), citizen, consent_id).ok());
  }

  static grpc::Status Fetch(const std::string& consumer, const std::string& citizen,
                            std::vector<std::string> attributes, const std::string& purpose,
                            GetAttributesResponse* response,
                            absl::Duration deadline = absl::Seconds(10)) {
    return GetAttributes(*pki_, broker_->address(), consumer, citizen, attributes, purpose,
                         response, deadline);
  }

  // The sample data's value of `attribute` for `citizen`, from the agency's data file.
  static tellonce::v1::AttributeValue SampleValue(const std::string& file,
                                                  const std::string& citizen,
                                                  const std::string& attribute) {
    tellonce::v1::AgencyRecords records;
    absl::Status parsed = ParseTextProtoFile(SampleConnectorFile(file), &records);
    EXPECT_TRUE(parsed.ok()) << parsed;
    for (const auto& r : records.records()) {
      if (r.citizen_id() == citizen) return r.attributes().at(attribute);
    }
    ADD_FAILURE() << "no sample record for " << attribute;
    return {};
  }

  static TempDir* dir_;
  static Pki* pki_;
  static ConnectorProcess* registry_;
  static ConnectorProcess* bank_;
  static BrokerProcess* broker_;
};

TempDir* ExchangeTest::dir_ = nullptr;
Pki* ExchangeTest::pki_ = nullptr;
ConnectorProcess* ExchangeTest::registry_ = nullptr;
ConnectorProcess* ExchangeTest::bank_ = nullptr;
BrokerProcess* ExchangeTest::broker_ = nullptr;

TEST_F(ExchangeTest, ConsentAllowsTheConsumerToObtainTheValueFromItsSource) {
  const std::string consent =
      Consent(kCitizen, "tax", {"bank.interest_paid", "person.name"}, "TAX_DEDUCTION_CHECK");
  GetAttributesResponse response;
  grpc::Status status = Fetch("tax", kCitizen, {"bank.interest_paid", "person.name"},
                              "TAX_DEDUCTION_CHECK", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.results_size(), 2);
  const AttributeResult& interest = response.results(0);
  EXPECT_EQ(interest.name(), "bank.interest_paid");
  EXPECT_EQ(interest.code(), tellonce::v1::RESULT_OK) << interest.detail();
  EXPECT_EQ(interest.value().decimal_value(),
            SampleValue("bank-records.textproto", kCitizen, "bank.interest_paid").decimal_value());
  EXPECT_EQ(interest.provenance().provider(), "bank");
  EXPECT_GT(interest.provenance().as_of().seconds(), 0);
  EXPECT_EQ(interest.basis().consent_id(), consent);
  const AttributeResult& name = response.results(1);
  EXPECT_EQ(name.code(), tellonce::v1::RESULT_OK) << name.detail();
  EXPECT_EQ(name.value().string_value(),
            SampleValue("registry-records.textproto", kCitizen, "person.name").string_value());
  EXPECT_EQ(name.provenance().provider(), "registry");
  EXPECT_FALSE(response.exchange_id().empty());
}

TEST_F(ExchangeTest, MandateAllowsWithoutConsent) {
  GetAttributesResponse response;
  ASSERT_TRUE(Fetch("tax", "49403136526", {"person.name"}, "TAX_ASSESSMENT", &response).ok());
  ASSERT_EQ(response.results_size(), 1);
  EXPECT_EQ(response.results(0).code(), tellonce::v1::RESULT_OK) << response.results(0).detail();
  EXPECT_EQ(response.results(0).basis().mandate_id(), "income-tax-act-identity");
  EXPECT_FALSE(response.results(0).basis().legal_reference().empty());
}

TEST_F(ExchangeTest, RefusedWithoutConsentWithRevokedOrWrongPurposeOrAnotherConsumersConsent) {
  const std::string citizen = "49403136526";
  GetAttributesResponse response;
  ASSERT_TRUE(Fetch("tax", citizen, {"bank.account_iban"}, "TAX_DEDUCTION_CHECK", &response).ok());
  EXPECT_EQ(response.results(0).code(), tellonce::v1::RESULT_NO_BASIS);
  EXPECT_FALSE(response.results(0).has_value());

  // A consent for another consumer is no basis for this one.
  Consent(citizen, "benefits", {"bank.account_iban"}, "TAX_DEDUCTION_CHECK");
  ASSERT_TRUE(Fetch("tax", citizen, {"bank.account_iban"}, "TAX_DEDUCTION_CHECK", &response).ok());
  EXPECT_EQ(response.results(0).code(), tellonce::v1::RESULT_NO_BASIS);

  // A consent for another purpose is no basis either.
  Consent(citizen, "tax", {"bank.account_iban"}, "TAX_ASSESSMENT");
  ASSERT_TRUE(Fetch("tax", citizen, {"bank.account_iban"}, "TAX_DEDUCTION_CHECK", &response).ok());
  EXPECT_EQ(response.results(0).code(), tellonce::v1::RESULT_WRONG_PURPOSE);
  EXPECT_FALSE(response.results(0).has_value());

  const std::string consent =
      Consent(citizen, "tax", {"bank.interest_paid"}, "TAX_DEDUCTION_CHECK");
  ASSERT_TRUE(Fetch("tax", citizen, {"bank.interest_paid"}, "TAX_DEDUCTION_CHECK", &response).ok());
  EXPECT_EQ(response.results(0).code(), tellonce::v1::RESULT_OK) << response.results(0).detail();
  Revoke(citizen, consent);
  ASSERT_TRUE(Fetch("tax", citizen, {"bank.interest_paid"}, "TAX_DEDUCTION_CHECK", &response).ok());
  EXPECT_EQ(response.results(0).code(), tellonce::v1::RESULT_CONSENT_REVOKED);
  EXPECT_FALSE(response.results(0).has_value());
}

TEST_F(ExchangeTest, ExpiredConsentIsRefused) {
  const std::string citizen = "37605030299";
  Consent(citizen, "benefits", {"person.date_of_birth"}, "TAX_ASSESSMENT",
          tellonce::v1::UNTIL_EXPIRY, absl::Seconds(2));
  GetAttributesResponse response;
  ASSERT_TRUE(
      Fetch("benefits", citizen, {"person.date_of_birth"}, "TAX_ASSESSMENT", &response).ok());
  EXPECT_EQ(response.results(0).code(), tellonce::v1::RESULT_OK) << response.results(0).detail();
  absl::SleepFor(absl::Milliseconds(2500));
  ASSERT_TRUE(
      Fetch("benefits", citizen, {"person.date_of_birth"}, "TAX_ASSESSMENT", &response).ok());
  EXPECT_EQ(response.results(0).code(), tellonce::v1::RESULT_CONSENT_EXPIRED);
  EXPECT_FALSE(response.results(0).has_value());
}

TEST_F(ExchangeTest, PartialResultsWhenSomeAttributesAreAllowedAndOthersNot) {
  Consent(kCitizen, "benefits", {"person.address"}, "TAX_ASSESSMENT");
  GetAttributesResponse response;
  ASSERT_TRUE(Fetch("benefits", kCitizen,
                    {"person.address", "bank.account_iban", "person.shoe_size"}, "TAX_ASSESSMENT",
                    &response)
                  .ok());
  ASSERT_EQ(response.results_size(), 3);
  EXPECT_EQ(response.results(0).code(), tellonce::v1::RESULT_OK) << response.results(0).detail();
  EXPECT_FALSE(response.results(0).value().string_value().empty());
  EXPECT_EQ(response.results(1).code(), tellonce::v1::RESULT_NO_BASIS);
  EXPECT_EQ(response.results(2).code(), tellonce::v1::RESULT_UNKNOWN_ATTRIBUTE);
}

TEST_F(ExchangeTest, OneTimeConsentIsConsumedExactlyOnceUnderConcurrentRequests) {
  const std::string citizen = "49403136526";
  Consent(citizen, "benefits", {"bank.interest_paid"}, "TAX_DEDUCTION_CHECK",
          tellonce::v1::ONE_TIME);
  constexpr int kRequests = 8;
  std::atomic<int> delivered{0}, used{0}, other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kRequests; ++i) {
    threads.emplace_back([&] {
      GetAttributesResponse response;
      grpc::Status status =
          Fetch("benefits", citizen, {"bank.interest_paid"}, "TAX_DEDUCTION_CHECK", &response);
      if (!status.ok() || response.results_size() != 1) {
        ++other;
      } else if (response.results(0).code() == tellonce::v1::RESULT_OK) {
        ++delivered;
      } else if (response.results(0).code() == tellonce::v1::RESULT_CONSENT_USED) {
        EXPECT_FALSE(response.results(0).has_value());
        ++used;
      } else {
        ++other;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(delivered.load(), 1);
  EXPECT_EQ(used.load(), kRequests - 1);
  EXPECT_EQ(other.load(), 0);
}

TEST_F(ExchangeTest, ConcurrentRequestsEachSpendAnotherUnspentOneTimeConsent) {
  // Issue 13: all concurrent requests used to race for the oldest ONE_TIME consent, so
  // losers got RESULT_CONSENT_USED although another unspent consent covered them.
  const std::string citizen = "46604044712";
  constexpr int kConsents = 4;
  for (int i = 0; i < kConsents; ++i) {
    Consent(citizen, "benefits", {"bank.interest_paid"}, "TAX_DEDUCTION_CHECK",
            tellonce::v1::ONE_TIME);
  }
  std::atomic<int> delivered{0}, refused{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kConsents; ++i) {
    threads.emplace_back([&] {
      GetAttributesResponse response;
      grpc::Status status =
          Fetch("benefits", citizen, {"bank.interest_paid"}, "TAX_DEDUCTION_CHECK", &response);
      if (status.ok() && response.results_size() == 1 &&
          response.results(0).code() == tellonce::v1::RESULT_OK) {
        ++delivered;
      } else {
        ++refused;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(delivered.load(), kConsents);
  EXPECT_EQ(refused.load(), 0);
  // Every consent is spent now.
  GetAttributesResponse response;
  ASSERT_TRUE(
      Fetch("benefits", citizen, {"bank.interest_paid"}, "TAX_DEDUCTION_CHECK", &response).ok());
  ASSERT_EQ(response.results_size(), 1);
  EXPECT_EQ(response.results(0).code(), tellonce::v1::RESULT_CONSENT_USED);
}

TEST_F(ExchangeTest, ConnectorDownYieldsProviderUnavailableQuicklyAndTheBrokerRecovers) {
  Consent(kCitizen, "tax", {"person.address"}, "TAX_DEDUCTION_CHECK");
  registry_->Kill9();
  GetAttributesResponse response;
  absl::Time start = absl::Now();
  ASSERT_TRUE(Fetch("tax", kCitizen, {"person.address"}, "TAX_DEDUCTION_CHECK", &response,
                    absl::Seconds(20))
                  .ok());
  EXPECT_EQ(response.results(0).code(), tellonce::v1::RESULT_PROVIDER_UNAVAILABLE);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5)) << "held the call towards its deadline";

  // The connector comes back on the same address; the broker reconnects by itself.
  ASSERT_TRUE(registry_->Start().ok()) << registry_->log();
  absl::Time deadline = absl::Now() + absl::Seconds(15);
  tellonce::v1::ResultCode code = tellonce::v1::RESULT_CODE_UNSPECIFIED;
  while (absl::Now() < deadline) {
    ASSERT_TRUE(Fetch("tax", kCitizen, {"person.address"}, "TAX_DEDUCTION_CHECK", &response).ok());
    code = response.results(0).code();
    if (code == tellonce::v1::RESULT_OK) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_EQ(code, tellonce::v1::RESULT_OK);
}

TEST_F(ExchangeTest, ConnectorSlowerThanTheDeadlineIsReportedPerAttribute) {
  Consent(kCitizen, "tax", {"bank.interest_paid", "person.name"}, "TAX_DEDUCTION_CHECK");
  bank_->Pause();  // accepts connections, answers nothing
  GetAttributesResponse response;
  absl::Time start = absl::Now();
  grpc::Status status = Fetch("tax", kCitizen, {"bank.interest_paid", "person.name"},
                              "TAX_DEDUCTION_CHECK", &response, absl::Seconds(2));
  bank_->Resume();
  EXPECT_LT(absl::Now() - start, absl::Seconds(4));
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.results_size(), 2);
  EXPECT_EQ(response.results(0).code(), tellonce::v1::RESULT_DEADLINE_EXCEEDED);
  EXPECT_FALSE(response.results(0).has_value());
  // The fast provider's answer is not lost to the slow one.
  EXPECT_EQ(response.results(1).code(), tellonce::v1::RESULT_OK) << response.results(1).detail();
}

TEST_F(ExchangeTest, CallsBeyondMaxInFlightAreRefusedAtOnceAsBusy) {
  // A broker of its own that takes two exchanges at a time; both wait on a paused
  // registry (person.name under the tax office's mandate needs no consent).
  BrokerProcess small(dir_->path() + "/small-broker", *pki_, dir_->path() + "/directory.textproto",
                      "exchange { max_in_flight: 2 }");
  ASSERT_TRUE(small.Start().ok()) << small.log();
  auto call = [&](GetAttributesResponse* response, absl::Duration deadline) {
    return GetAttributes(*pki_, small.address(), "tax", kCitizen, {"person.name"}, "TAX_ASSESSMENT",
                         response, deadline, "busy");
  };
  registry_->Pause();
  GetAttributesResponse first, second;
  grpc::Status first_status, second_status;
  std::thread a([&] { first_status = call(&first, absl::Seconds(20)); });
  std::thread b([&] { second_status = call(&second, absl::Seconds(20)); });
  absl::SleepFor(absl::Milliseconds(500));  // both reach the paused registry

  GetAttributesResponse third;
  const absl::Time start = absl::Now();
  grpc::Status busy = call(&third, absl::Seconds(20));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(busy.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << busy.error_message();
  EXPECT_THAT(busy.error_message(), ::testing::HasSubstr("broker busy"));

  registry_->Resume();
  a.join();
  b.join();
  for (auto [status, response] : {std::pair{&first_status, &first}, {&second_status, &second}}) {
    ASSERT_TRUE(status->ok()) << status->error_message();
    ASSERT_EQ(response->results_size(), 1);
    EXPECT_EQ(response->results(0).code(), tellonce::v1::RESULT_OK)
        << response->results(0).detail();
  }
  // The slots are free again.
  GetAttributesResponse fourth;
  grpc::Status again = call(&fourth, absl::Seconds(10));
  ASSERT_TRUE(again.ok()) << again.error_message();
  EXPECT_EQ(fourth.results(0).code(), tellonce::v1::RESULT_OK);
}

TEST_F(ExchangeTest, ConsumerCertificateCallingAConnectorDirectlyIsRefused) {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      certs::MakeChannelCredentials({.ca_file = pki_->ca(),
                                     .cert_file = pki_->cert("tax"),
                                     .key_file = pki_->key("tax"),
                                     .crl_dir = ""},
                                    "spiffe://tellonce.local/agency/bank");
  ASSERT_TRUE(creds.ok());
  auto stub =
      tellonce::v1::ConnectorService::NewStub(grpc::CreateChannel(bank_->address(), *creds));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  tellonce::v1::FetchAttributesRequest request;
  request.set_citizen_id(kCitizen);
  request.add_attributes("bank.interest_paid");
  tellonce::v1::FetchAttributesResponse response;
  grpc::Status status = stub->FetchAttributes(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::PERMISSION_DENIED) << status.error_message();
  EXPECT_EQ(response.attributes_size(), 0);
}

TEST_F(ExchangeTest, AgencyWithoutTheConsumerRoleCannotCallExchangeService) {
  for (const std::string agency : {"bank", "registry", "portal", "ops"}) {
    GetAttributesResponse response;
    grpc::Status status = Fetch(agency, kCitizen, {"person.name"}, "TAX_ASSESSMENT", &response);
    EXPECT_EQ(status.error_code(), grpc::PERMISSION_DENIED) << agency;
    EXPECT_EQ(response.results_size(), 0);
  }
}

TEST_F(ExchangeTest, MalformedRequestIsInvalidArgument) {
  GetAttributesResponse response;
  grpc::Status status = Fetch("tax", "123", {"person.name"}, "TAX_ASSESSMENT", &response);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StartsWith(status.error_message(), "citizen_id")) << status.error_message();
  status = Fetch("tax", kCitizen, {}, "TAX_ASSESSMENT", &response);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  status = Fetch("tax", kCitizen, {"person.name", "person.name"}, "TAX_ASSESSMENT", &response);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  status = Fetch("tax", kCitizen, {"person.name"}, "NO_SUCH_PURPOSE", &response);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StartsWith(status.error_message(), "purpose")) << status.error_message();
}

TEST_F(ExchangeTest, NoAttributeValueAppearsInTheBrokersDataOrLog) {
  Consent(kCitizen, "tax", {"bank.account_iban", "person.address"}, "TAX_DEDUCTION_CHECK");
  GetAttributesResponse response;
  ASSERT_TRUE(Fetch("tax", kCitizen, {"bank.account_iban", "person.address"}, "TAX_DEDUCTION_CHECK",
                    &response)
                  .ok());
  ASSERT_EQ(response.results(0).code(), tellonce::v1::RESULT_OK) << response.results(0).detail();
  ASSERT_EQ(response.results(1).code(), tellonce::v1::RESULT_OK) << response.results(1).detail();
  const std::vector<std::string> values = {response.results(0).value().string_value(),
                                           response.results(1).value().string_value()};
  // The write-ahead log holds the latest writes uncompressed, so a value written there
  // would be found.
  int files = 0;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(std::filesystem::path(broker_->data_dir()))) {
    if (!entry.is_regular_file()) continue;
    absl::StatusOr<std::string> bytes = ReadFileToString(entry.path().string());
    ASSERT_TRUE(bytes.ok());
    ++files;
    for (const std::string& value : values) {
      ASSERT_FALSE(value.empty());
      EXPECT_EQ(bytes->find(value), std::string::npos) << "value found in " << entry.path();
    }
  }
  EXPECT_GT(files, 3);
  for (const std::string& value : values) {
    EXPECT_EQ(broker_->log().find(value), std::string::npos) << "value found in the broker log";
  }
}

}  // namespace
}  // namespace tellonce::testing
