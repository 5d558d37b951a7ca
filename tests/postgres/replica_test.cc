// Several tellonce-broker processes ("replicas") over one PostgreSQL database: real
// broker processes, the sample registry and bank connectors, mutual TLS on 127.0.0.1,
// a throwaway PostgreSQL cluster (tests/testing/pg_cluster.h). Any replica serves any
// call; one log; failures of a replica and of the database.

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "certs/merkle.h"
#include "gtest/gtest.h"
#include "tellonce/v1/consent.grpc.pb.h"
#include "tellonce/v1/notification.grpc.pb.h"
#include "tellonce/v1/transparency.grpc.pb.h"
#include "tests/integration/harness.h"
#include "tests/testing/pg_cluster.h"

namespace tellonce::testing {
namespace {

using tellonce::v1::GetAttributesResponse;

// Citizens in both sample record files.
constexpr char kCitizen[] = "37605030299";
constexpr char kOtherCitizen[] = "49403136526";
// The sequencer's lease in these tests: a dead one is replaced within about this long.
constexpr int kLeaseMs = 1000;

// A broker whose state is in PostgreSQL (no data_dir), named `name` among the replicas.
class ReplicaProcess : public ServerProcess {
 public:
  ReplicaProcess(const std::string& dir, const Pki& pki, const std::string& directory_file,
                 const std::string& conninfo, const std::string& name,
                 const std::string& extra = "")
      : ServerProcess(BrokerBinary(), Prepare(dir) + "/broker.textproto", dir + "/broker.log",
                      dir + "/port"),
        name_(name) {
    admin_port_file_ = dir + "/admin-port";
    std::ofstream(config_path()) << "listen_address: \"127.0.0.1:0\"\n"
                                 << "admin { listen_address: \"127.0.0.1:0\" }\n"
                                 << "tls {\n"
                                 << "  ca_file: \"" << pki.ca() << "\"\n"
                                 << "  cert_file: \"" << pki.broker_cert() << "\"\n"
                                 << "  key_file: \"" << pki.broker_key() << "\"\n"
                                 << "  crl_dir: \"" << pki.dir << "/crl\"\n"
                                 << "}\n"
                                 << "signing {\n"
                                 << "  key_file: \"" << pki.signing_key() << "\"\n"
                                 << "  key_id: \"" << pki.signing_key_id() << "\"\n"
                                 << "}\n"
                                 << "storage { postgres {\n"
                                 << "  conninfo: \"" << conninfo << "\"\n"
                                 << "  replica_name: \"" << name << "\"\n"
                                 << "  pool_size: 4\n"
                                 << "  sequencer_lease_ms: " << kLeaseMs << "\n"
                                 << "  claim_lease_ms: 2000\n"
                                 << "} }\n"
                                 << "directory_file: \"" << directory_file << "\"\n"
                                 << "checkpoint_interval_seconds: 1\n"
                                 << "fresh_checkpoint_interval_ms: 200\n"
                                 << "shutdown_grace_seconds: 2\n"
                                 << extra;
  }
  const std::string& name() const { return name_; }

