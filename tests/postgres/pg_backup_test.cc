// Issue 16, backup and restore with the PostgreSQL backend, with PostgreSQL's own tools
// (docs/backup-postgres.md). A broker over a throwaway cluster serves grants and
// exchanges while pg_basebackup copies the cluster; a new cluster started from the
// backup holds every consent acknowledged before the backup began, its log verifies
// against the checkpoint the broker had signed when the backup began, and a broker over
// it serves. Restoring an older backup, or recovering to a point in time before newer
// checkpoints were signed, is a rollback of the signed log: the broker, with its own
// signed_checkpoint_file (never restored with the database), refuses to start naming the
// checkpoint the data is behind, and starts with --accept-log-rollback, which it records.
// With two replicas each one refuses with its own file. `tellonce admin backup` points
// to PostgreSQL's tools and copies nothing.

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "tellonce/v1/consent.grpc.pb.h"
#include "tellonce/v1/transparency.pb.h"
#include "tests/integration/harness.h"
#include "tests/testing/pg_cluster.h"
#include "tests/testing/temp_dir.h"

namespace tellonce::testing {
namespace {

namespace fs = std::filesystem;

// A citizen the sample registry's records hold.
constexpr char kCitizen[] = "37605030299";

// One broker over PostgreSQL (as tests/postgres/replica_test.cc's ReplicaProcess) with
// its rollback guard in `guard_file`, on this host. UseDatabase points it at another
// database (a restored cluster) before its next Start.
class PgBroker : public ServerProcess {
 public:
  PgBroker(const std::string& dir, const Pki& pki, std::string directory_file,
           const std::string& conninfo, std::string guard_file, std::string name = "r0")
      : ServerProcess(BrokerBinary(), Prepare(dir) + "/broker.textproto", dir + "/broker.log",
                      dir + "/port"),
        dir_(dir),
        name_(std::move(name)),
        pki_(pki),
        directory_file_(std::move(directory_file)),
        guard_file_(std::move(guard_file)) {
    admin_port_file_ = dir + "/admin-port";
    UseDatabase(conninfo);
  }

  void UseDatabase(const std::string& conninfo) {
    std::ofstream(config_path()) << "listen_address: \"127.0.0.1:0\"\n"
                                 << "admin { listen_address: \"127.0.0.1:0\" }\n"
                                 << "tls {\n"
                                 << "  ca_file: \"" << pki_.ca() << "\"\n"
                                 << "  cert_file: \"" << pki_.broker_cert() << "\"\n"
                                 << "  key_file: \"" << pki_.broker_key() << "\"\n"
                                 << "  crl_dir: \"" << pki_.dir << "/crl\"\n"
                                 << "}\n"
                                 << "signing {\n"
                                 << "  key_file: \"" << pki_.signing_key() << "\"\n"
                                 << "  key_id: \"" << pki_.signing_key_id() << "\"\n"
                                 << "}\n"
                                 << "storage { postgres {\n"
                                 << "  conninfo: \"" << conninfo << "\"\n"
                                 << "  replica_name: \"" << name_ << "\"\n"
                                 << "  pool_size: 4\n"
                                 << "  sequencer_lease_ms: 1000\n"
                                 << "} }\n"
                                 << "signed_checkpoint_file: \"" << guard_file_ << "\"\n"
                                 << "backup { directory: \"" << dir_ << "/backups\" }\n"
                                 << "directory_file: \"" << directory_file_ << "\"\n"
                                 << "checkpoint_interval_seconds: 1\n"
                                 << "fresh_checkpoint_interval_ms: 200\n"
                                 << "shutdown_grace_seconds: 2\n";
  }
  const std::string& guard_file() const { return guard_file_; }

