// The `tellonce` CLI against a real broker: grant, list, revoke, receipt verify.

#include <fstream>

#include "absl/strings/match.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "proto/textproto.h"
#include "tellonce/v1/consent.pb.h"
#include "tests/integration/harness.h"

namespace tellonce::testing {
namespace {

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<Pki> pki = MakePki(dir_.path() + "/pki", SampleDirectoryFile());
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *pki;
    broker_ = std::make_unique<BrokerProcess>(dir_.path() + "/broker", pki_, SampleDirectoryFile());
    ASSERT_TRUE(broker_->Start().ok()) << broker_->log();
  }

  int Cli(const std::string& agency, std::vector<std::string> args, std::string* output) {
    std::vector<std::string> argv = {CliBinary()};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("--broker");
    argv.push_back(broker_->address());
    argv.insert(argv.end(), {"--ca", pki_.ca(), "--cert", pki_.cert(agency), "--key",
                             pki_.key(agency)});
    return RunCommand(argv, output);
  }

  TempDir dir_;
  Pki pki_;
  std::unique_ptr<BrokerProcess> broker_;
};

TEST_F(CliTest, GrantListRevokeAndVerifyReceipt) {
  const std::string citizen = CitizenId(42);
  const std::string receipt = dir_.path() + "/receipt.json";
  std::string out;
  ASSERT_EQ(Cli("portal",
                {"consent", "grant", "--citizen", citizen, "--consumer", "tax", "--attributes",
                 "bank.interest_paid,person.name", "--purpose", "TAX_DEDUCTION_CHECK",
                 "--expires-in", "90d", "--receipt-out", receipt},
                &out),
            0)
      << out;
  EXPECT_TRUE(absl::StrContains(out, "ACTIVE")) << out;
  size_t at = out.find("consent ");
  ASSERT_NE(at, std::string::npos);
  std::string consent_id = out.substr(at + 8, 26);

  ASSERT_EQ(RunCommand({CliBinary(), "receipt", "verify", "--receipt", receipt, "--broker-cert",
                        pki_.broker_cert()},
                       &out),
            0)
      << out;
  EXPECT_TRUE(absl::StrContains(out, "receipt OK")) << out;
  EXPECT_TRUE(absl::StrContains(out, consent_id)) << out;

  // One changed byte in the signed body makes verification fail.
  absl::StatusOr<std::string> json = ReadFileToString(receipt);
  ASSERT_TRUE(json.ok());
  tellonce::v1::ConsentReceipt parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(*json, &parsed).ok());
  (*parsed.mutable_body())[parsed.body().size() - 3] ^= 0x20;
  std::string tampered_json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(parsed, &tampered_json).ok());
  std::string tampered = dir_.path() + "/tampered.json";
  std::ofstream(tampered) << tampered_json;
  EXPECT_EQ(RunCommand({CliBinary(), "receipt", "verify", "--receipt", tampered, "--broker-cert",
                        pki_.broker_cert()},
                       &out),
            1)
      << out;
  EXPECT_TRUE(absl::StrContains(out, "INVALID")) << out;

  // Verified against a certificate that is not the broker's: refused.
  EXPECT_EQ(RunCommand({CliBinary(), "receipt", "verify", "--receipt", receipt, "--broker-cert",
                        pki_.cert("portal")},
                       &out),
            1)
      << out;

  ASSERT_EQ(Cli("portal", {"consent", "list", "--citizen", citizen, "--status", "active"}, &out), 0)
      << out;
  EXPECT_TRUE(absl::StrContains(out, consent_id)) << out;
  EXPECT_TRUE(absl::StrContains(out, "1 consent(s)")) << out;

  ASSERT_EQ(Cli("portal", {"consent", "revoke", "--citizen", citizen, "--id", consent_id,
                           "--reason", "moved abroad"},
                &out),
            0)
      << out;
  EXPECT_TRUE(absl::StrContains(out, "REVOKED")) << out;
  ASSERT_EQ(Cli("portal", {"consent", "list", "--citizen", citizen, "--status", "active"}, &out), 0);
  EXPECT_TRUE(absl::StrContains(out, "0 consent(s)")) << out;
}

TEST_F(CliTest, ConsumerCertificateGetsPermissionDenied) {
  std::string out;
  EXPECT_EQ(Cli("tax", {"consent", "list", "--citizen", CitizenId(1)}, &out), 1) << out;
  EXPECT_TRUE(absl::StrContains(out, "PERMISSION_DENIED")) << out;
}

TEST_F(CliTest, MissingFlagIsAUsageError) {
  std::string out;
  EXPECT_EQ(Cli("portal", {"consent", "grant", "--citizen", CitizenId(1)}, &out), 2) << out;
  EXPECT_TRUE(absl::StrContains(out, "--consumer: required")) << out;
}

TEST_F(CliTest, PublishThenOperatorSeesTheOwedDeliveryAndOnlyDeadOnesRequeue) {
  const std::string citizen = CitizenId(7);
  std::string out;
  ASSERT_EQ(Cli("portal",
                {"consent", "grant", "--citizen", citizen, "--consumer", "tax", "--attributes",
                 "person.address", "--purpose", "TAX_DEDUCTION_CHECK", "--expires-in", "30d"},
                &out),
            0)
      << out;
  // The bank is not authoritative for addresses; a consumer may not publish at all.
  EXPECT_EQ(Cli("bank", {"publish", "--citizen", citizen, "--event-type", "ADDRESS_CHANGED",
                         "--attributes", "person.address", "--event-id", "b-1"},
                &out),
            1);
  EXPECT_TRUE(absl::StrContains(out, "PERMISSION_DENIED")) << out;
  EXPECT_EQ(Cli("tax", {"publish", "--citizen", citizen, "--event-type", "ADDRESS_CHANGED",
                        "--attributes", "person.address", "--event-id", "t-1"},
                &out),
            1);
  ASSERT_EQ(Cli("registry", {"publish", "--citizen", citizen, "--event-type", "ADDRESS_CHANGED",
                             "--attributes", "person.address", "--event-id", "r-1"},
                &out),
            0)
      << out;
  EXPECT_TRUE(absl::StrContains(out, "published")) << out;
  ASSERT_EQ(Cli("registry", {"publish", "--citizen", citizen, "--event-type", "ADDRESS_CHANGED",
                             "--attributes", "person.address", "--event-id", "r-1",
                             "--occurred-at", "2026-01-01T00:00:00Z"},
                &out),
            1)
      << "same event id, different content: " << out;
  EXPECT_TRUE(absl::StrContains(out, "event_id: already used")) << out;

  // The sample directory's tax connector is not running: the delivery stays owed.
  ASSERT_EQ(Cli("ops", {"deliveries", "list", "--subscriber", "tax"}, &out), 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "PENDING  to tax")) << out;
  EXPECT_TRUE(absl::StrContains(out, "ADDRESS_CHANGED r-1 from registry")) << out;
  EXPECT_TRUE(absl::StrContains(out, "1 delivery(ies) owed")) << out;
  EXPECT_EQ(Cli("ops", {"deliveries", "retry", "--id", "0"}, &out), 1) << out;
  EXPECT_TRUE(absl::StrContains(out, "not dead")) << out;
  EXPECT_EQ(Cli("tax", {"deliveries", "list"}, &out), 1) << out;
  EXPECT_TRUE(absl::StrContains(out, "PERMISSION_DENIED")) << out;
  EXPECT_EQ(Cli("ops", {"deliveries", "retry"}, &out), 2) << out;
}

}  // namespace
}  // namespace tellonce::testing