 private:
  static std::string Prepare(const std::string& dir) {
    std::filesystem::create_directories(dir);
    return dir;
  }
  std::string name_;
};

class ReplicaTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    absl::StatusOr<std::unique_ptr<PgCluster>> cluster = PgCluster::Start({});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = cluster->release();
    absl::StatusOr<Pki> pki = MakePki(dir_->path() + "/pki", SampleDirectoryFile());
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = new Pki(*pki);
    absl::StatusOr<SampleConnectors> connectors = StartSampleConnectors(dir_->path(), *pki_);
    ASSERT_TRUE(connectors.ok()) << connectors.status();
    registry_ = connectors->registry.release();
    bank_ = connectors->bank.release();
    directory_ = new std::string(connectors->directory_file);
  }
  static void TearDownTestSuite() {
    delete bank_;
    delete registry_;
    delete directory_;
    delete pki_;
    delete cluster_;
    delete dir_;
  }

  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    if (!cluster_->running()) {
      ASSERT_TRUE(cluster_->Restart().ok());
    }
    absl::StatusOr<std::string> db = cluster_->CreateDatabase();
    ASSERT_TRUE(db.ok()) << db.status();
    dbname_ = *db;
  }
  void TearDown() override {
    if (HasFailure()) {
      for (auto& r : replicas_) {
        if (r != nullptr) std::cerr << "---- " << r->name() << " log:\n" << r->log() << "\n";
      }
    }
    replicas_.clear();
  }

  void StartReplicas(int n) {
    for (int i = 0; i < n; ++i) {
      replicas_.push_back(std::make_unique<ReplicaProcess>(
          work_.path() + "/r" + std::to_string(i), *pki_, *directory_, cluster_->ConnInfo(dbname_),
          "r" + std::to_string(i)));
      absl::Status started = replicas_.back()->Start();
      ASSERT_TRUE(started.ok()) << started << replicas_.back()->log();
    }
  }

  std::string Sql(const std::string& sql) {
    absl::StatusOr<std::string> out = cluster_->Psql(dbname_, sql);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? std::string(absl::StripTrailingAsciiWhitespace(*out)) : "";
  }
  uint64_t SqlNumber(const std::string& sql) {
    uint64_t n = 0;
    EXPECT_TRUE(absl::SimpleAtoi(Sql(sql), &n)) << sql;
    return n;
  }

  // The replica holding the sequencer role (by the name in the sequencer row), or -1.
  int Sequencer() {
    const std::string owner = Sql("SELECT coalesce(owner, '') FROM sequencer");
    const std::string name(owner.substr(0, owner.find(':')));
    for (size_t i = 0; i < replicas_.size(); ++i) {
      if (replicas_[i]->name() == name) return static_cast<int>(i);
    }
    return -1;
  }
  int WaitForSequencer(absl::Duration timeout, int other_than = -1) {
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      const int s = Sequencer();
      if (s >= 0 && s != other_than) return s;
      if (absl::Now() > deadline) return -1;
      absl::SleepFor(absl::Milliseconds(20));
    }
  }

  // Until every committed event is numbered and hashed into the stored tree.
  bool WaitSettled(absl::Duration timeout = absl::Seconds(20)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (Sql("SELECT (SELECT count(*) FROM access_queue) = 0 AND (SELECT tree_size FROM "
              "sequencer) = (SELECT value FROM counters WHERE name = 'access_events')") == "t") {
        return true;
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }

  grpc::Status Fetch(int replica, const std::string& consumer, const std::string& citizen,
                     const std::vector<std::string>& attributes, const std::string& purpose,
                     GetAttributesResponse* response) {
    return GetAttributes(*pki_, replicas_[replica]->address(), consumer, citizen, attributes,
                         purpose, response, absl::Seconds(5));
  }

  grpc::Status Publish(int replica, const std::string& event_id, const std::string& citizen,
                       bool* replayed, absl::Time occurred = absl::FromUnixSeconds(1764500000)) {
    auto stub = tellonce::v1::NotificationService::NewStub(
        AgencyChannel(*pki_, "registry", replicas_[replica]->address()));
    tellonce::v1::PublishChangeRequest request;
    request.set_event_id(event_id);
    request.set_citizen_id(citizen);
    request.set_event_type("ADDRESS_CHANGED");
    request.add_attributes("person.address");
    request.mutable_occurred_at()->set_seconds(absl::ToUnixSeconds(occurred));
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    tellonce::v1::PublishChangeResponse response;
    grpc::Status status = stub->PublishChange(&context, request, &response);
    if (replayed != nullptr) *replayed = response.replayed();
    return status;
  }

  // One GrantConsent request sent as is (a true retry sends the same bytes).
  absl::StatusOr<std::string> Grant(int replica, const tellonce::v1::GrantConsentRequest& r) {
    auto stub = tellonce::v1::ConsentService::NewStub(
        AgencyChannel(*pki_, "portal", replicas_[replica]->address()));
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    AddCitizenAssertion(&context, *pki_, r.citizen_id());
    tellonce::v1::GrantConsentResponse response;
    grpc::Status status = stub->GrantConsent(&context, r, &response);
    if (!status.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                          status.error_message());
    }
    return response.consent().consent_id();
  }

  std::unique_ptr<tellonce::v1::TransparencyService::Stub> Transparency(int replica,
                                                                        const std::string& agency) {
    return tellonce::v1::TransparencyService::NewStub(
        AgencyChannel(*pki_, agency, replicas_[replica]->address()));
  }

  // Every stored checkpoint (ExportCheckpoints through `replica`).
  std::vector<tellonce::v1::SignedCheckpoint> Checkpoints(int replica) {
    std::vector<tellonce::v1::SignedCheckpoint> all;
    auto stub = Transparency(replica, "ops");
    tellonce::v1::ExportCheckpointsRequest request;
    for (;;) {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
      tellonce::v1::ExportCheckpointsResponse response;
      grpc::Status status = stub->ExportCheckpoints(&context, request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) return all;
      all.insert(all.end(), response.checkpoints().begin(), response.checkpoints().end());
      if (!response.more()) return all;
      request.set_start_size(response.next_start_size());
    }
  }

  // Every pair of stored checkpoints passes a consistency proof served by a replica
  // (rotating), and the checkpoints were stored under at least `min_epochs` sequencer
  // epochs (so some pairs were signed by different replicas).
  void ExpectConsistentCheckpoints(const std::vector<int>& serving, size_t min_epochs) {
    std::vector<tellonce::v1::SignedCheckpoint> checkpoints = Checkpoints(serving[0]);
    ASSERT_GE(checkpoints.size(), 2u);
    std::vector<tellonce::v1::Checkpoint> bodies;
    for (const auto& c : checkpoints) {
      tellonce::v1::Checkpoint body;
      ASSERT_TRUE(body.ParseFromString(c.body()));
      bodies.push_back(body);
    }
    const uint64_t epochs = SqlNumber("SELECT count(DISTINCT epoch) FROM checkpoints");
    EXPECT_GE(epochs, min_epochs) << "checkpoints were not signed by several replicas";
    int pairs = 0;
    for (size_t a = 0; a < bodies.size(); ++a) {
      for (size_t b = a + 1; b < bodies.size(); ++b) {
        // All pairs while few; then every pair with the first and the last.
        if (bodies.size() > 20 && a != 0 && b != bodies.size() - 1) continue;
        auto stub = Transparency(serving[pairs % serving.size()], "tax");
        tellonce::v1::GetConsistencyProofRequest request;
        request.set_old_size(bodies[a].tree_size());
        request.set_new_size(bodies[b].tree_size());
        tellonce::v1::GetConsistencyProofResponse response;
        grpc::Status status;
        // A follower serves proofs up to the tree it has followed, which trails a
        // checkpoint another replica just signed by up to one follow interval (200 ms).
        const absl::Time give_up = absl::Now() + absl::Seconds(5);
        do {
          grpc::ClientContext context;
          context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
          response.Clear();
          status = stub->GetConsistencyProof(&context, request, &response);
          if (status.ok() ||
              status.error_message().find("larger than the hashed tree") == std::string::npos) {
            break;
          }
          absl::SleepFor(absl::Milliseconds(50));
        } while (absl::Now() < give_up);
        ASSERT_TRUE(status.ok()) << status.error_message();
        std::vector<certs::Hash> proof;
        for (const std::string& h : response.proof()) proof.push_back(*certs::HashFromBytes(h));
        absl::StatusOr<certs::Hash> old_root = certs::HashFromBytes(bodies[a].root_hash());
        absl::StatusOr<certs::Hash> new_root = certs::HashFromBytes(bodies[b].root_hash());
        ASSERT_TRUE(old_root.ok() && new_root.ok());
        absl::Status verified = certs::VerifyConsistency(
            bodies[a].tree_size(), bodies[b].tree_size(), *old_root, *new_root, proof);
        EXPECT_TRUE(verified.ok())
            << bodies[a].tree_size() << " -> " << bodies[b].tree_size() << ": " << verified;
        ++pairs;
      }
    }
    EXPECT_GT(pairs, 0);
  }

  // The log is gapless (indexes 0..n-1, once each), and holds every acknowledged id.
  void ExpectGaplessLogWith(const std::set<std::string>& acknowledged) {
    ASSERT_TRUE(WaitSettled()) << "the log was not numbered and hashed in time";
    const std::string shape =
        Sql("SELECT count(*) = count(DISTINCT idx) AND min(idx) = 0 AND max(idx) = count(*) - 1 "
            "FROM access_events");
    EXPECT_EQ(shape, "t") << "duplicate or missing log index";
    absl::StatusOr<std::string> ids =
        cluster_->Psql(dbname_, "SELECT DISTINCT exchange_id FROM access_events");
    ASSERT_TRUE(ids.ok());
    std::set<std::string> logged;
    for (absl::string_view line : absl::StrSplit(*ids, '\n', absl::SkipEmpty())) {
      logged.insert(std::string(line));
    }
    int missing = 0;
    for (const std::string& id : acknowledged) {
      if (!logged.contains(id)) ++missing;
    }
    EXPECT_EQ(missing, 0) << missing << " of " << acknowledged.size()
                          << " acknowledged exchanges or publishes are not in the log";
  }

  // Runs exchanges (and, when `grants`, grants) over the live replicas from `threads`
  // threads until `stop`; acknowledged exchange ids and consent ids are recorded.
  struct Load {
    // Stops and joins the threads when a failed assertion leaves the test early.
    ~Load() {
      stop = true;
      for (std::thread& t : threads) t.join();
    }
    std::atomic<bool> stop{false};
    std::mutex mu;
    std::set<std::string> exchanges;
    std::set<std::string> consents;
    std::atomic<int> ok{0}, failed{0};
    std::vector<std::thread> threads;
    std::map<int, int> codes;  // gRPC code -> calls (failures)
  };
  void StartLoad(Load& load, int threads, bool grants, const std::vector<bool>* alive = nullptr) {
    for (int t = 0; t < threads; ++t) {
      load.threads.emplace_back([this, &load, t, grants, alive] {
        for (int i = 0; !load.stop.load(); ++i) {
          int replica = (t + i) % static_cast<int>(replicas_.size());
          if (alive != nullptr) {
            while (!(*alive)[replica]) replica = (replica + 1) % static_cast<int>(replicas_.size());
          }
          if (grants && i % 4 == 3) {
            absl::StatusOr<std::string> id =
                GrantConsent(*pki_, replicas_[replica]->address(),
                             {.citizen = CitizenId(1000 + t * 100000 + i),
                              .consumer = "tax",
                              .attributes = {"person.name"},
                              .purpose = "TAX_DEDUCTION_CHECK",
                              .mode = tellonce::v1::UNTIL_EXPIRY,
                              .lifetime = absl::Hours(1),
                              .request_id = ""});
            std::lock_guard<std::mutex> lock(load.mu);
            if (id.ok()) {
              load.consents.insert(*id);
              ++load.ok;
            } else {
              ++load.failed;
              ++load.codes[static_cast<int>(id.status().code())];
            }
            continue;
          }
          GetAttributesResponse response;
          grpc::Status status = Fetch(replica, "tax", i % 2 ? kCitizen : kOtherCitizen,
                                      {"person.name"}, "TAX_ASSESSMENT", &response);
          std::lock_guard<std::mutex> lock(load.mu);
          if (status.ok()) {
            load.exchanges.insert(response.exchange_id());
            ++load.ok;
          } else {
            ++load.failed;
            ++load.codes[static_cast<int>(status.error_code())];
          }
        }
      });
    }
  }
  void StopLoad(Load& load) {
    load.stop = true;
    for (std::thread& t : load.threads) t.join();
    load.threads.clear();
  }

  static TempDir* dir_;
  static PgCluster* cluster_;
  static Pki* pki_;
  static ConnectorProcess* registry_;
  static ConnectorProcess* bank_;
  static std::string* directory_;

  TempDir work_;
  std::string dbname_;
  std::vector<std::unique_ptr<ReplicaProcess>> replicas_;
};