 private:
  static std::string Prepare(const std::string& dir) {
    fs::create_directories(dir);
    return dir;
  }
  const std::string dir_;
  const std::string name_;
  const Pki pki_;
  const std::string directory_file_;
  const std::string guard_file_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// The tree size of the signed checkpoint in `path`; 0 when there is none (yet).
uint64_t CheckpointSize(const std::string& path) {
  tellonce::v1::SignedCheckpoint signed_checkpoint;
  tellonce::v1::Checkpoint body;
  if (!signed_checkpoint.ParseFromString(ReadFile(path)) ||
      !body.ParseFromString(signed_checkpoint.body())) {
    return 0;
  }
  return body.tree_size();
}

// Waits (up to 20 s) until the guard file holds a checkpoint of at least `size` events.
bool WaitForGuard(const std::string& path, uint64_t size) {
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    if (fs::exists(path) && CheckpointSize(path) >= size && CheckpointSize(path) > 0) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return false;
}

class PgBackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<Pki> pki = MakePki(dir_.path() + "/pki", SampleDirectoryFile());
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *pki;
    absl::StatusOr<SampleConnectors> connectors = StartSampleConnectors(dir_.path(), pki_);
    ASSERT_TRUE(connectors.ok()) << connectors.status();
    connectors_ = std::move(*connectors);
  }

  std::unique_ptr<PgCluster> StartCluster(bool archive_wal) {
    absl::StatusOr<std::unique_ptr<PgCluster>> cluster =
        PgCluster::Start({.archive_wal = archive_wal});
    EXPECT_TRUE(cluster.ok()) << cluster.status();
    return cluster.ok() ? *std::move(cluster) : nullptr;
  }

  std::unique_ptr<PgBroker> MakeBroker(const std::string& name, const std::string& conninfo,
                                       const std::string& guard_file) {
    return std::make_unique<PgBroker>(dir_.path() + "/" + name, pki_, connectors_.directory_file,
                                      conninfo, guard_file, name);
  }

  // psql in `db` of `cluster`, the output without the trailing newline.
  static std::string Sql(PgCluster& cluster, const std::string& db, const std::string& sql) {
    absl::StatusOr<std::string> out = cluster.Psql(db, sql);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? std::string(absl::StripTrailingAsciiWhitespace(*out)) : "";
  }
  // Events in the database: numbered, and committed but not yet numbered.
  static uint64_t EventCount(PgCluster& cluster, const std::string& db) {
    uint64_t n = 0;
    const std::string out = Sql(cluster, db,
                                "SELECT (SELECT value FROM counters WHERE name = 'access_events') "
                                "+ (SELECT count(*) FROM access_queue)");
    EXPECT_TRUE(absl::SimpleAtoi(out, &n)) << out;
    return n;
  }

  // Until every committed event is numbered and hashed into the stored tree (up to 20 s).
  static bool WaitSettled(PgCluster& cluster, const std::string& db) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (absl::Now() < deadline) {
      if (Sql(cluster, db,
              "SELECT (SELECT count(*) FROM access_queue) = 0 AND (SELECT tree_size FROM "
              "sequencer) = (SELECT value FROM counters WHERE name = 'access_events')") == "t") {
        return true;
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }

  // `tellonce <args> --broker ...` as `agency`; the exit code.
  int Cli(const PgBroker& broker, const std::string& agency, std::vector<std::string> args,
          std::string* output) {
    std::vector<std::string> argv = {CliBinary()};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--broker", broker.address(), "--ca", pki_.ca(), "--cert",
                             pki_.cert(agency), "--key", pki_.key(agency)});
    return RunCommand(argv, output);
  }

  // A fresh checkpoint covering every event so far, saved to `path`.
  void FreshCheckpoint(const PgBroker& broker, const std::string& path) {
    std::string output;
    ASSERT_EQ(Cli(broker, "ops",
                  {"audit", "checkpoint", "--fresh", "--out", path, "--broker-cert",
                   pki_.broker_cert(), "--signing-keys", pki_.signing_keys()},
                  &output),
              0)
        << output;
  }

  // The log exported through `broker` (ExportAccessLog, as the operator) into `path`.
  void Export(const PgBroker& broker, const std::string& path) {
    std::string output;
    ASSERT_EQ(Cli(broker, "ops", {"audit", "export", "--out", path}, &output), 0) << output;
  }

