// The `tellonce` CLI against a real broker: grant, list, revoke, receipt verify, admin
// status, audit; and the conventions every tellonce program follows (--help, --version,
// usage errors), on the built binaries.

#include <cstdlib>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "ops/version.h"
#include "proto/textproto.h"
#include "proto/time.h"
#include "tellonce/v1/admin.pb.h"
#include "tellonce/v1/consent.pb.h"
#include "tests/integration/harness.h"

namespace tellonce::testing {
namespace {

// Runs `argv` and keeps only its stdout (`stream` 1) or only its stderr (2).
int RunKeeping(int stream, const std::vector<std::string>& argv, std::string* output) {
  std::vector<std::string> shell = {
      "/bin/sh", "-c",
      stream == 1 ? "exec \"$0\" \"$@\" 2>/dev/null" : "exec \"$0\" \"$@\" 2>&1 >/dev/null"};
  shell.insert(shell.end(), argv.begin(), argv.end());
  return RunCommand(shell, output);
}

std::vector<std::string> Cmd(const std::string& binary, const std::string& words) {
  std::vector<std::string> argv = {binary};
  for (absl::string_view w : absl::StrSplit(words, ' ', absl::SkipEmpty())) {
    argv.emplace_back(w);
  }
  return argv;
}

std::vector<std::string> With(std::vector<std::string> argv, std::vector<std::string> more) {
  argv.insert(argv.end(), more.begin(), more.end());
  return argv;
}

// Every command and subcommand, with flags its --help must name.
const std::vector<std::pair<std::string, std::vector<std::string>>>& CommandsAndFlags() {
  static const auto* commands = new std::vector<std::pair<std::string, std::vector<std::string>>>{
      {"consent grant",
       {"--citizen", "--consumer", "--attributes", "--purpose", "--expires-in", "--expires-at",
        "--mode", "--receipt-out", "--broker", "--json"}},
      {"consent revoke", {"--citizen", "--id", "--reason", "--cert"}},
      {"consent get", {"--citizen", "--id", "--receipt-out"}},
      {"consent list", {"--citizen", "--status", "--page-size", "--page-token", "--all"}},
      {"receipt verify", {"--receipt", "--broker-cert", "--signing-keys", "--json"}},
      {"fetch", {"--citizen", "--attributes", "--purpose", "--request-id", "--timeout"}},
      {"access list", {"--citizen", "--from", "--to", "--all"}},
      {"audit checkpoint", {"--fresh", "--out", "--broker-cert", "--signing-keys"}},
      {"audit prove",
       {"--index", "--checkpoint", "--old", "--new", "--broker-cert", "--signing-keys"}},
      {"audit export", {"--out", "--data-dir", "--page-size"}},
      {"audit verify",
       {"--data-dir", "--log", "--checkpoint", "--broker-cert", "--signing-keys", "--json"}},
      {"publish", {"--citizen", "--event-type", "--attributes", "--event-id", "--occurred-at"}},
      {"deliveries list", {"--subscriber", "--state", "--all"}},
      {"deliveries retry", {"--id", "--subscriber", "--all"}},
      {"admin status", {"--json", "--broker", "--ca", "--cert", "--key"}},
  };
  return *commands;
}

TEST(CliConventionsTest, EveryCommandsHelpPrintsItsOwnUsageOnStdout) {
  std::string top;
  ASSERT_EQ(RunKeeping(1, Cmd(CliBinary(), "--help"), &top), 0) << top;
  for (const auto& [command, flags] : CommandsAndFlags()) {
    EXPECT_TRUE(absl::StrContains(top, command)) << command << " missing from:\n" << top;
    std::string out;
    ASSERT_EQ(RunKeeping(1, With(Cmd(CliBinary(), command), {"--help"}), &out), 0) << command;
    EXPECT_TRUE(absl::StartsWith(out, absl::StrCat("usage: tellonce ", command, " "))) << out;
    for (const std::string& flag : flags) {
      EXPECT_TRUE(absl::StrContains(out, absl::StrCat("  ", flag, " ")) ||
                  absl::StrContains(out, absl::StrCat("  ", flag, "\n")))
          << command << " --help does not describe " << flag << ":\n"
          << out;
    }
    // -h is the same.
    std::string short_out;
    EXPECT_EQ(RunKeeping(1, With(Cmd(CliBinary(), command), {"-h"}), &short_out), 0);
    EXPECT_EQ(short_out, out);
  }
  // A group's help lists its subcommands.
  for (const auto& [group, subcommands] :
       std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"consent", {"grant", "revoke", "get", "list"}},
           {"audit", {"checkpoint", "prove", "export", "verify"}},
           {"deliveries", {"list", "retry"}},
           {"admin", {"status"}}}) {
    std::string out;
    ASSERT_EQ(RunKeeping(1, Cmd(CliBinary(), group + " --help"), &out), 0) << group;
    EXPECT_TRUE(absl::StartsWith(out, absl::StrCat("usage: tellonce ", group))) << out;
    for (const std::string& sub : subcommands) {
      EXPECT_TRUE(absl::StrContains(out, absl::StrCat("  ", sub, " "))) << group << ":\n" << out;
    }
  }
}