TempDir* ReplicaTest::dir_ = nullptr;
PgCluster* ReplicaTest::cluster_ = nullptr;
Pki* ReplicaTest::pki_ = nullptr;
ConnectorProcess* ReplicaTest::registry_ = nullptr;
ConnectorProcess* ReplicaTest::bank_ = nullptr;
std::string* ReplicaTest::directory_ = nullptr;

TEST_F(ReplicaTest, ThreeReplicasServeEveryCallAndKeepOneConsistentLog) {
  StartReplicas(3);
  std::mutex mu;
  std::set<std::string> acknowledged;  // exchange ids and published event ids
  std::atomic<int> failures{0};
  std::vector<std::string> errors;  // the first few failures, for the test's output
  auto failed = [&](const std::string& what) {
    ++failures;
    std::lock_guard<std::mutex> lock(mu);
    if (errors.size() < 10) errors.push_back(what);
  };
  std::atomic<bool> stop{false};
  std::vector<bool> alive(3, true);
  std::mutex alive_mu;
  auto live = [&](int r) {
    std::lock_guard<std::mutex> lock(alive_mu);
    for (int k = 0; k < 3 && !alive[r]; ++k) r = (r + 1) % 3;
    return r;
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        const int r = live((t + i) % 3);
        const int next = live((r + 1) % 3);
        if (i % 5 == 3) {
          // A grant, retried at another replica with the same request id.
          tellonce::v1::GrantConsentRequest request;
          request.set_request_id(absl::StrCat("grant-", t, "-", i));
          request.set_citizen_id(CitizenId(t * 10000 + i));
          request.set_consumer("tax");
          request.add_attributes("person.name");
          request.set_purpose("TAX_DEDUCTION_CHECK");
          request.set_mode(tellonce::v1::UNTIL_EXPIRY);
          request.mutable_expires_at()->set_seconds(absl::ToUnixSeconds(absl::Now()) + 3600);
          absl::StatusOr<std::string> first = Grant(r, request);
          absl::StatusOr<std::string> retry = Grant(next, request);
          if (!first.ok() || !retry.ok()) {
            failed(absl::StrCat("grant: ", first.status().ToString(), " / ",
                                retry.status().ToString()));
            continue;
          }
          EXPECT_EQ(*first, *retry) << "a retried grant at another replica made a new consent";
        } else if (i % 5 == 4) {
          // A publish, retried at another replica.
          const std::string event_id = absl::StrCat("ev-", t, "-", i);
          bool replayed_first = true, replayed_retry = false;
          grpc::Status first = Publish(r, event_id, kCitizen, &replayed_first);
          grpc::Status retry = Publish(next, event_id, kCitizen, &replayed_retry);
          if (!first.ok() || !retry.ok()) {
            failed(absl::StrCat("publish: ", first.error_message(), " / ", retry.error_message()));
            continue;
          }
          EXPECT_FALSE(replayed_first);
          EXPECT_TRUE(replayed_retry) << "a retried publish at another replica was not replayed";
          std::lock_guard<std::mutex> lock(mu);
          acknowledged.insert(event_id);
        } else {
          GetAttributesResponse response;
          grpc::Status status = Fetch(r, "tax", i % 2 ? kCitizen : kOtherCitizen, {"person.name"},
                                      "TAX_ASSESSMENT", &response);
          if (!status.ok()) {
            failed(absl::StrCat("exchange at r", r, ": ", status.error_message()));
            continue;
          }
          EXPECT_EQ(response.results(0).code(), tellonce::v1::RESULT_OK);
          std::lock_guard<std::mutex> lock(mu);
          acknowledged.insert(response.exchange_id());
        }
      }
    });
  }
  // Fresh checkpoints asked at every replica meanwhile.
  std::thread checkpoints([&] {
    for (int i = 0; !stop.load(); ++i) {
      auto stub = Transparency(live(i % 3), "tax");
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
      tellonce::v1::GetCheckpointRequest request;
      request.set_fresh(true);
      tellonce::v1::GetCheckpointResponse response;
      (void)stub->GetCheckpoint(&context, request, &response);
      absl::SleepFor(absl::Milliseconds(150));
    }
  });
  // Also when an assertion below leaves early.
  auto join = absl::MakeCleanup([&] {
    stop = true;
    for (std::thread& t : threads) {
      if (t.joinable()) t.join();
    }
    if (checkpoints.joinable()) checkpoints.join();
  });

  absl::SleepFor(absl::Seconds(3));
  // The sequencer steps down (a clean stop): another takes over at once, so the
  // checkpoints after this are signed by another replica.
  const int first_sequencer = WaitForSequencer(absl::Seconds(5));
  ASSERT_GE(first_sequencer, 0);
  {
    std::lock_guard<std::mutex> lock(alive_mu);
    alive[first_sequencer] = false;
  }
  absl::SleepFor(absl::Milliseconds(200));  // let calls to it finish
  EXPECT_EQ(replicas_[first_sequencer]->Terminate(), 0);
  const int second_sequencer = WaitForSequencer(absl::Seconds(5), first_sequencer);
  EXPECT_GE(second_sequencer, 0) << "nobody took over the sequencer role";
  absl::SleepFor(absl::Seconds(3));
  std::move(join).Invoke();

  // Calls in flight at the replica that stopped may fail; no others.
  EXPECT_LT(failures.load(), 20) << "calls failed at live replicas, e.g. "
                                 << absl::StrJoin(errors, "; ");
  EXPECT_GT(acknowledged.size(), 50u);
  ExpectGaplessLogWith(acknowledged);
  EXPECT_EQ(Sql("SELECT count(*) = count(DISTINCT (portal, request_id)) FROM consents"), "t");

  std::vector<int> serving;
  for (int r = 0; r < 3; ++r) {
    if (r != first_sequencer) serving.push_back(r);
  }
  // A checkpoint of the settled tree, then every pair of checkpoints.
  std::string out;
  const std::string checkpoint_file = work_.path() + "/fresh.checkpoint";
  const std::string export_file = work_.path() + "/log.export";
  auto cli = [&](const std::string& agency, int replica, std::vector<std::string> args) {
    std::vector<std::string> argv = {CliBinary()};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--broker", replicas_[replica]->address(), "--ca", pki_->ca(),
                             "--cert", pki_->cert(agency), "--key", pki_->key(agency)});
    return RunCommand(argv, &out);
  };
  ASSERT_EQ(cli("tax", serving[0],
                {"audit", "checkpoint", "--fresh", "--out", checkpoint_file, "--broker-cert",
                 pki_->broker_cert(), "--signing-keys", pki_->signing_keys()}),
            0)
      << out;
  ExpectConsistentCheckpoints(serving, 2);
  // The export through one replica verifies offline against a checkpoint from another.
  ASSERT_EQ(cli("ops", serving[1], {"audit", "export", "--out", export_file}), 0) << out;
  ASSERT_EQ(RunCommand({CliBinary(), "audit", "verify", "--log", export_file, "--checkpoint",
                        checkpoint_file, "--broker-cert", pki_->broker_cert(), "--signing-keys",
                        pki_->signing_keys()},
                       &out),
            0)
      << out;
  EXPECT_TRUE(absl::StartsWith(out, "OK: ")) << out;
}