  // `tellonce audit verify --log` of an export against a checkpoint; the exit code.
  int AuditVerify(const std::string& log, const std::string& checkpoint, std::string* output) {
    return RunCommand({CliBinary(), "audit", "verify", "--log", log, "--checkpoint", checkpoint,
                       "--broker-cert", pki_.broker_cert(), "--signing-keys", pki_.signing_keys()},
                      output);
  }

  absl::StatusOr<std::string> Grant(const PgBroker& broker, int citizen) {
    ConsentTerms terms;
    terms.citizen = CitizenId(citizen);
    terms.consumer = "tax";
    terms.attributes = {"person.address"};
    terms.purpose = "TAX_ASSESSMENT";
    return GrantConsent(pki_, broker.address(), terms);
  }

  // An exchange the broker refuses (no basis) without calling a connector: one access
  // event in the log.
  void Refused(const PgBroker& broker, int citizen) {
    tellonce::v1::GetAttributesResponse response;
    grpc::Status status = GetAttributes(pki_, broker.address(), "tax", CitizenId(citizen),
                                        {"bank.interest_paid"}, "TAX_ASSESSMENT", &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.results_size(), 1);
    EXPECT_EQ(response.results(0).code(), tellonce::v1::RESULT_NO_BASIS);
  }

  // GetConsent as the portal with the citizen's token.
  grpc::Status GetConsent(const PgBroker& broker, int citizen, const std::string& id) {
    return GetConsentAsPortal(pki_, broker.address(), CitizenId(citizen), id);
  }

  // The restored database, through `broker` started over it with the guard file that
  // saw newer checkpoints (`newest`, `newest_size` events): refused, naming that
  // checkpoint, the file untouched; then accepted with --accept-log-rollback, which is
  // logged and recorded in the log; the log then verifies, and later starts need no flag.
  // (--check reads only the schema version of a PostgreSQL database: the guard is
  // compared at start.)
  void ExpectRollbackRefusedThenAccepted(PgBroker& broker, PgCluster& cluster,
                                         const std::string& db, const std::string& newest,
                                         uint64_t newest_size, const std::string& name) {
    ASSERT_FALSE(broker.Start().ok()) << "a broker started on a rolled-back database";
    EXPECT_TRUE(absl::StrContains(broker.log(), "signed log rollback")) << broker.log();
    EXPECT_TRUE(absl::StrContains(broker.log(), absl::StrCat("size ", newest_size, ", root")))
        << "the refusal does not name the checkpoint it is behind: " << broker.log();
    EXPECT_TRUE(absl::StrContains(broker.log(), broker.guard_file())) << broker.log();
    EXPECT_TRUE(absl::StrContains(broker.log(), "--accept-log-rollback")) << broker.log();
    EXPECT_EQ(ReadFile(broker.guard_file()), newest) << "a refused start changed the guard";
    broker.set_extra_args({"--accept-log-rollback"});
    ASSERT_TRUE(broker.Start().ok()) << broker.log();
    EXPECT_TRUE(absl::StrContains(broker.log(), "WARN")) << broker.log();
    EXPECT_TRUE(absl::StrContains(broker.log(), "LOG_ROLLBACK: accepted by the operator"))
        << broker.log();
    // It goes on from the restored database's own latest checkpoint, which its file now
    // holds (every restored database here has one).
    EXPECT_TRUE(absl::StrContains(broker.log(), "events and checkpoint size ")) << broker.log();
    EXPECT_GT(CheckpointSize(broker.guard_file()), 0u);
    EXPECT_LT(CheckpointSize(broker.guard_file()), newest_size);
    // The event is committed at start; numbered and hashed by the sequencer after it.
    ASSERT_TRUE(WaitSettled(cluster, db)) << "the log was not numbered and hashed in time";
    const std::string after = dir_.path() + "/" + name + "-after.checkpoint";
    FreshCheckpoint(broker, after);
    const std::string exported = dir_.path() + "/" + name + "-after.export";
    Export(broker, exported);
    EXPECT_TRUE(absl::StrContains(ReadFile(exported), "LOG_ROLLBACK: accepted by the operator"))
        << "the operator event is not in the log";
    EXPECT_EQ(Sql(cluster, db,
                  "SELECT count(*) FROM access_events WHERE position(convert_to('LOG_ROLLBACK: "
                  "accepted by the operator', 'UTF8') in event) > 0"),
              "1");
    std::string output;
    EXPECT_EQ(AuditVerify(exported, after, &output), 0) << output;
    EXPECT_EQ(broker.Terminate(), 0);
    // Accepted once: the guard now follows the restored log.
    broker.set_extra_args({});
    ASSERT_TRUE(broker.Start().ok()) << broker.log();
    EXPECT_EQ(broker.Terminate(), 0);
  }

