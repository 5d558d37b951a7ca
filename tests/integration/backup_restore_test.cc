// Issue 16, backup and restore without forking the signed log. A broker serving grants
// and exchanges is backed up (`tellonce admin backup`); the backup restored into a fresh
// directory holds every consent acknowledged before the backup began, passes `tellonce
// audit verify` against its own signed checkpoint, and serves. A backup restored after
// newer checkpoints were signed is refused at start, naming the checkpoint the data is
// behind; with --accept-log-rollback the broker starts and records the rollback.

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "tellonce/v1/admin.pb.h"
#include "tellonce/v1/consent.grpc.pb.h"
#include "tellonce/v1/transparency.grpc.pb.h"
#include "tests/integration/harness.h"
#include "tests/testing/temp_dir.h"

namespace tellonce::testing {
namespace {

namespace fs = std::filesystem;

class BackupRestoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<Pki> pki = MakePki(dir_.path() + "/pki", SampleDirectoryFile());
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *pki;
  }

  std::string BrokerConfig() const {
    return absl::StrCat("backup { directory: \"", dir_.path(), "/backups\" }\n",
                        "checkpoint_interval_seconds: 1\n");
  }

  // `tellonce <args> --broker ... ` as `agency`; the exit code.
  int Cli(const BrokerProcess& broker, const std::string& agency, std::vector<std::string> args,
          std::string* output) {
    std::vector<std::string> argv = {CliBinary()};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--broker", broker.address(), "--ca", pki_.ca(), "--cert",
                             pki_.cert(agency), "--key", pki_.key(agency)});
    return RunCommand(argv, output);
  }

  // `tellonce admin backup --json` as the operator; the backup's folder.
  std::string Backup(const BrokerProcess& broker) {
    std::string output;
    EXPECT_EQ(Cli(broker, "ops", {"admin", "backup", "--json"}, &output), 0) << output;
    tellonce::v1::BackupResponse response;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(output, &response).ok()) << output;
    EXPECT_TRUE(fs::is_directory(response.directory())) << output;
    return response.directory();
  }

  // A fresh checkpoint covering every event so far, saved to `path`.
  void FreshCheckpoint(const BrokerProcess& broker, const std::string& path) {
    std::string output;
    ASSERT_EQ(Cli(broker, "ops",
                  {"audit", "checkpoint", "--fresh", "--out", path, "--broker-cert",
                   pki_.broker_cert(), "--signing-keys", pki_.signing_keys()},
                  &output),
              0)
        << output;
  }

  absl::StatusOr<std::string> Grant(const BrokerProcess& broker, int citizen) {
    ConsentTerms terms;
    terms.citizen = CitizenId(citizen);
    terms.consumer = "tax";
    terms.attributes = {"person.address"};
    terms.purpose = "TAX_ASSESSMENT";
    return GrantConsent(pki_, broker.address(), terms);
  }

  // An exchange the broker refuses (no basis) without calling a connector: one access
  // event in the log.
  void Refused(const BrokerProcess& broker, int citizen) {
    tellonce::v1::GetAttributesResponse response;
    grpc::Status status = GetAttributes(pki_, broker.address(), "tax", CitizenId(citizen),
                                        {"bank.interest_paid"}, "TAX_ASSESSMENT", &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.results_size(), 1);
    EXPECT_EQ(response.results(0).code(), tellonce::v1::RESULT_NO_BASIS);
  }

  // GetConsent as the portal with the citizen's token.
  grpc::Status GetConsent(const BrokerProcess& broker, int citizen, const std::string& id) {
    return GetConsentAsPortal(pki_, broker.address(), CitizenId(citizen), id);
  }

  int AuditVerify(const std::string& data_dir, const std::string& checkpoint, std::string* output) {
    return RunCommand(
        {CliBinary(), "audit", "verify", "--data-dir", data_dir, "--checkpoint", checkpoint,
         "--broker-cert", pki_.broker_cert(), "--signing-keys", pki_.signing_keys()},
        output);
  }

  // Replaces `data_dir` by a copy of the backup's database.
  static void Restore(const std::string& backup, const std::string& data_dir) {
    fs::remove_all(data_dir);
    fs::copy(backup + "/data", data_dir, fs::copy_options::recursive);
  }

  TempDir dir_;
  Pki pki_;
};