TEST_F(ReplicaTest, AOneTimeConsentRacedOverThreeReplicasAllowsExactlyOneExchange) {
  StartReplicas(3);
  for (int round = 0; round < 3; ++round) {
    const std::string citizen = round % 2 ? kCitizen : kOtherCitizen;
    absl::StatusOr<std::string> consent = GrantConsent(*pki_, replicas_[round % 3]->address(),
                                                       {.citizen = citizen,
                                                        .consumer = "tax",
                                                        .attributes = {"bank.interest_paid"},
                                                        .purpose = "TAX_DEDUCTION_CHECK",
                                                        .mode = tellonce::v1::ONE_TIME,
                                                        .lifetime = absl::Hours(1),
                                                        .request_id = ""});
    ASSERT_TRUE(consent.ok()) << consent.status();
    std::atomic<int> allowed{0}, refused{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 20; ++i) {
      threads.emplace_back([&, i] {
        GetAttributesResponse response;
        grpc::Status status =
            Fetch(i % 3, "tax", citizen, {"bank.interest_paid"}, "TAX_DEDUCTION_CHECK", &response);
        ASSERT_TRUE(status.ok()) << status.error_message();
        if (response.results(0).code() == tellonce::v1::RESULT_OK) {
          ++allowed;
        } else {
          ++refused;
        }
      });
    }
    for (std::thread& t : threads) t.join();
    EXPECT_EQ(allowed.load(), 1) << "round " << round;
    EXPECT_EQ(refused.load(), 19);
    EXPECT_EQ(Sql(absl::StrCat("SELECT status FROM consents WHERE consent_id = '", *consent, "'")),
              "USED");
    EXPECT_EQ(Sql(absl::StrCat("SELECT count(*) FROM consent_events WHERE kind = 'USED' AND "
                               "consent_id = '",
                               *consent, "'")),
              "1");
  }
}