  TempDir dir_;
  Pki pki_;
  SampleConnectors connectors_;
};

TEST_F(PgBackupTest, BaseBackupUnderLoadRestoresIntoANewClusterThatServes) {
  std::unique_ptr<PgCluster> cluster = StartCluster(/*archive_wal=*/false);
  ASSERT_NE(cluster, nullptr);
  absl::StatusOr<std::string> db = cluster->CreateDatabase();
  ASSERT_TRUE(db.ok()) << db.status();
  std::unique_ptr<PgBroker> broker =
      MakeBroker("broker", cluster->ConnInfo(*db), dir_.path() + "/broker.checkpoint");
  ASSERT_TRUE(broker->Start().ok()) << broker->log();

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
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; !stop.load(); i += 2) {
        absl::StatusOr<std::string> id = Grant(*broker, i);
        if (!id.ok()) continue;
        std::lock_guard<std::mutex> lock(mu);
        acknowledged.push_back({i, *id, absl::Now()});
      }
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; !stop.load(); ++i) {
      tellonce::v1::GetAttributesResponse response;
      if (GetAttributes(pki_, broker->address(), "tax", CitizenId(i % 50), {"person.name"},
                        "TAX_ASSESSMENT", &response)
              .ok()) {
        exchanges.fetch_add(1);
      }
    }
  });
  auto join = absl::MakeCleanup([&] {
    stop.store(true);
    for (std::thread& t : threads) t.join();
  });
  ASSERT_TRUE(WaitForGuard(broker->guard_file(), 1)) << "no checkpoint signed: " << broker->log();
  absl::SleepFor(absl::Seconds(2));
  // The newest checkpoint signed before the backup began (stored in the database before
  // the guard file is written).
  const std::string at_backup = dir_.path() + "/at-backup.checkpoint";
  fs::copy_file(broker->guard_file(), at_backup);
  const absl::Time backup_began = absl::Now();
  absl::StatusOr<std::string> backup = cluster->BaseBackup("under-load");
  const absl::Time backup_ended = absl::Now();
  ASSERT_TRUE(backup.ok()) << backup.status();
  absl::SleepFor(absl::Seconds(1));
  std::move(join).Invoke();
  EXPECT_GT(exchanges.load(), 0);
  std::vector<Acknowledged> before;
  size_t during = 0, after = 0;
  for (const Acknowledged& a : acknowledged) {
    if (a.at < backup_began) {
      before.push_back(a);
    } else if (a.at < backup_ended) {
      ++during;
    } else {
      ++after;
    }
  }
  std::printf(
      "pg_basebackup under load took %s: %zu consents acknowledged before it began, %zu "
      "during, %zu after; %d exchanges; checkpoint at backup: %llu events\n",
      absl::FormatDuration(backup_ended - backup_began).c_str(), before.size(), during, after,
      exchanges.load(), static_cast<unsigned long long>(CheckpointSize(at_backup)));
  ASSERT_GT(before.size(), 5u);
  EXPECT_GT(during, 0u) << "no write was acknowledged while the backup ran";
  EXPECT_EQ(broker->Terminate(), 0);

  // A new cluster from the backup (the old one keeps running: a restore elsewhere).
  const absl::Time restore_began = absl::Now();
  absl::StatusOr<std::unique_ptr<PgCluster>> restored = PgCluster::StartFromBackup(*backup);
  ASSERT_TRUE(restored.ok()) << restored.status();
  std::printf("restored cluster up in %s\n",
              absl::FormatDuration(absl::Now() - restore_began).c_str());
  const std::string ids = Sql(**restored, *db, "SELECT consent_id FROM consents");
  std::set<std::string> restored_ids;
  for (absl::string_view id : absl::StrSplit(ids, '\n', absl::SkipEmpty())) {
    restored_ids.insert(std::string(id));
  }
  int missing = 0, during_restored = 0;
  for (const Acknowledged& a : acknowledged) {
    if (a.at < backup_began) {
      if (!restored_ids.contains(a.consent_id)) ++missing;
    } else if (a.at < backup_ended && restored_ids.contains(a.consent_id)) {
      ++during_restored;
    }
  }
  EXPECT_EQ(missing, 0) << missing << " of " << before.size()
                        << " consents acknowledged before the backup began are not restored";
  std::printf(
      "restored: %zu of the %zu consents acknowledged before the backup, %d of the %zu "
      "acknowledged during it\n",
      before.size() - missing, before.size(), during_restored, during);

  // A broker over it, with a guard file of its own (a new host): it serves.
  std::unique_ptr<PgBroker> serving =
      MakeBroker("restored", (*restored)->ConnInfo(*db), dir_.path() + "/restored.checkpoint");
  ASSERT_TRUE(serving->Start().ok()) << serving->log();
  EXPECT_TRUE(absl::StrContains(serving->log(), "starting it from the database's latest"))
      << serving->log();
  for (size_t i = 0; i < before.size(); i += std::max<size_t>(1, before.size() / 40)) {
    grpc::Status status = GetConsent(*serving, before[i].citizen, before[i].consent_id);
    EXPECT_TRUE(status.ok()) << "consent " << before[i].consent_id
                             << " acknowledged before the backup: " << status.error_message();
  }
  tellonce::v1::GetAttributesResponse response;
  ASSERT_TRUE(GetAttributes(pki_, serving->address(), "tax", kCitizen, {"person.name"},
                            "TAX_ASSESSMENT", &response)
                  .ok());
  ASSERT_EQ(response.results_size(), 1);
  EXPECT_EQ(response.results(0).code(), tellonce::v1::RESULT_OK);

  // Its log verifies against the checkpoint signed when the backup began, and, grown
  // since, against a fresh one.
  ASSERT_TRUE(WaitSettled(**restored, *db)) << "the log was not numbered and hashed in time";
  const std::string fresh = dir_.path() + "/restored-fresh.checkpoint";
  FreshCheckpoint(*serving, fresh);
  const std::string exported = dir_.path() + "/restored.export";
  Export(*serving, exported);
  std::string output;
  EXPECT_EQ(AuditVerify(exported, at_backup, &output), 0) << output;
  EXPECT_TRUE(absl::StartsWith(output, "OK: ")) << output;
  EXPECT_EQ(AuditVerify(exported, fresh, &output), 0) << output;
  EXPECT_GT(CheckpointSize(fresh), CheckpointSize(at_backup));
  EXPECT_EQ(serving->Terminate(), 0);
  if (HasFailure()) std::cerr << "broker log:\n" << broker->log() << "\n";
}

