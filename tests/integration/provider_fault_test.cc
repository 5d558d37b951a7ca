// A provider that answers wrongly is refused, not believed: the broker checks every
// connector answer against what it asked and the catalogue (DESIGN.md, flow 2). Real
// processes on 127.0.0.1: the broker, and fault_connector in the bank's place,
// restarted in one misbehaviour mode per test on the same port.

#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "certs/tls.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "tellonce/v1/connector.grpc.pb.h"
#include "tellonce/v1/exchange.grpc.pb.h"
#include "tests/integration/harness.h"

namespace tellonce::testing {
namespace {

using tellonce::v1::GetAttributesResponse;

constexpr char kCitizen[] = "37605030299";
constexpr char kConsumer[] = "tax";
constexpr char kPurpose[] = "TAX_DEDUCTION_CHECK";
constexpr char kAsked[] = "bank.interest_paid";
// A STRING attribute of the bank, for the hostile-string modes.
constexpr char kAskedString[] = "bank.account_iban";
// What fault_connector adds in extra-attribute mode; never asked for here.
constexpr char kUnasked[] = "person.address";
constexpr char kUnaskedValue[] = "Fault Street 1";

class ProviderFaultTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    absl::StatusOr<Pki> pki = MakePki(dir_->path() + "/pki", SampleDirectoryFile());
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = new Pki(*pki);
    mode_file_ = new std::string(dir_->path() + "/mode");
    WriteMode("ok");
    // A fixed port, so the broker's directory stays right across restarts.
    bank_ = new ConnectorProcess(FaultConnectorBinary(), dir_->path() + "/bank", *pki_, "bank",
                                 *mode_file_, FreePort());
    ASSERT_TRUE(bank_->Start().ok()) << bank_->log();
    const std::string directory = dir_->path() + "/directory.textproto";
    ASSERT_TRUE(WriteDirectoryWithPorts(directory, {{"bank", bank_->port()}}).ok());
    broker_ = new BrokerProcess(dir_->path() + "/broker", *pki_, directory);
    ASSERT_TRUE(broker_->Start().ok()) << broker_->log();
    GrantTheConsent();
  }

  static void TearDownTestSuite() {
    delete broker_;
    delete bank_;
    delete mode_file_;
    delete pki_;
    delete dir_;
    broker_ = nullptr;
    bank_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(broker_, nullptr) << "suite set-up failed";
    ASSERT_TRUE(broker_->running()) << broker_->log();
  }

  static void WriteMode(const std::string& mode) {
    std::ofstream out(*mode_file_, std::ios::trunc);
    out << mode << "\n";
    ASSERT_TRUE(out.good()) << "cannot write " << *mode_file_;
  }

  // Restarts the connector misbehaving as `mode`.
  static void RestartIn(const std::string& mode) {
    if (bank_->running()) {
      ASSERT_EQ(bank_->Terminate(), 0) << bank_->log();
    }
    WriteMode(mode);
    ASSERT_TRUE(bank_->Start().ok()) << bank_->log();
  }

  // The citizen, through the portal, lets the tax office obtain kAsked for kPurpose.
  static void GrantTheConsent() {
    absl::StatusOr<std::string> id = GrantConsent(*pki_, broker_->address(),
                                                  {.citizen = kCitizen,
                                                   .consumer = kConsumer,
                                                   .attributes = {kAsked, kAskedString},
                                                   .purpose = kPurpose,
                                                   .mode = tellonce::v1::UNTIL_EXPIRY,
                                                   .lifetime = absl::Hours(24),
                                                   .request_id = "provider-fault-test"});
    ASSERT_TRUE(id.ok()) << id.status();
  }

  // The tax office asks for kAsked. The connector has just been restarted and the
  // broker's channel to it may still be reconnecting, so an answer of
  // PROVIDER_UNAVAILABLE is retried for a while; any other answer is returned.
  static grpc::Status Fetch(GetAttributesResponse* response, const char* attribute = kAsked) {
    static std::atomic<int> n{0};
    auto stub =
        tellonce::v1::ExchangeService::NewStub(AgencyChannel(*pki_, kConsumer, broker_->address()));
    const absl::Time give_up = absl::Now() + absl::Seconds(15);
    while (true) {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
      tellonce::v1::GetAttributesRequest r;
      r.set_request_id("provider-fault-" + std::to_string(n++));
      r.set_citizen_id(kCitizen);
      r.add_attributes(attribute);
      r.set_purpose(kPurpose);
      response->Clear();
      grpc::Status status = stub->GetAttributes(&context, r, response);
      const bool reconnecting =
          status.ok() && response->results_size() == 1 &&
          response->results(0).code() == tellonce::v1::RESULT_PROVIDER_UNAVAILABLE;
      if (!reconnecting || absl::Now() >= give_up) return status;
      absl::SleepFor(absl::Milliseconds(200));
    }
  }

