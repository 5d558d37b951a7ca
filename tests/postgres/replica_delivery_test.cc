// Deliveries across replicas: two tellonce-broker processes over one PostgreSQL database,
// a subscriber connector that records what it is handed (tests/integration/
// test_subscriber.cc), changes published at both replicas. One replica at a time
// dispatches a subscriber's deliveries; when it dies the other takes them over after the
// claim lease, and nothing published is lost.

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tellonce/v1/notification.grpc.pb.h"
#include "tests/integration/harness.h"
#include "tests/testing/pg_cluster.h"

namespace tellonce::testing {
namespace {

constexpr char kSubscriber[] = "sub-a";
constexpr int kClaimLeaseMs = 1500;

std::string Directory(int subscriber_port) {
  return absl::StrCat(R"(trust_domain: "tellonce.local"
agencies { id: "registry" name: "Civil Registry" roles: PROVIDER
           connector_endpoint: "127.0.0.1:1" }
agencies { id: "sub-a" name: "Subscriber a" roles: CONSUMER
           connector_endpoint: "127.0.0.1:)",
                      subscriber_port, R"(" }
agencies { id: "portal" name: "Citizen Portal" roles: PORTAL
           portal_client_id: "tellonce-portal"
           citizen_identity_providers: "https://eid.tellonce.local" }
agencies { id: "ops" name: "Broker operators" roles: ADMIN }
citizen_identity_providers { issuer: "https://eid.tellonce.local"
                             jwks_file: "pki/idp/jwks.json" algorithms: "ES256" }
attributes { name: "person.address" type: STRING provider: "registry" }
purposes { code: "TAX_ASSESSMENT" description: "Annual income tax assessment" }
mandates { id: "law-a" consumer: "sub-a" attributes: "person.address" purpose: "TAX_ASSESSMENT"
           legal_reference: "Test Act s. 1" }
citizen_id_rule { pattern: "[1-6][0-9]{10}" checksum: ESTONIAN_ISIKUKOOD }
subscriptions { agency: "sub-a" event_types: "ADDRESS_CHANGED" attributes: "person.address" }
)");
}

// A broker over PostgreSQL with fast delivery retries.
class Replica : public ServerProcess {
 public:
  Replica(const std::string& dir, const Pki& pki, const std::string& directory,
          const std::string& conninfo, const std::string& name)
      : ServerProcess(BrokerBinary(), Prepare(dir) + "/broker.textproto", dir + "/broker.log",
                      dir + "/port") {
    admin_port_file_ = dir + "/admin-port";
    std::ofstream(config_path()) << "listen_address: \"127.0.0.1:0\"\n"
                                 << "admin { listen_address: \"127.0.0.1:0\" }\n"
                                 << "tls { ca_file: \"" << pki.ca() << "\" cert_file: \""
                                 << pki.broker_cert() << "\" key_file: \"" << pki.broker_key()
                                 << "\" crl_dir: \"" << pki.dir << "/crl\" }\n"
                                 << "signing { key_file: \"" << pki.signing_key() << "\" key_id: \""
                                 << pki.signing_key_id() << "\" }\n"
                                 << "storage { postgres { conninfo: \"" << conninfo
                                 << "\" replica_name: \"" << name
                                 << "\" pool_size: 4 sequencer_lease_ms: 1000 claim_lease_ms: "
                                 << kClaimLeaseMs << " } }\n"
                                 << "directory_file: \"" << directory << "\"\n"
                                 << "notifications { max_attempts: 1000 max_age_seconds: 600 "
                                    "initial_backoff_ms: 50 max_backoff_ms: 200 }\n"
                                 << "shutdown_grace_seconds: 2\n";
  }

 private:
  static std::string Prepare(const std::string& dir) {
    std::filesystem::create_directories(dir);
    return dir;
  }
};

class ReplicaDeliveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<PgCluster>> cluster = PgCluster::Start({});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
    absl::StatusOr<std::string> db = cluster_->CreateDatabase();
    ASSERT_TRUE(db.ok()) << db.status();
    dbname_ = *db;
    const int port = FreePort();
    directory_ = dir_.path() + "/directory.textproto";
    std::ofstream(directory_) << Directory(port);
    absl::StatusOr<Pki> pki = MakePki(dir_.path() + "/pki", directory_);
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *pki;
    const std::string sub = dir_.path() + "/sub-a";
    std::filesystem::create_directories(sub);
    SetMode("ok");
    subscriber_ = std::make_unique<ConnectorProcess>(TELLONCE_TEST_SUBSCRIBER_BIN, sub, pki_,
                                                     kSubscriber, sub + "/settings", port);
    ASSERT_TRUE(subscriber_->Start().ok()) << subscriber_->log();
    for (int i = 0; i < 2; ++i) {
      replicas_.push_back(std::make_unique<Replica>(dir_.path() + "/r" + std::to_string(i), pki_,
                                                    directory_, cluster_->ConnInfo(dbname_),
                                                    "r" + std::to_string(i)));
      ASSERT_TRUE(replicas_.back()->Start().ok()) << replicas_.back()->log();
    }
  }
  void TearDown() override {
    if (HasFailure()) {
      for (size_t i = 0; i < replicas_.size(); ++i) {
        std::cerr << "---- r" << i << " log:\n" << replicas_[i]->log() << "\n";
      }
    }
    replicas_.clear();
    subscriber_.reset();
    cluster_.reset();
  }