TEST(CliConventionsTest, UnknownFlagIsAUsageErrorNamingTheFlag) {
  for (const auto& [command, flags] : CommandsAndFlags()) {
    std::string err;
    EXPECT_EQ(RunKeeping(2, With(Cmd(CliBinary(), command), {"--bogus", "1"}), &err), 2)
        << command << ": " << err;
    EXPECT_TRUE(
        absl::StrContains(err, absl::StrCat("tellonce: ", command, ": unknown flag --bogus")))
        << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  }
  // A flag another command takes is still unknown here.
  std::string err;
  EXPECT_EQ(RunKeeping(2, Cmd(CliBinary(), "receipt verify --citizen x"), &err), 2) << err;
  EXPECT_TRUE(absl::StrContains(err, "unknown flag --citizen")) << err;
  EXPECT_EQ(RunKeeping(2, Cmd(CliBinary(), "--bogus"), &err), 2) << err;
  EXPECT_TRUE(absl::StrContains(err, "unknown flag --bogus")) << err;
}

TEST(CliConventionsTest, MissingValueIsAUsageErrorNamingTheFlag) {
  std::string err;
  EXPECT_EQ(RunKeeping(2, Cmd(CliBinary(), "consent grant --citizen"), &err), 2) << err;
  EXPECT_TRUE(absl::StrContains(err, "flag --citizen needs a value")) << err;
  EXPECT_EQ(RunKeeping(2, Cmd(CliBinary(), "consent list --citizen --all"), &err), 2) << err;
  EXPECT_TRUE(absl::StrContains(err, "flag --citizen needs a value")) << err;
  EXPECT_EQ(RunKeeping(2, Cmd(CliBinary(), "admin status --broker"), &err), 2) << err;
  EXPECT_TRUE(absl::StrContains(err, "flag --broker needs a value")) << err;
  EXPECT_EQ(RunKeeping(2, Cmd(CliBinary(), "deliveries list --all=yes"), &err), 2) << err;
  EXPECT_TRUE(absl::StrContains(err, "flag --all takes no value")) << err;
  EXPECT_EQ(RunKeeping(2, Cmd(CliBinary(), "fetch --citizen a --citizen b"), &err), 2) << err;
  EXPECT_TRUE(absl::StrContains(err, "flag --citizen given twice")) << err;
}

TEST(CliConventionsTest, UnknownOrIncompleteCommandIsAUsageError) {
  std::string err;
  EXPECT_EQ(RunKeeping(2, Cmd(CliBinary(), "frobnicate"), &err), 2) << err;
  EXPECT_TRUE(absl::StrContains(err, "unknown command \"frobnicate\"")) << err;
  EXPECT_EQ(RunKeeping(2, Cmd(CliBinary(), "consent frob"), &err), 2) << err;
  EXPECT_TRUE(absl::StrContains(err, "unknown subcommand \"frob\"")) << err;
  EXPECT_EQ(RunKeeping(2, Cmd(CliBinary(), "consent"), &err), 2) << err;
  EXPECT_TRUE(absl::StrContains(err, "missing subcommand")) << err;
  EXPECT_EQ(RunKeeping(2, Cmd(CliBinary(), "fetch extra"), &err), 2) << err;
  EXPECT_EQ(RunCommand({CliBinary()}, &err), 2) << err;
}