TEST_F(PgBackupTest, OlderBaseBackupIsRefusedUntilTheOperatorAcceptsTheRollback) {
  std::unique_ptr<PgCluster> cluster = StartCluster(/*archive_wal=*/false);
  ASSERT_NE(cluster, nullptr);
  absl::StatusOr<std::string> db = cluster->CreateDatabase();
  ASSERT_TRUE(db.ok()) << db.status();
  std::unique_ptr<PgBroker> broker =
      MakeBroker("broker", cluster->ConnInfo(*db), dir_.path() + "/broker.checkpoint");
  ASSERT_TRUE(broker->Start().ok()) << broker->log();
  for (int i = 0; i < 5; ++i) Refused(*broker, i);
  ASSERT_TRUE(WaitForGuard(broker->guard_file(), 5)) << broker->log();
  absl::StatusOr<std::string> old_backup = cluster->BaseBackup("old");
  ASSERT_TRUE(old_backup.ok()) << old_backup.status();
  const uint64_t in_backup = EventCount(*cluster, *db);  // nothing else writes meanwhile

  // The broker goes on: more events, newer checkpoints that citizens and auditors may
  // now hold; the guard file follows them.
  for (int i = 5; i < 15; ++i) Refused(*broker, i);
  ASSERT_TRUE(WaitForGuard(broker->guard_file(), in_backup + 10)) << broker->log();
  EXPECT_EQ(broker->Terminate(), 0);
  const std::string newest = ReadFile(broker->guard_file());
  const uint64_t newest_size = CheckpointSize(broker->guard_file());
  ASSERT_GT(newest_size, in_backup);
  ASSERT_TRUE(cluster->Stop(/*immediate=*/false).ok());

  // The database is replaced by the older backup; the guard file on the broker's host
  // is not part of it and stays.
  absl::StatusOr<std::unique_ptr<PgCluster>> restored = PgCluster::StartFromBackup(*old_backup);
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(EventCount(**restored, *db), in_backup);
  broker->UseDatabase((*restored)->ConnInfo(*db));
  ExpectRollbackRefusedThenAccepted(*broker, **restored, *db, newest, newest_size, "old-backup");
}