  void SetMode(const std::string& mode) {
    const std::string sub = dir_.path() + "/sub-a";
    std::ofstream(sub + "/settings.tmp") << mode << "\n" << sub << "/events\n";
    std::filesystem::rename(sub + "/settings.tmp", sub + "/settings");
  }
  // Event ids the subscriber's handler was handed, in order (repeats included).
  std::vector<std::string> Handed() {
    std::vector<std::string> ids;
    std::ifstream in(dir_.path() + "/sub-a/events");
    std::string line;
    while (std::getline(in, line)) {
      std::vector<std::string> f = absl::StrSplit(line, ' ');
      if (f.size() == 6) ids.push_back(f[0]);
    }
    return ids;
  }
  bool WaitForAll(const std::vector<std::string>& ids, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      std::vector<std::string> handed = Handed();
      bool all = true;
      for (const std::string& id : ids) {
        all = all && std::find(handed.begin(), handed.end(), id) != handed.end();
      }
      if (all) return true;
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(50));
    }
  }
  grpc::Status Publish(int replica, const std::string& event_id, const std::string& citizen) {
    auto stub = tellonce::v1::NotificationService::NewStub(
        AgencyChannel(pki_, "registry", replicas_[replica]->address()));
    tellonce::v1::PublishChangeRequest r;
    r.set_event_id(event_id);
    r.set_citizen_id(citizen);
    r.set_event_type("ADDRESS_CHANGED");
    r.add_attributes("person.address");
    r.mutable_occurred_at()->set_seconds(1764500000);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    tellonce::v1::PublishChangeResponse response;
    return stub->PublishChange(&context, r, &response);
  }
  // The replica holding the subscriber's claim, or -1.
  int Holder() {
    absl::StatusOr<std::string> owner = cluster_->Psql(
        dbname_, absl::StrCat("SELECT owner FROM delivery_claims WHERE subscriber = '", kSubscriber,
                              "' AND lease_until > now()"));
    if (!owner.ok()) return -1;
    if (absl::StartsWith(*owner, "r0:")) return 0;
    if (absl::StartsWith(*owner, "r1:")) return 1;
    return -1;
  }

  TempDir dir_;
  std::unique_ptr<PgCluster> cluster_;
  std::string dbname_;
  std::string directory_;
  Pki pki_;
  std::unique_ptr<ConnectorProcess> subscriber_;
  std::vector<std::unique_ptr<Replica>> replicas_;
};

TEST_F(ReplicaDeliveryTest, OneReplicaDispatchesAndTheOtherTakesOverWhenItDies) {
  // Published at both replicas, two citizens: every event reaches the subscriber, and a
  // citizen's events in the order they were published.
  std::vector<std::string> first;
  for (int i = 0; i < 20; ++i) {
    const std::string id = absl::StrCat("ev-", i);
    ASSERT_TRUE(Publish(i % 2, id, i % 4 < 2 ? CitizenId(1) : CitizenId(2)).ok());
    first.push_back(id);
  }
  ASSERT_TRUE(WaitForAll(first, absl::Seconds(15))) << "not every event was delivered";
  std::vector<std::string> handed = Handed();
  for (int citizen = 0; citizen < 2; ++citizen) {
    std::vector<std::string> order;
    for (const std::string& id : handed) {
      int n = 0;
      ASSERT_TRUE(absl::SimpleAtoi(id.substr(3), &n));
      if ((n % 4 < 2) == (citizen == 0) &&
          std::find(order.begin(), order.end(), id) == order.end()) {
        order.push_back(id);
      }
    }
    for (size_t k = 1; k < order.size(); ++k) {
      EXPECT_LT(std::stoi(order[k - 1].substr(3)), std::stoi(order[k].substr(3)))
          << "a citizen's events were delivered out of order";
    }
  }
  const int holder = Holder();
  ASSERT_GE(holder, 0) << "nobody holds the subscriber's claim";
  const int other = 1 - holder;

  // The subscriber fails for a while; the holder keeps retrying what was published at
  // either replica. Then the holder dies, the subscriber recovers, and the other replica
  // delivers everything after the claim lease.
  SetMode("fail");
  std::vector<std::string> second;
  for (int i = 0; i < 10; ++i) {
    const std::string id = absl::StrCat("late-", i);
    ASSERT_TRUE(Publish(i % 2, id, CitizenId(3 + i)).ok());
    second.push_back(id);
  }
  absl::SleepFor(absl::Milliseconds(300));
  replicas_[holder]->Kill9();
  const absl::Time killed = absl::Now();
  SetMode("ok");
  ASSERT_TRUE(WaitForAll(second, absl::Seconds(15)))
      << "the surviving replica did not take over the deliveries";
  const absl::Duration took = absl::Now() - killed;
  std::cerr << "deliveries taken over and sent " << took << " after the kill\n";
  EXPECT_GT(took, absl::Milliseconds(kClaimLeaseMs / 2)) << "taken over before the lease ended";
  EXPECT_EQ(Holder(), other);
  // Nothing is owed any more.
  absl::StatusOr<std::string> pending =
      cluster_->Psql(dbname_, "SELECT count(*) FROM deliveries WHERE state = 'PENDING'");
  ASSERT_TRUE(pending.ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  std::string left(absl::StripTrailingAsciiWhitespace(*pending));
  while (left != "0" && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
    left = std::string(absl::StripTrailingAsciiWhitespace(
        *cluster_->Psql(dbname_, "SELECT count(*) FROM deliveries WHERE state = 'PENDING'")));
  }
  EXPECT_EQ(left, "0");
}

}  // namespace
}  // namespace tellonce::testing