TEST_F(BackupRestoreTest, BackupUnderLoadRestoresIntoAFreshDirectoryAndServes) {
  absl::StatusOr<SampleConnectors> connectors = StartSampleConnectors(dir_.path(), pki_);
  ASSERT_TRUE(connectors.ok()) << connectors.status();
  BrokerProcess broker(dir_.path() + "/broker", pki_, connectors->directory_file, BrokerConfig());
  ASSERT_TRUE(broker.Start().ok()) << broker.log();

  // Grants and exchanges run throughout; each acknowledged grant is noted with the time
  // its answer came.
  struct Acknowledged {
    int citizen;
    std::string consent_id;
    absl::Time at;
  };
  std::mutex mu;
  std::vector<Acknowledged> acknowledged;
  std::atomic<bool> stop{false};
  std::atomic<int> exchanges{0};
  std::thread granter([&] {
    for (int i = 0; !stop.load(); ++i) {
      absl::StatusOr<std::string> id = Grant(broker, i);
      if (!id.ok()) continue;
      std::lock_guard<std::mutex> lock(mu);
      acknowledged.push_back({i, *id, absl::Now()});
    }
  });
  std::thread exchanger([&] {
    for (int i = 0; !stop.load(); ++i) {
      tellonce::v1::GetAttributesResponse response;
      if (GetAttributes(pki_, broker.address(), "tax", CitizenId(i % 50), {"person.name"},
                        "TAX_ASSESSMENT", &response)
              .ok()) {
        exchanges.fetch_add(1);
      }
    }
  });
  absl::SleepFor(absl::Seconds(2));
  const absl::Time backup_began = absl::Now();
  const std::string backup = Backup(broker);
  absl::SleepFor(absl::Seconds(1));
  stop.store(true);
  granter.join();
  exchanger.join();
  EXPECT_GT(exchanges.load(), 0);
  std::vector<Acknowledged> before;
  size_t after = 0;
  for (const Acknowledged& a : acknowledged) {
    if (a.at < backup_began) {
      before.push_back(a);
    } else {
      ++after;
    }
  }
  std::printf(
      "backup under load: %zu consents acknowledged before it began, %zu after, "
      "%d exchanges\n",
      before.size(), after, exchanges.load());
  ASSERT_GT(before.size(), 5u);
  EXPECT_GT(after, 0u) << "writes went on during and after the backup";
  EXPECT_EQ(broker.Terminate(), 0);

  // The backup's log verifies against the checkpoint that came with it.
  ASSERT_TRUE(fs::exists(backup + "/signed-checkpoint"));
  std::string output;
  EXPECT_EQ(AuditVerify(backup + "/data", backup + "/signed-checkpoint", &output), 0) << output;

  // A fresh machine: the backup's database and its checkpoint file in a new directory.
  BrokerProcess restored(dir_.path() + "/restored", pki_, connectors->directory_file,
                         BrokerConfig());
  Restore(backup, restored.data_dir());
  fs::copy_file(backup + "/signed-checkpoint", restored.data_dir() + ".checkpoint");
  ASSERT_TRUE(restored.Start().ok()) << restored.log();
  for (const Acknowledged& a : before) {
    grpc::Status status = GetConsent(restored, a.citizen, a.consent_id);
    EXPECT_TRUE(status.ok()) << "consent " << a.consent_id
                             << " acknowledged before the backup: " << status.error_message();
  }
  tellonce::v1::GetAttributesResponse response;
  // A citizen the registry's records hold.
  ASSERT_TRUE(GetAttributes(pki_, restored.address(), "tax", "37605030299", {"person.name"},
                            "TAX_ASSESSMENT", &response)
                  .ok());
  ASSERT_EQ(response.results_size(), 1);
  EXPECT_EQ(response.results(0).code(), tellonce::v1::RESULT_OK);
  // And its log, grown since, still verifies against a fresh checkpoint.
  const std::string checkpoint = dir_.path() + "/after-restore.checkpoint";
  FreshCheckpoint(restored, checkpoint);
  EXPECT_EQ(restored.Terminate(), 0);
  EXPECT_EQ(AuditVerify(restored.data_dir(), checkpoint, &output), 0) << output;
}