TEST_F(ReplicaTest, ARevokeAtOneReplicaDeniesTheNextExchangeAtAnother) {
  StartReplicas(2);
  for (int round = 0; round < 10; ++round) {
    const std::string citizen = round % 2 ? kCitizen : kOtherCitizen;
    absl::StatusOr<std::string> consent = GrantConsent(*pki_, replicas_[0]->address(),
                                                       {.citizen = citizen,
                                                        .consumer = "tax",
                                                        .attributes = {"bank.interest_paid"},
                                                        .purpose = "TAX_DEDUCTION_CHECK",
                                                        .mode = tellonce::v1::UNTIL_EXPIRY,
                                                        .lifetime = absl::Hours(1),
                                                        .request_id = ""});
    ASSERT_TRUE(consent.ok()) << consent.status();
    GetAttributesResponse before;
    ASSERT_TRUE(
        Fetch(1, "tax", citizen, {"bank.interest_paid"}, "TAX_DEDUCTION_CHECK", &before).ok());
    EXPECT_EQ(before.results(0).code(), tellonce::v1::RESULT_OK);
    grpc::Status revoked = RevokeConsent(*pki_, replicas_[0]->address(), citizen, *consent);
    ASSERT_TRUE(revoked.ok()) << revoked.error_message();
    GetAttributesResponse after;
    ASSERT_TRUE(
        Fetch(1, "tax", citizen, {"bank.interest_paid"}, "TAX_DEDUCTION_CHECK", &after).ok());
    EXPECT_NE(after.results(0).code(), tellonce::v1::RESULT_OK)
        << "replica B allowed an exchange on a consent replica A had revoked";
  }
}