  // What the connector itself answers the broker, called directly with the broker's
  // certificate: proof that it misbehaves as told, so that a refusal below is the
  // broker's check and not, say, a connector that failed.
  static tellonce::v1::FetchAttributesResponse DirectAnswer() {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
        certs::MakeChannelCredentials({.ca_file = pki_->ca(),
                                       .cert_file = pki_->broker_cert(),
                                       .key_file = pki_->broker_key(),
                                       .crl_dir = ""},
                                      "spiffe://tellonce.local/agency/bank");
    EXPECT_TRUE(creds.ok()) << creds.status();
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    auto stub = tellonce::v1::ConnectorService::NewStub(
        grpc::CreateCustomChannel(bank_->address(), *creds, args));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    tellonce::v1::FetchAttributesRequest request;
    request.set_citizen_id(kCitizen);
    request.add_attributes(kAsked);
    tellonce::v1::FetchAttributesResponse response;
    grpc::Status status = stub->FetchAttributes(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  // The answer of a connector misbehaving as `mode` is refused as a provider error:
  // no value, and nothing but the asked attribute in the response.
  static void ExpectRefusedAsProviderError(const std::string& mode, const char* attribute = kAsked,
                                           const std::string& detail = "") {
    RestartIn(mode);
    GetAttributesResponse response;
    grpc::Status status = Fetch(&response, attribute);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.results_size(), 1) << response.DebugString();
    const tellonce::v1::AttributeResult& result = response.results(0);
    EXPECT_EQ(result.name(), attribute);
    EXPECT_NE(result.detail().find(detail), std::string::npos) << mode << ": " << result.detail();
    EXPECT_EQ(result.code(), tellonce::v1::RESULT_PROVIDER_ERROR)
        << tellonce::v1::ResultCode_Name(result.code()) << ": " << result.detail();
    EXPECT_FALSE(result.has_value()) << result.value().DebugString().substr(0, 200);
    EXPECT_FALSE(result.detail().empty()) << "a refusal says why";
    EXPECT_EQ(result.detail().find(kCitizen), std::string::npos) << "detail names the citizen";
    const std::string everything = response.SerializeAsString();
    EXPECT_EQ(everything.find(kUnasked), std::string::npos) << "unasked attribute passed on";
    EXPECT_EQ(everything.find(kUnaskedValue), std::string::npos) << "unasked value passed on";
    EXPECT_LT(everything.size(), 4096u) << "the refused answer's bulk was passed on";
  }

  static TempDir* dir_;
  static Pki* pki_;
  static std::string* mode_file_;
  static ConnectorProcess* bank_;
  static BrokerProcess* broker_;
};

TempDir* ProviderFaultTest::dir_ = nullptr;
Pki* ProviderFaultTest::pki_ = nullptr;
std::string* ProviderFaultTest::mode_file_ = nullptr;
ConnectorProcess* ProviderFaultTest::bank_ = nullptr;
BrokerProcess* ProviderFaultTest::broker_ = nullptr;

TEST_F(ProviderFaultTest, CorrectAnswerIsDelivered) {
  RestartIn("ok");
  GetAttributesResponse response;
  grpc::Status status = Fetch(&response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.results_size(), 1) << response.DebugString();
  const tellonce::v1::AttributeResult& result = response.results(0);
  EXPECT_EQ(result.name(), kAsked);
  ASSERT_EQ(result.code(), tellonce::v1::RESULT_OK)
      << tellonce::v1::ResultCode_Name(result.code()) << ": " << result.detail();
  EXPECT_EQ(result.value().decimal_value(), "100.00");
  EXPECT_EQ(result.provenance().provider(), "bank");
}

TEST_F(ProviderFaultTest, AnswerWithAnUnaskedAttributeIsRefusedWhole) {
  ExpectRefusedAsProviderError("extra-attribute");
  const tellonce::v1::FetchAttributesResponse direct = DirectAnswer();
  ASSERT_EQ(direct.attributes_size(), 2);
  EXPECT_EQ(direct.attributes(0).value().decimal_value(), "100.00");
  EXPECT_EQ(direct.attributes(1).name(), kUnasked);
}

TEST_F(ProviderFaultTest, ValueOfTheWrongTypeIsRefused) {
  ExpectRefusedAsProviderError("wrong-type");
  const tellonce::v1::FetchAttributesResponse direct = DirectAnswer();
  ASSERT_EQ(direct.attributes_size(), 1);
  EXPECT_EQ(direct.attributes(0).value().value_case(), tellonce::v1::AttributeValue::kIntegerValue);
}

TEST_F(ProviderFaultTest, OversizedValueIsRefused) {
  ExpectRefusedAsProviderError("oversize");
  const tellonce::v1::FetchAttributesResponse direct = DirectAnswer();
  ASSERT_EQ(direct.attributes_size(), 1);
  EXPECT_EQ(direct.attributes(0).value().decimal_value().size(), 100'000u);
}

TEST_F(ProviderFaultTest, AttributeAnsweredTwiceIsRefused) {
  ExpectRefusedAsProviderError("duplicate");
  const tellonce::v1::FetchAttributesResponse direct = DirectAnswer();
  ASSERT_EQ(direct.attributes_size(), 2);
  EXPECT_EQ(direct.attributes(0).name(), kAsked);
  EXPECT_EQ(direct.attributes(1).name(), kAsked);
}

// Issue 13: NUL, control and bidi characters, and bytes that are not UTF-8, passed
// through to consumers. Each is refused, with a detail naming the rule.
TEST_F(ProviderFaultTest, HostileProviderStringsAreRefused) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"nul", "control character (U+0000)"},      {"escape", "control character (U+001B)"},
      {"del", "control character (U+007F)"},      {"c1", "control character (U+0085)"},
      {"bidi", "bidirectional control (U+202E)"}, {"isolate", "bidirectional control (U+2066)"},
      {"lrm", "bidirectional control (U+200E)"},  {"alm", "bidirectional control (U+061C)"},
      {"invalid-utf8", "not valid UTF-8"},        {"overlong", "not valid UTF-8"},
      {"surrogate", "not valid UTF-8"},
  };
  for (const auto& [kind, detail] : cases) {
    SCOPED_TRACE(kind);
    ExpectRefusedAsProviderError("string:" + kind, kAskedString, detail);
  }
  // The connector did send it: the refusal is the broker's.
  const tellonce::v1::FetchAttributesResponse direct = DirectAnswer();
  ASSERT_EQ(direct.attributes_size(), 1);
  EXPECT_EQ(direct.attributes(0).value().decimal_value(), "100.00");
}