TEST(CliConventionsTest, EveryBinaryPrintsItsVersion) {
  std::vector<std::pair<std::string, std::string>> programs = {{"tellonce", CliBinary()},
                                                               {"tellonce-broker", BrokerBinary()}};
  for (const char* agency : {"registry", "bank", "tax", "benefits"}) {
    programs.emplace_back(absl::StrCat("tellonce-", agency), AgencyBinary(agency));
  }
  for (const auto& [program, binary] : programs) {
    std::string out;
    ASSERT_EQ(RunKeeping(1, {binary, "--version"}, &out), 0) << program << ": " << out;
    EXPECT_EQ(out, absl::StrCat(program, " ", ops::kVersion, "\n"));
  }
  std::string out;
  ASSERT_EQ(RunKeeping(1, Cmd(CliBinary(), "version"), &out), 0);
  EXPECT_EQ(out, absl::StrCat("tellonce ", ops::kVersion, "\n"));
  ASSERT_EQ(RunKeeping(1, {AgencyBinary("registry"), "move", "--version"}, &out), 0);
  EXPECT_EQ(out, absl::StrCat("tellonce-registry ", ops::kVersion, "\n"));
}

TEST(CliConventionsTest, ServerBinariesFollowTheSameConventions) {
  std::vector<std::pair<std::string, std::vector<std::string>>> programs = {
      {"tellonce-broker", {BrokerBinary()}},
      {"tellonce-registry", {AgencyBinary("registry")}},
      {"tellonce-bank", {AgencyBinary("bank")}},
      {"tellonce-tax", {AgencyBinary("tax")}},
      {"tellonce-benefits", {AgencyBinary("benefits")}},
      {"tellonce-registry move", {AgencyBinary("registry"), "move"}}};
  for (const auto& [program, argv] : programs) {
    std::string out;
    ASSERT_EQ(RunKeeping(1, With(argv, {"--help"}), &out), 0) << program;
    EXPECT_TRUE(absl::StrContains(out, "usage: ")) << out;
    EXPECT_TRUE(absl::StrContains(out, "--config FILE ")) << out;
    EXPECT_TRUE(absl::StrContains(out, "--version")) << out;
    std::string err;
    EXPECT_EQ(RunKeeping(2, With(argv, {"--bogus", "1"}), &err), 2) << program;
    EXPECT_TRUE(absl::StrContains(err, absl::StrCat(program, ": unknown flag --bogus"))) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    EXPECT_EQ(RunKeeping(2, With(argv, {"--config"}), &err), 2) << program;
    EXPECT_TRUE(absl::StrContains(err, "flag --config needs a value")) << err;
  }
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<Pki> pki = MakePki(dir_.path() + "/pki", SampleDirectoryFile());
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *pki;
    broker_ =
        std::make_unique<BrokerProcess>(dir_.path() + "/broker", pki_, SampleDirectoryFor(pki_));
    ASSERT_TRUE(broker_->Start().ok()) << broker_->log();
  }

  int Cli(const std::string& agency, std::vector<std::string> args, std::string* output) {
    // A portal's citizen-bound commands carry an ID token minted with the dev
    // identity provider's key (the CLI reads TELLONCE_DEV_IDP_KEY).
    if (agency == "portal") {
      setenv("TELLONCE_DEV_IDP_KEY", pki_.idp_key().c_str(), 1);
    } else {
      unsetenv("TELLONCE_DEV_IDP_KEY");
    }
    std::vector<std::string> argv = {CliBinary()};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("--broker");
    argv.push_back(broker_->address());
    argv.insert(argv.end(),
                {"--ca", pki_.ca(), "--cert", pki_.cert(agency), "--key", pki_.key(agency)});
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
                        pki_.broker_cert(), "--signing-keys", pki_.signing_keys()},
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
                        pki_.broker_cert(), "--signing-keys", pki_.signing_keys()},
                       &out),
            1)
      << out;
  EXPECT_TRUE(absl::StrContains(out, "INVALID")) << out;

  // Verified against a certificate that is not the broker's: refused.
  EXPECT_EQ(RunCommand({CliBinary(), "receipt", "verify", "--receipt", receipt, "--broker-cert",
                        pki_.cert("portal"), "--signing-keys", pki_.signing_keys()},
                       &out),
            1)
      << out;

  ASSERT_EQ(Cli("portal", {"consent", "list", "--citizen", citizen, "--status", "active"}, &out), 0)
      << out;
  EXPECT_TRUE(absl::StrContains(out, consent_id)) << out;
  EXPECT_TRUE(absl::StrContains(out, "1 consent(s)")) << out;

  ASSERT_EQ(Cli("portal",
                {"consent", "revoke", "--citizen", citizen, "--id", consent_id, "--reason",
                 "moved abroad"},
                &out),
            0)
      << out;
  EXPECT_TRUE(absl::StrContains(out, "REVOKED")) << out;
  ASSERT_EQ(Cli("portal", {"consent", "list", "--citizen", citizen, "--status", "active"}, &out),
            0);
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
  EXPECT_EQ(Cli("bank",
                {"publish", "--citizen", citizen, "--event-type", "ADDRESS_CHANGED", "--attributes",
                 "person.address", "--event-id", "b-1"},
                &out),
            1);
  EXPECT_TRUE(absl::StrContains(out, "PERMISSION_DENIED")) << out;
  EXPECT_EQ(Cli("tax",
                {"publish", "--citizen", citizen, "--event-type", "ADDRESS_CHANGED", "--attributes",
                 "person.address", "--event-id", "t-1"},
                &out),
            1);
  ASSERT_EQ(Cli("registry",
                {"publish", "--citizen", citizen, "--event-type", "ADDRESS_CHANGED", "--attributes",
                 "person.address", "--event-id", "r-1"},
                &out),
            0)
      << out;
  EXPECT_TRUE(absl::StrContains(out, "published")) << out;
  ASSERT_EQ(Cli("registry",
                {"publish", "--citizen", citizen, "--event-type", "ADDRESS_CHANGED", "--attributes",
                 "person.address", "--event-id", "r-1", "--occurred-at", "2026-01-01T00:00:00Z"},
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

// Parses `text` as JSON (any JSON object), for checking --json output.
google::protobuf::Struct ParseJson(const std::string& text) {
  google::protobuf::Struct parsed;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(text, &parsed).ok()) << text;
  return parsed;
}

TEST_F(CliTest, AdminStatusShowsLogSizeAndOutboxDepth) {
  const std::string citizen = CitizenId(9);
  std::string out;
  // A refused fetch is an access event; a published change with a subscriber whose
  // connector is down is a pending delivery.
  ASSERT_EQ(Cli("tax",
                {"fetch", "--citizen", citizen, "--attributes", "person.name", "--purpose",
                 "TAX_DEDUCTION_CHECK"},
                &out),
            3)
      << out;
  ASSERT_EQ(Cli("portal",
                {"consent", "grant", "--citizen", citizen, "--consumer", "tax", "--attributes",
                 "person.address", "--purpose", "TAX_DEDUCTION_CHECK", "--expires-in", "30d"},
                &out),
            0)
      << out;
  ASSERT_EQ(Cli("registry",
                {"publish", "--citizen", citizen, "--event-type", "ADDRESS_CHANGED", "--attributes",
                 "person.address", "--event-id", "s-1"},
                &out),
            0)
      << out;

  tellonce::v1::BrokerStatus status;
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(Cli("ops", {"admin", "status", "--json"}, &out), 0) << out;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(out, &status).ok()) << out;
    if (status.deliveries_pending() == 1 && status.access_log_size() >= 1) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(status.version(), ops::kVersion);
  EXPECT_GE(status.access_log_size(), 1u) << out;
  EXPECT_EQ(status.deliveries_pending(), 1u) << out;
  EXPECT_EQ(status.deliveries_dead(), 0u) << out;
  EXPECT_TRUE(status.has_started_at()) << out;
  EXPECT_TRUE(status.ready()) << out;
  // The dev PKI's broker certificate and CRL last 30 days.
  ASSERT_TRUE(status.has_tls_certificate_not_after()) << out;
  EXPECT_GT(FromProtoTime(status.tls_certificate_not_after()), absl::Now() + absl::Hours(24 * 28));
  ASSERT_TRUE(status.has_crl_next_update()) << out;
  EXPECT_GT(FromProtoTime(status.crl_next_update()), absl::Now() + absl::Hours(24 * 28));
  google::protobuf::Struct json = ParseJson(out);
  for (const char* key : {"version", "uptime_seconds", "access_log_size", "deliveries_pending",
                          "deliveries_dead", "ready"}) {
    EXPECT_TRUE(json.fields().contains(key)) << key << " missing from " << out;
  }

  ASSERT_EQ(Cli("ops", {"admin", "status"}, &out), 0) << out;
  EXPECT_TRUE(absl::StrContains(out, absl::StrCat("version          ", ops::kVersion))) << out;
  EXPECT_TRUE(absl::StrContains(
      out, absl::StrCat("access log       ", status.access_log_size(), " event(s)")))
      << out;
  EXPECT_TRUE(absl::StrContains(out, "outbox           1 pending, 0 dead deliveries")) << out;
  EXPECT_TRUE(absl::StrContains(out, "ready            yes")) << out;
  EXPECT_TRUE(absl::StrContains(out, "certificate      expires in ")) << out;
  EXPECT_TRUE(absl::StrContains(out, "crl              next update in ")) << out;
}