TEST_F(ReplicaTest, KillingTheSequencerUnderLoadLosesNothingAcknowledged) {
  StartReplicas(3);
  std::vector<bool> alive(3, true);
  const int sequencer = WaitForSequencer(absl::Seconds(5));
  ASSERT_GE(sequencer, 0);
  Load load;
  StartLoad(load, 4, /*grants=*/true, &alive);
  absl::SleepFor(absl::Milliseconds(1500));
  alive[sequencer] = false;  // the threads move off it (calls in flight to it fail)
  replicas_[sequencer]->Kill9();
  const absl::Time killed = absl::Now();
  const int next = WaitForSequencer(absl::Seconds(10), sequencer);
  const absl::Duration takeover = absl::Now() - killed;
  ASSERT_GE(next, 0) << "nobody took over";
  EXPECT_LT(takeover, absl::Milliseconds(kLeaseMs) + absl::Seconds(2)) << takeover;
  std::cerr << "sequencer " << replicas_[sequencer]->name() << " killed; "
            << replicas_[next]->name() << " took over after " << takeover << "\n";
  absl::SleepFor(absl::Milliseconds(1500));
  StopLoad(load);
  EXPECT_GT(load.ok.load(), 50);
  ExpectGaplessLogWith(load.exchanges);
  for (const std::string& id : load.consents) {
    EXPECT_EQ(Sql(absl::StrCat("SELECT count(*) FROM consents WHERE consent_id = '", id, "'")), "1")
        << "acknowledged consent " << id << " is missing";
  }
  // The new sequencer hashed everything, including what the dead one had numbered.
  EXPECT_EQ(SqlNumber("SELECT tree_size FROM sequencer"),
            SqlNumber("SELECT count(*) FROM access_events"));
}