TEST_F(BackupRestoreTest, OlderBackupIsRefusedUntilTheOperatorAcceptsTheRollback) {
  const std::string directory = SampleDirectoryFor(pki_);
  BrokerProcess broker(dir_.path() + "/broker", pki_, directory, BrokerConfig());
  ASSERT_TRUE(broker.Start().ok()) << broker.log();
  for (int i = 0; i < 5; ++i) Refused(broker, i);
  FreshCheckpoint(broker, dir_.path() + "/first.checkpoint");
  const std::string old_backup = Backup(broker);
  // The broker goes on: more events, a newer checkpoint that someone now holds.
  for (int i = 5; i < 10; ++i) Refused(broker, i);
  const std::string newer = dir_.path() + "/newer.checkpoint";
  FreshCheckpoint(broker, newer);
  EXPECT_EQ(broker.Terminate(), 0);
  std::ifstream guard_in(broker.data_dir() + ".checkpoint", std::ios::binary);
  std::ifstream newer_in(newer, std::ios::binary);
  std::stringstream guard_bytes, newer_bytes;
  guard_bytes << guard_in.rdbuf();
  newer_bytes << newer_in.rdbuf();
  ASSERT_EQ(guard_bytes.str(), newer_bytes.str()) << "the guard holds the newest checkpoint";
  tellonce::v1::SignedCheckpoint newest;
  ASSERT_TRUE(newest.ParseFromString(newer_bytes.str()));
  tellonce::v1::Checkpoint newest_body;
  ASSERT_TRUE(newest_body.ParseFromString(newest.body()));

  // The older backup in place of the data; the guard file beside it stays.
  Restore(old_backup, broker.data_dir());
  ASSERT_FALSE(broker.Start().ok());
  EXPECT_TRUE(absl::StrContains(broker.log(), "signed log rollback")) << broker.log();
  EXPECT_TRUE(absl::StrContains(broker.log(), absl::StrCat("size ", newest_body.tree_size())))
      << broker.log();
  EXPECT_TRUE(absl::StrContains(broker.log(), "--accept-log-rollback")) << broker.log();
  // --check says the same, without starting anything.
  std::string output;
  EXPECT_EQ(RunCommand({BrokerBinary(), "--config", broker.config_path(), "--check"}, &output), 1);
  EXPECT_TRUE(absl::StrContains(output, "signed log rollback")) << output;

  // The operator accepts it: the broker starts, warns and records it in the log.
  broker.set_extra_args({"--accept-log-rollback"});
  ASSERT_TRUE(broker.Start().ok()) << broker.log();
  EXPECT_TRUE(absl::StrContains(broker.log(), "WARN")) << broker.log();
  EXPECT_TRUE(absl::StrContains(broker.log(), "LOG_ROLLBACK: accepted by the operator"))
      << broker.log();
  // A fresh checkpoint covers it (hashed), so the export holds it.
  const std::string after = dir_.path() + "/after.checkpoint";
  FreshCheckpoint(broker, after);
  const std::string export_file = dir_.path() + "/log.export";
  ASSERT_EQ(Cli(broker, "ops", {"audit", "export", "--out", export_file}, &output), 0) << output;
  std::ifstream export_in(export_file, std::ios::binary);
  std::stringstream exported;
  exported << export_in.rdbuf();
  EXPECT_TRUE(absl::StrContains(exported.str(), "LOG_ROLLBACK: accepted by the operator"))
      << "the event is in the log";
  EXPECT_EQ(broker.Terminate(), 0);
  EXPECT_EQ(AuditVerify(broker.data_dir(), after, &output), 0) << output;

  // Accepted once: the next start needs no flag.
  broker.set_extra_args({});
  ASSERT_TRUE(broker.Start().ok()) << broker.log();
  EXPECT_EQ(broker.Terminate(), 0);
}

TEST_F(BackupRestoreTest, BackupNeedsTheAdminRoleAndAConfiguredDirectory) {
  const std::string directory = SampleDirectoryFor(pki_);
  BrokerProcess broker(dir_.path() + "/broker", pki_, directory, BrokerConfig());
  ASSERT_TRUE(broker.Start().ok()) << broker.log();
  std::string output;
  EXPECT_EQ(Cli(broker, "tax", {"admin", "backup"}, &output), 1) << output;
  EXPECT_TRUE(absl::StrContains(output, "PERMISSION_DENIED")) << output;
  EXPECT_FALSE(fs::exists(dir_.path() + "/backups"));
  EXPECT_EQ(broker.Terminate(), 0);

  BrokerProcess unconfigured(dir_.path() + "/plain", pki_, directory);
  ASSERT_TRUE(unconfigured.Start().ok()) << unconfigured.log();
  EXPECT_EQ(Cli(unconfigured, "ops", {"admin", "backup"}, &output), 1) << output;
  EXPECT_TRUE(absl::StrContains(output, "backup.directory: not configured")) << output;
}

TEST_F(BackupRestoreTest, DataSignedOverByAnotherLogIsRefusedAsAFork) {
  const std::string directory = SampleDirectoryFor(pki_);
  BrokerProcess first(dir_.path() + "/first", pki_, directory, BrokerConfig());
  ASSERT_TRUE(first.Start().ok()) << first.log();
  for (int i = 0; i < 3; ++i) Refused(first, i);
  FreshCheckpoint(first, dir_.path() + "/first.checkpoint");
  EXPECT_EQ(first.Terminate(), 0);
  // Another broker's data, with more events, put in the first one's place.
  BrokerProcess second(dir_.path() + "/second", pki_, directory, BrokerConfig());
  ASSERT_TRUE(second.Start().ok()) << second.log();
  for (int i = 100; i < 110; ++i) Refused(second, i);
  FreshCheckpoint(second, dir_.path() + "/second.checkpoint");
  EXPECT_EQ(second.Terminate(), 0);
  fs::remove_all(first.data_dir());
  fs::copy(second.data_dir(), first.data_dir(), fs::copy_options::recursive);
  ASSERT_FALSE(first.Start().ok());
  EXPECT_TRUE(absl::StrContains(first.log(), "signed log fork")) << first.log();
}

}  // namespace
}  // namespace tellonce::testing