TEST_F(PgBackupTest, AdminBackupPointsToPostgresToolsAndCopiesNothing) {
  std::unique_ptr<PgCluster> cluster = StartCluster(/*archive_wal=*/false);
  ASSERT_NE(cluster, nullptr);
  absl::StatusOr<std::string> db = cluster->CreateDatabase();
  ASSERT_TRUE(db.ok()) << db.status();
  std::unique_ptr<PgBroker> broker =
      MakeBroker("broker", cluster->ConnInfo(*db), dir_.path() + "/broker.checkpoint");
  ASSERT_TRUE(broker->Start().ok()) << broker->log();
  std::string output;
  EXPECT_EQ(Cli(*broker, "ops", {"admin", "backup"}, &output), 1) << output;
  EXPECT_TRUE(absl::StrContains(output, "FAILED_PRECONDITION")) << output;
  EXPECT_TRUE(absl::StrContains(output, "pg_basebackup")) << output;
  EXPECT_TRUE(absl::StrContains(output, "docs/backup-postgres.md")) << output;
  // Nothing was left behind as if it were a backup.
  const std::string backups = dir_.path() + "/broker/backups";
  size_t entries = 0;
  if (fs::exists(backups)) {
    for (const auto& entry : fs::directory_iterator(backups)) {
      ADD_FAILURE() << "left in the backup directory: " << entry.path();
      ++entries;
    }
  }
  EXPECT_EQ(entries, 0u);
  // And the role is still checked first.
  EXPECT_EQ(Cli(*broker, "tax", {"admin", "backup"}, &output), 1) << output;
  EXPECT_TRUE(absl::StrContains(output, "PERMISSION_DENIED")) << output;
  EXPECT_EQ(broker->Terminate(), 0);
}