TEST_F(ReplicaTest, APausedSequencerThatWakesUpLateCannotWriteTheTree) {
  StartReplicas(3);
  // Traffic, so the sequencer is busy numbering and hashing.
  Load warmup;
  StartLoad(warmup, 2, /*grants=*/false);
  absl::SleepFor(absl::Milliseconds(800));
  const int paused = WaitForSequencer(absl::Seconds(5));
  ASSERT_GE(paused, 0);
  const uint64_t old_epoch = SqlNumber("SELECT epoch FROM sequencer");
  StopLoad(warmup);
  std::vector<bool> alive(3, true);
  alive[paused] = false;
  Load load;
  StartLoad(load, 2, /*grants=*/false, &alive);
  replicas_[paused]->Pause();
  const int next = WaitForSequencer(absl::Seconds(10), paused);
  ASSERT_GE(next, 0) << "nobody took over from the paused sequencer";
  const std::string taken_over_at = Sql("SELECT now()");
  absl::SleepFor(absl::Seconds(1));  // the new sequencer extends the tree and signs
  replicas_[paused]->Resume();
  absl::SleepFor(absl::Seconds(2));  // the woken one tries whatever it was doing
  StopLoad(load);

  EXPECT_EQ(Sequencer(), next) << "the woken replica took the role back";
  EXPECT_EQ(Sql(absl::StrCat("SELECT count(*) FROM checkpoints WHERE epoch = ", old_epoch,
                             " AND signed_at > '", taken_over_at, "'")),
            "0")
      << "a checkpoint of the old epoch was stored after the takeover";
  const std::string log = replicas_[paused]->log();
  std::cerr << "the woken replica "
            << (absl::StrContains(log, "is stale") ? "had a late write refused"
                                                   : "found its role lost before writing")
            << "\n";
  EXPECT_TRUE(absl::StrContains(log, "lost the sequencer role") ||
              absl::StrContains(log, "is stale"))
      << "the woken replica did not notice it had lost the role";
  ExpectGaplessLogWith(load.exchanges);
  ExpectConsistentCheckpoints({paused, next}, 2);
  // The woken replica serves again, and sees the log the other one extended.
  GetAttributesResponse response;
  ASSERT_TRUE(Fetch(paused, "tax", kCitizen, {"person.name"}, "TAX_ASSESSMENT", &response).ok());
}