TEST_F(CliTest, AdminStatusIsForTheAdminRoleOnly) {
  std::string out;
  for (const char* agency : {"tax", "portal", "registry"}) {
    EXPECT_EQ(Cli(agency, {"admin", "status"}, &out), 1) << agency << ": " << out;
    EXPECT_TRUE(absl::StrContains(out, "PERMISSION_DENIED")) << out;
    EXPECT_TRUE(absl::StrContains(out, "requires the admin role")) << out;
  }
}

TEST_F(CliTest, AuditVerifyPrintsJson) {
  std::string out;
  ASSERT_EQ(Cli("tax",
                {"fetch", "--citizen", CitizenId(3), "--attributes", "person.name", "--purpose",
                 "TAX_DEDUCTION_CHECK"},
                &out),
            3)
      << out;
  const std::string checkpoint = dir_.path() + "/cp.bin";
  const std::string log = dir_.path() + "/log.export";
  ASSERT_EQ(Cli("ops",
                {"audit", "checkpoint", "--fresh", "--out", checkpoint, "--broker-cert",
                 pki_.broker_cert(), "--signing-keys", pki_.signing_keys()},
                &out),
            0)
      << out;
  ASSERT_EQ(Cli("ops", {"audit", "export", "--out", log, "--json"}, &out), 0) << out;
  EXPECT_EQ(ParseJson(out).fields().at("events").number_value(), 1) << out;

  ASSERT_EQ(RunKeeping(1,
                       {CliBinary(), "audit", "verify", "--log", log, "--checkpoint", checkpoint,
                        "--broker-cert", pki_.broker_cert(), "--signing-keys", pki_.signing_keys(),
                        "--json"},
                       &out),
            0)
      << out;
  google::protobuf::Struct verdict = ParseJson(out);
  EXPECT_TRUE(verdict.fields().at("ok").bool_value()) << out;
  EXPECT_EQ(verdict.fields().at("checked_size").number_value(), 1) << out;
  EXPECT_FALSE(verdict.fields().contains("first_bad_index")) << out;
  EXPECT_EQ(verdict.fields().at("log_copy").struct_value().fields().at("events").number_value(), 1)
      << out;

  // A checkpoint of a larger log than the copy holds: a failed check, as JSON, exit 1.
  ASSERT_EQ(Cli("tax",
                {"fetch", "--citizen", CitizenId(4), "--attributes", "person.name", "--purpose",
                 "TAX_DEDUCTION_CHECK"},
                &out),
            3);
  ASSERT_EQ(Cli("ops",
                {"audit", "checkpoint", "--fresh", "--out", checkpoint, "--broker-cert",
                 pki_.broker_cert(), "--signing-keys", pki_.signing_keys()},
                &out),
            0)
      << out;
  ASSERT_EQ(RunKeeping(1,
                       {CliBinary(), "audit", "verify", "--log", log, "--checkpoint", checkpoint,
                        "--broker-cert", pki_.broker_cert(), "--signing-keys", pki_.signing_keys(),
                        "--json"},
                       &out),
            1)
      << out;
  verdict = ParseJson(out);
  EXPECT_FALSE(verdict.fields().at("ok").bool_value()) << out;
  EXPECT_EQ(verdict.fields().at("first_bad_index").number_value(), 1) << out;
}

}  // namespace
}  // namespace tellonce::testing