TEST_F(PgBackupTest, PointInTimeRecoveryToBeforeNewerCheckpointsIsTheSameRollback) {
  std::unique_ptr<PgCluster> cluster = StartCluster(/*archive_wal=*/true);
  ASSERT_NE(cluster, nullptr);
  absl::StatusOr<std::string> db = cluster->CreateDatabase();
  ASSERT_TRUE(db.ok()) << db.status();
  std::unique_ptr<PgBroker> broker =
      MakeBroker("broker", cluster->ConnInfo(*db), dir_.path() + "/broker.checkpoint");
  ASSERT_TRUE(broker->Start().ok()) << broker->log();
  absl::StatusOr<std::string> base = cluster->BaseBackup("base");
  ASSERT_TRUE(base.ok()) << base.status();

  // After the base backup: a consent and events, then the point to recover to.
  absl::StatusOr<std::string> kept = Grant(*broker, 1);
  ASSERT_TRUE(kept.ok()) << kept.status();
  for (int i = 0; i < 5; ++i) Refused(*broker, i);
  ASSERT_TRUE(WaitForGuard(broker->guard_file(), 5)) << broker->log();
  const std::string target_lsn =
      Sql(*cluster, *db, "SELECT pg_create_restore_point('before-newer')");
  ASSERT_FALSE(target_lsn.empty());
  const uint64_t at_target = EventCount(*cluster, *db);
  const std::string target_time = Sql(*cluster, *db, "SELECT clock_timestamp()");
  // Then more, signed over.
  absl::StatusOr<std::string> lost = Grant(*broker, 2);
  ASSERT_TRUE(lost.ok()) << lost.status();
  for (int i = 5; i < 15; ++i) Refused(*broker, i);
  ASSERT_TRUE(WaitForGuard(broker->guard_file(), at_target + 10)) << broker->log();
  EXPECT_EQ(broker->Terminate(), 0);
  const std::string newest = ReadFile(broker->guard_file());
  const uint64_t newest_size = CheckpointSize(broker->guard_file());
  ASSERT_TRUE(cluster->ArchiveCurrentWal().ok());
  ASSERT_TRUE(cluster->Stop(/*immediate=*/false).ok());

  // Recovered to the restore point: the first consent is there, the second is not.
  const absl::Time recovery_began = absl::Now();
  absl::StatusOr<std::unique_ptr<PgCluster>> recovered = PgCluster::StartFromBackup(
      *base, {.archive_dir = cluster->archive_dir(), .name = "before-newer"});
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  std::printf("point-in-time recovery took %s\n",
              absl::FormatDuration(absl::Now() - recovery_began).c_str());
  EXPECT_EQ(Sql(**recovered, *db,
                absl::StrCat("SELECT count(*) FROM consents WHERE consent_id = '", *kept, "'")),
            "1");
  EXPECT_EQ(Sql(**recovered, *db,
                absl::StrCat("SELECT count(*) FROM consents WHERE consent_id = '", *lost, "'")),
            "0")
      << "recovery went past the target";
  EXPECT_EQ(EventCount(**recovered, *db), at_target);
  ASSERT_GT(newest_size, at_target);
  // The same point by its LSN (what pg_create_restore_point returned), and by the time
  // just after it.
  for (const PgCluster::RecoveryTarget& target :
       {PgCluster::RecoveryTarget{.archive_dir = cluster->archive_dir(), .lsn = target_lsn},
        PgCluster::RecoveryTarget{.archive_dir = cluster->archive_dir(), .time = target_time}}) {
    absl::StatusOr<std::unique_ptr<PgCluster>> other = PgCluster::StartFromBackup(*base, target);
    ASSERT_TRUE(other.ok()) << other.status();
    EXPECT_EQ(EventCount(**other, *db), at_target) << target.lsn << target.time;
    EXPECT_EQ(Sql(**other, *db,
                  absl::StrCat("SELECT count(*) FROM consents WHERE consent_id IN ('", *kept,
                               "', '", *lost, "')")),
              "1")
        << target.lsn << target.time;
  }
  broker->UseDatabase((*recovered)->ConnInfo(*db));
  ExpectRollbackRefusedThenAccepted(*broker, **recovered, *db, newest, newest_size, "pitr");
}