TEST_F(ProviderFaultTest, CleanNonAsciiTextIsDelivered) {
  RestartIn("string:unicode");
  GetAttributesResponse response;
  ASSERT_TRUE(Fetch(&response, kAskedString).ok());
  ASSERT_EQ(response.results_size(), 1);
  EXPECT_EQ(response.results(0).code(), tellonce::v1::RESULT_OK) << response.results(0).detail();
  EXPECT_EQ(response.results(0).value().string_value(),
            "J\xc3\xb5"
            "e t\xc3\xa4nav 5, \xe6\x9d\xb1\xe4\xba\xac");
}

TEST_F(ProviderFaultTest, ImplausibleAsOfIsRefused) {
  ExpectRefusedAsProviderError("as-of:future", kAsked, "as_of: more than 5 minutes in the future");
  ExpectRefusedAsProviderError("as-of:ancient", kAsked, "as_of: before 1900-01-01");
  ExpectRefusedAsProviderError("as-of:invalid", kAsked, "as_of: not a valid timestamp");
}

// After all the bad answers, a good one still gets through: refusing an answer does
// not break the broker's channel to the provider.
TEST_F(ProviderFaultTest, ProviderThatRecoversIsBelievedAgain) {
  RestartIn("ok");
  GetAttributesResponse response;
  ASSERT_TRUE(Fetch(&response).ok());
  ASSERT_EQ(response.results_size(), 1);
  EXPECT_EQ(response.results(0).code(), tellonce::v1::RESULT_OK) << response.results(0).detail();
  EXPECT_EQ(response.results(0).value().decimal_value(), "100.00");
}

}  // namespace
}  // namespace tellonce::testing