TEST_F(ReplicaTest, DatabaseDownUnderLoadFailsFastAndEveryAcknowledgedWriteSurvives) {
  StartReplicas(2);
  Load load;
  StartLoad(load, 4, /*grants=*/true);
  absl::SleepFor(absl::Seconds(1));
  ASSERT_TRUE(cluster_->Stop(/*immediate=*/true).ok());
  const absl::Time stopped = absl::Now();
  absl::SleepFor(absl::Milliseconds(300));

  // Meanwhile: calls fail fast with UNAVAILABLE, the brokers stay up and say not ready.
  for (int r = 0; r < 2; ++r) {
    const absl::Time start = absl::Now();
    GetAttributesResponse response;
    grpc::Status status = Fetch(r, "tax", kCitizen, {"person.name"}, "TAX_ASSESSMENT", &response);
    EXPECT_EQ(status.error_code(), grpc::UNAVAILABLE) << status.error_message();
    EXPECT_LT(absl::Now() - start, absl::Seconds(1)) << "not fast";
    absl::StatusOr<std::string> granted = GrantConsent(*pki_, replicas_[r]->address(),
                                                       {.citizen = CitizenId(999999),
                                                        .consumer = "tax",
                                                        .attributes = {"person.name"},
                                                        .purpose = "TAX_DEDUCTION_CHECK",
                                                        .mode = tellonce::v1::UNTIL_EXPIRY,
                                                        .lifetime = absl::Hours(1),
                                                        .request_id = ""});
    EXPECT_FALSE(granted.ok());
    std::string body;
    EXPECT_EQ(HttpGet(replicas_[r]->admin_port(), "/readyz", &body), 503) << body;
    EXPECT_EQ(HttpGet(replicas_[r]->admin_port(), "/healthz"), 200) << "the broker must stay up";
  }
  absl::SleepFor(absl::Seconds(1));
  ASSERT_TRUE(cluster_->Restart().ok());
  std::cerr << "database down for " << absl::Now() - stopped << "\n";

  // Both recover by themselves.
  for (int r = 0; r < 2; ++r) {
    const absl::Time deadline = absl::Now() + absl::Seconds(15);
    grpc::Status status;
    do {
      GetAttributesResponse response;
      status = Fetch(r, "tax", kCitizen, {"person.name"}, "TAX_ASSESSMENT", &response);
      if (!status.ok()) absl::SleepFor(absl::Milliseconds(100));
    } while (!status.ok() && absl::Now() < deadline);
    EXPECT_TRUE(status.ok()) << replicas_[r]->name()
                             << " did not recover: " << status.error_message();
    std::string body;
    const absl::Time ready_deadline = absl::Now() + absl::Seconds(10);
    while (HttpGet(replicas_[r]->admin_port(), "/readyz", &body) != 200 &&
           absl::Now() < ready_deadline) {
      absl::SleepFor(absl::Milliseconds(100));
    }
    EXPECT_EQ(HttpGet(replicas_[r]->admin_port(), "/readyz", &body), 200) << body;
  }
  absl::SleepFor(absl::Seconds(1));
  StopLoad(load);
  std::cerr << "calls: " << load.ok.load() << " acknowledged, " << load.failed.load()
            << " failed\n";
  EXPECT_GT(load.failed.load(), 0);
  for (const auto& [code, n] : load.codes) {
    EXPECT_TRUE(code == grpc::UNAVAILABLE || code == grpc::DEADLINE_EXCEEDED)
        << n << " calls failed with gRPC code " << code;
  }
  ExpectGaplessLogWith(load.exchanges);
  for (const std::string& id : load.consents) {
    EXPECT_EQ(Sql(absl::StrCat("SELECT count(*) FROM consents WHERE consent_id = '", id, "'")), "1")
        << "acknowledged consent " << id << " is missing";
  }
}

TEST_F(ReplicaTest, CheckOnlyReplicaRefusesAnUnmigratedDatabaseUntilMigrate) {
  replicas_.push_back(std::make_unique<ReplicaProcess>(work_.path() + "/check", *pki_, *directory_,
                                                       cluster_->ConnInfo(dbname_), "check", ""));
  // migrate_on_start: CHECK_ONLY, appended inside the storage block is not possible
  // after the fact: write a config of its own.
  const std::string config = work_.path() + "/check/check-only.textproto";
  {
    std::ifstream in(replicas_[0]->config_path());
    std::stringstream text;
    text << in.rdbuf();
    std::string s = text.str();
    const std::string marker = "  pool_size: 4\n";
    s.replace(s.find(marker), marker.size(), marker + "  migrate_on_start: CHECK_ONLY\n");
    std::ofstream(config) << s;
  }
  std::string out;
  EXPECT_EQ(RunCommand({BrokerBinary(), "--config", config, "--check"}, &out), 1) << out;
  EXPECT_TRUE(absl::StrContains(out, "--migrate")) << out;
  EXPECT_EQ(RunCommand({BrokerBinary(), "--config", config, "--migrate"}, &out), 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "schema migrated to version")) << out;
  EXPECT_EQ(RunCommand({BrokerBinary(), "--config", config, "--migrate"}, &out), 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "schema up to date")) << out;
  EXPECT_EQ(RunCommand({BrokerBinary(), "--config", config, "--check"}, &out), 0) << out;
}

}  // namespace
}  // namespace tellonce::testing