// Two replicas: only the sequencer signs, but every replica keeps the newest stored
// checkpoint it follows in its own file, so after a restore each one refuses with its
// own file. (Before followers recorded what they follow, a follower's file stayed at its
// start, and that follower started on the restored database and forked the log.)
TEST_F(PgBackupTest, AfterARestoreEveryReplicaRefusesWithItsOwnFile) {
  std::unique_ptr<PgCluster> cluster = StartCluster(/*archive_wal=*/false);
  ASSERT_NE(cluster, nullptr);
  absl::StatusOr<std::string> db = cluster->CreateDatabase();
  ASSERT_TRUE(db.ok()) << db.status();
  std::unique_ptr<PgBroker> first =
      MakeBroker("first", cluster->ConnInfo(*db), dir_.path() + "/first.checkpoint");
  ASSERT_TRUE(first->Start().ok()) << first->log();
  for (int i = 0; i < 5; ++i) Refused(*first, i);
  ASSERT_TRUE(WaitForGuard(first->guard_file(), 5)) << first->log();
  std::unique_ptr<PgBroker> second =
      MakeBroker("second", cluster->ConnInfo(*db), dir_.path() + "/second.checkpoint");
  ASSERT_TRUE(second->Start().ok()) << second->log();
  ASSERT_EQ(Sql(*cluster, *db, "SELECT split_part(owner, ':', 1) FROM sequencer"), "first");
  absl::StatusOr<std::string> old_backup = cluster->BaseBackup("old");
  ASSERT_TRUE(old_backup.ok()) << old_backup.status();
  const uint64_t in_backup = EventCount(*cluster, *db);
  for (int i = 5; i < 15; ++i) Refused(*(i % 2 ? first : second), i);
  ASSERT_TRUE(WaitForGuard(first->guard_file(), in_backup + 10)) << first->log();
  const uint64_t newest_size = CheckpointSize(first->guard_file());
  // The follower records it within a polling interval (200 ms).
  EXPECT_TRUE(WaitForGuard(second->guard_file(), newest_size))
      << "the follower's file did not follow the log: it holds "
      << CheckpointSize(second->guard_file()) << " events, the sequencer's " << newest_size;
  EXPECT_EQ(second->Terminate(), 0);
  EXPECT_EQ(first->Terminate(), 0);
  ASSERT_EQ(CheckpointSize(first->guard_file()), newest_size);
  const std::string newest = ReadFile(first->guard_file());
  EXPECT_EQ(ReadFile(second->guard_file()), newest);
  ASSERT_TRUE(cluster->Stop(/*immediate=*/false).ok());

  absl::StatusOr<std::unique_ptr<PgCluster>> restored = PgCluster::StartFromBackup(*old_backup);
  ASSERT_TRUE(restored.ok()) << restored.status();
  // The follower first: it would otherwise take the sequencer role and sign.
  for (PgBroker* replica : {second.get(), first.get()}) {
    replica->UseDatabase((*restored)->ConnInfo(*db));
    ASSERT_FALSE(replica->Start().ok()) << "a replica started on a rolled-back database";
    EXPECT_TRUE(absl::StrContains(replica->log(), "signed log rollback")) << replica->log();
    EXPECT_TRUE(absl::StrContains(replica->log(), absl::StrCat("size ", newest_size, ", root")))
        << replica->log();
  }
  // Accepted once, at one replica; its new file given to the other, which then starts
  // on the log that records the rollback.
  ExpectRollbackRefusedThenAccepted(*first, **restored, *db, newest, newest_size, "replicas");
  fs::copy_file(first->guard_file(), second->guard_file(), fs::copy_options::overwrite_existing);
  ASSERT_TRUE(first->Start().ok()) << first->log();
  ASSERT_TRUE(second->Start().ok()) << second->log();
  tellonce::v1::GetAttributesResponse response;
  ASSERT_TRUE(GetAttributes(pki_, second->address(), "tax", kCitizen, {"person.name"},
                            "TAX_ASSESSMENT", &response)
                  .ok());
  EXPECT_EQ(response.results(0).code(), tellonce::v1::RESULT_OK);
  EXPECT_EQ(second->Terminate(), 0);
  EXPECT_EQ(first->Terminate(), 0);
}

}  // namespace
}  // namespace tellonce::testing
