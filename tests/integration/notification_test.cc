// "Tell us once" (DESIGN.md flow 3) across real processes: the broker, subscriber
// connectors (test_subscriber, on the connector SDK), providers publishing through
// NotificationService and operators through DeliveryAdminService, mutual TLS on
// 127.0.0.1 everywhere. The federation is a test directory with four subscribers:
// sub-a and sub-b hold a mandate for person.address, sub-c only what consents the
// tests grant, sub-d never any basis.

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "certs/identity.h"
#include "certs/tls.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "proto/textproto.h"
#include "tellonce/v1/consent.grpc.pb.h"
#include "tellonce/v1/notification.grpc.pb.h"
#include "tests/integration/harness.h"

namespace tellonce::testing {
namespace {

using google::protobuf::util::TimeUtil;
using tellonce::v1::Delivery;
using tellonce::v1::PublishChangeRequest;
using tellonce::v1::PublishChangeResponse;

const std::vector<std::string> kSubscribers = {"sub-a", "sub-b", "sub-c", "sub-d"};

std::string SubscriberBinary() { return TELLONCE_TEST_SUBSCRIBER_BIN; }

// One line of a subscriber's events file (see test_subscriber.cc).
struct Seen {
  std::string event_id;
  std::string provider;
  std::string citizen;
  std::string basis;
};

std::string Directory(int registry_port, int bank_port, const std::map<std::string, int>& ports) {
  std::string text = absl::StrCat(R"(trust_domain: "tellonce.local"
agencies { id: "registry" name: "Civil Registry" roles: PROVIDER
           connector_endpoint: "127.0.0.1:)",
                                  registry_port, R"(" }
agencies { id: "bank" name: "Nordbank" roles: PROVIDER
           connector_endpoint: "127.0.0.1:)",
                                  bank_port, R"(" }
agencies { id: "benefits" name: "Benefits, a consumer only" roles: CONSUMER }
agencies { id: "portal" name: "Citizen Portal" roles: PORTAL
           portal_client_id: "tellonce-portal"
           citizen_identity_providers: "https://eid.tellonce.local" }
agencies { id: "ops" name: "Broker operators" roles: ADMIN }
citizen_identity_providers { issuer: "https://eid.tellonce.local"
                             jwks_file: "pki/idp/jwks.json" algorithms: "ES256" }
)");
  for (const auto& [agency, port] : ports) {
    absl::StrAppend(&text, "agencies { id: \"", agency, "\" name: \"Subscriber ", agency,
                    "\" roles: CONSUMER connector_endpoint: \"127.0.0.1:", port, "\" }\n");
  }
  absl::StrAppend(&text, R"(
attributes { name: "person.address" type: STRING provider: "registry" }
attributes { name: "person.name" type: STRING provider: "registry" }
attributes { name: "bank.account_iban" type: STRING provider: "bank" }
purposes { code: "TAX_ASSESSMENT" description: "Annual income tax assessment" }
mandates { id: "law-a" consumer: "sub-a" attributes: "person.address" purpose: "TAX_ASSESSMENT"
           legal_reference: "Test Act s. 1" }
mandates { id: "law-b" consumer: "sub-b" attributes: "person.address" purpose: "TAX_ASSESSMENT"
           legal_reference: "Test Act s. 2" }
citizen_id_rule { pattern: "[1-6][0-9]{10}" checksum: ESTONIAN_ISIKUKOOD }
subscriptions { agency: "sub-a" event_types: "ADDRESS_CHANGED" attributes: "person.address" }
subscriptions { agency: "sub-b" event_types: "ADDRESS_CHANGED" attributes: "person.address" }
subscriptions { agency: "sub-c" event_types: "ADDRESS_CHANGED" attributes: "person.name" }
subscriptions { agency: "sub-d" event_types: "DEATH_REGISTERED" attributes: "person.address" }
)");
  return text;
}

// A mutual TLS channel as `agency` that reconnects soon after a broker restart (gRPC's
// default first back-off is 1 s, growing), for calls that must ride one out.
std::shared_ptr<grpc::Channel> QuickChannel(const Pki& pki, const std::string& agency,
                                            const std::string& address) {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds = certs::MakeChannelCredentials(
      {.ca_file = pki.ca(), .cert_file = pki.cert(agency), .key_file = pki.key(agency), .crl_dir = ""},
      certs::BrokerSpiffeId("tellonce.local"));
  if (!creds.ok()) std::abort();
  grpc::ChannelArguments args;
  args.SetInt("grpc.use_local_subchannel_pool", 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  // Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC takes it as the minimum connect timeout,
  // and a short one abandons every TLS handshake a just restarted, busy broker cannot
  // finish that fast, so the channel never reconnects.
  return grpc::CreateCustomChannel(address, *creds, args);
}

PublishChangeRequest AddressChanged(const std::string& event_id, const std::string& citizen) {
  PublishChangeRequest r;
  r.set_event_id(event_id);
  r.set_citizen_id(citizen);
  r.set_event_type("ADDRESS_CHANGED");
  r.add_attributes("person.address");
  *r.mutable_occurred_at() = TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(absl::Now()));
  return r;
}

class NotificationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    std::map<std::string, int> ports;
    for (const std::string& s : kSubscribers) ports[s] = FreePort();
    directory_ = dir_->path() + "/directory.textproto";
    std::ofstream(directory_) << Directory(FreePort(), FreePort(), ports);
    absl::StatusOr<Pki> pki = MakePki(dir_->path() + "/pki", directory_);
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = new Pki(*pki);
    for (const std::string& s : kSubscribers) {
      const std::string dir = dir_->path() + "/" + s;
      std::filesystem::create_directories(dir);
      std::ofstream(dir + "/settings") << "ok\n" << dir << "/events\n";
      auto* process =
          new ConnectorProcess(SubscriberBinary(), dir, *pki_, s, dir + "/settings", ports[s]);
      std::ofstream(process->config_path(), std::ios::app)
          << "seen_events_file: \"" << dir << "/seen-events\"\n";
      ASSERT_TRUE(process->Start().ok()) << process->log();
      subscribers_[s] = process;
    }
    // Short back-off; a delivery failing for 5 s is parked as dead.
    broker_ = new BrokerProcess(dir_->path() + "/broker", *pki_, directory_,
                                "notifications { max_attempts: 1000 max_age_seconds: 5 "
                                "initial_backoff_ms: 50 max_backoff_ms: 250 }\n");
    ASSERT_TRUE(broker_->Start().ok()) << broker_->log();
  }
  static void TearDownTestSuite() {
    delete broker_;
    for (auto& [name, process] : subscribers_) delete process;
    subscribers_.clear();
    delete pki_;
    delete dir_;
  }

  void SetUp() override {
    ASSERT_NE(broker_, nullptr);
    for (auto& [name, process] : subscribers_) {
      SetMode(name, "ok");
      if (!process->running()) {
        ASSERT_TRUE(process->Start().ok()) << process->log();
      }
    }
    if (!broker_->running()) {
      ASSERT_TRUE(broker_->Start().ok()) << broker_->log();
    }
  }

  static void SetMode(const std::string& subscriber, const std::string& mode) {
    const std::string dir = dir_->path() + "/" + subscriber;
    std::ofstream(dir + "/settings.tmp") << mode << "\n" << dir << "/events\n";
    std::filesystem::rename(dir + "/settings.tmp", dir + "/settings");
  }

  // What the subscriber's handler was handed, in order.
  static std::vector<Seen> Events(const std::string& subscriber) {
    std::vector<Seen> seen;
    std::ifstream in(dir_->path() + "/" + subscriber + "/events");
    std::string line;
    while (std::getline(in, line)) {
      std::vector<std::string> f = absl::StrSplit(line, ' ');
      if (f.size() != 6) continue;
      seen.push_back({.event_id = f[0], .provider = f[1], .citizen = f[3], .basis = f[5]});
    }
    return seen;
  }
  // How often each event whose id starts with `prefix` reached the subscriber's handler.
  static std::map<std::string, int> Counts(const std::string& subscriber,
                                           const std::string& prefix) {
    std::map<std::string, int> counts;
    for (const Seen& s : Events(subscriber)) {
      if (absl::StartsWith(s.event_id, prefix)) ++counts[s.event_id];
    }
    return counts;
  }
  static bool Has(const std::string& subscriber, const std::string& event_id) {
    return Counts(subscriber, event_id).count(event_id) > 0;
  }
  // Waits until every one of `event_ids` reached `subscriber`.
  static bool WaitForAll(const std::string& subscriber, const std::vector<std::string>& event_ids,
                         absl::Duration timeout = absl::Seconds(15)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      std::set<std::string> got;
      for (const Seen& s : Events(subscriber)) got.insert(s.event_id);
      bool all = true;
      for (const std::string& id : event_ids) all = all && got.count(id) > 0;
      if (all) return true;
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(20));
    }
  }

  static grpc::Status Publish(const std::string& provider, const PublishChangeRequest& request,
                              PublishChangeResponse* response = nullptr,
                              BrokerProcess* broker = nullptr) {
    if (broker == nullptr) broker = broker_;
    auto stub = tellonce::v1::NotificationService::NewStub(
        AgencyChannel(*pki_, provider, broker->address()));
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    PublishChangeResponse ignored;
    return stub->PublishChange(&context, request, response != nullptr ? response : &ignored);
  }

  static std::string Consent(const std::string& citizen, const std::string& consumer,
                             BrokerProcess* broker = nullptr) {
    if (broker == nullptr) broker = broker_;
    absl::StatusOr<std::string> id = GrantConsent(
        *pki_, broker->address(),
        {.citizen = citizen, .consumer = consumer, .attributes = {"person.address"},
         .purpose = "TAX_ASSESSMENT", .mode = tellonce::v1::UNTIL_EXPIRY,
         .lifetime = absl::Hours(24), .request_id = ""});
    EXPECT_TRUE(id.ok()) << id.status();
    return id.ok() ? *id : "";
  }

  static void Revoke(const std::string& citizen, const std::string& consent_id) {
    grpc::Status status = RevokeConsent(*pki_, broker_->address(), citizen, consent_id);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  static grpc::Status ListDeliveries(const std::string& caller, const std::string& subscriber,
                                     Delivery::State state,
                                     tellonce::v1::ListDeliveriesResponse* response,
                                     BrokerProcess* broker = nullptr) {
    if (broker == nullptr) broker = broker_;
    auto stub = tellonce::v1::DeliveryAdminService::NewStub(
        AgencyChannel(*pki_, caller, broker->address()));
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    tellonce::v1::ListDeliveriesRequest r;
    r.set_subscriber(subscriber);
    r.set_state(state);
    r.set_page_size(500);
    return stub->ListDeliveries(&context, r, response);
  }

  static TempDir* dir_;
  static Pki* pki_;
  static std::string directory_;
  static std::map<std::string, ConnectorProcess*> subscribers_;
  static BrokerProcess* broker_;
};

TempDir* NotificationTest::dir_ = nullptr;
Pki* NotificationTest::pki_ = nullptr;
std::string NotificationTest::directory_;
std::map<std::string, ConnectorProcess*> NotificationTest::subscribers_;
BrokerProcess* NotificationTest::broker_ = nullptr;

TEST_F(NotificationTest, OnlyTheAuthoritativeProviderMayPublishAndAConsumerMayNot) {
  const std::string citizen = CitizenId(10);
  // The bank is a provider, but not of addresses; the registry not of bank accounts.
  grpc::Status status = Publish("bank", AddressChanged("refused-1", citizen));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "not authoritative"))
      << status.error_message();
  PublishChangeRequest iban = AddressChanged("refused-2", citizen);
  iban.set_attributes(0, "bank.account_iban");
  status = Publish("registry", iban);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
  // A consumer-only agency publishes nothing, not even for a subscriber's sake.
  for (const std::string consumer : {"benefits", "sub-a"}) {
    status = Publish(consumer, AddressChanged("refused-3", citizen));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << consumer << ": " << status.error_message();
  }

  // A publication that is allowed, as a fence: once it has arrived, a refused one that
  // had slipped through would have too.
  ASSERT_TRUE(Publish("registry", AddressChanged("refused-fence", citizen)).ok());
  ASSERT_TRUE(WaitForAll("sub-a", {"refused-fence"}));
  ASSERT_TRUE(WaitForAll("sub-b", {"refused-fence"}));
  for (const std::string& s : kSubscribers) {
    EXPECT_EQ(Counts(s, "refused-").count("refused-1"), 0u) << s;
    EXPECT_EQ(Counts(s, "refused-").count("refused-2"), 0u) << s;
    EXPECT_EQ(Counts(s, "refused-").count("refused-3"), 0u) << s;
  }
}

TEST_F(NotificationTest, ListDeliveriesPagesAreBoundedByTheConfiguredMaxPageSize) {
  // A broker of its own whose limits.max_page_size is 100: the delivery admin honours it
  // (it had 500 written into it before).
  BrokerProcess small(dir_->path() + "/small-page-broker", *pki_, directory_,
                      "limits { max_page_size: 100 }\n");
  ASSERT_TRUE(small.Start().ok()) << small.log();
  tellonce::v1::ListDeliveriesResponse response;
  grpc::Status status = ListDeliveries("ops", "", Delivery::STATE_UNSPECIFIED, &response, &small);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_NE(status.error_message().find("page_size"), std::string::npos) << status.error_message();
  EXPECT_NE(status.error_message().find("100"), std::string::npos) << status.error_message();
  // The shared broker (default 500) takes the same request.
  EXPECT_TRUE(ListDeliveries("ops", "", Delivery::STATE_UNSPECIFIED, &response).ok());
}

TEST_F(NotificationTest, PublishesBeyondTheProvidersBucketAreRefusedAndQueueNothing) {
  // A broker of its own, over the same directory, with a small publish bucket.
  BrokerProcess limited(dir_->path() + "/limited-broker", *pki_, directory_,
                        "rate_limits { publish { per_second: 1 burst: 3 } }\n");
  ASSERT_TRUE(limited.Start().ok()) << limited.log();
  const std::string citizen = CitizenId(11);
  int ok = 0;
  std::vector<std::string> refused;
  for (int i = 0; i < 10; ++i) {
    const std::string id = absl::StrCat("limited-", i);
    grpc::Status status = Publish("registry", AddressChanged(id, citizen), nullptr, &limited);
    if (status.ok()) {
      ++ok;
      continue;
    }
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
    EXPECT_EQ(status.error_message(),
              "rate limit: publish for agency registry: at most 1 per second");
    refused.push_back(id);
  }
  EXPECT_EQ(ok, 3);
  ASSERT_EQ(refused.size(), 7u);
  // A refused event was not stored: published again once the bucket has refilled, it is
  // new (not replayed).
  absl::SleepFor(absl::Milliseconds(1100));
  PublishChangeResponse response;
  ASSERT_TRUE(Publish("registry", AddressChanged(refused[0], citizen), &response, &limited).ok());
  EXPECT_FALSE(response.replayed());
  // Another provider's bucket is its own.
  PublishChangeRequest iban = AddressChanged("limited-bank", citizen);
  iban.set_attributes(0, "bank.account_iban");
  grpc::Status bank = Publish("bank", iban, nullptr, &limited);
  EXPECT_NE(bank.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << bank.error_message();
}

TEST_F(NotificationTest, OnlySubscribersWithABasisAreToldAndNoneAfterTheConsentIsRevoked) {
  const std::string consented = CitizenId(20);
  const std::string other = CitizenId(21);
  const std::string consent = Consent(consented, "sub-c");

  ASSERT_TRUE(Publish("registry", AddressChanged("basis-1", consented)).ok());
  ASSERT_TRUE(Publish("registry", AddressChanged("basis-2", other)).ok());
  ASSERT_TRUE(WaitForAll("sub-a", {"basis-1", "basis-2"}));
  ASSERT_TRUE(WaitForAll("sub-b", {"basis-1", "basis-2"}));
  ASSERT_TRUE(WaitForAll("sub-c", {"basis-1"}));
  // Each was told on its own basis: a mandate, or the citizen's consent.
  for (const Seen& s : Events("sub-a")) {
    if (s.event_id == "basis-1") {
      EXPECT_EQ(s.basis, "mandate:law-a");
    }
  }
  for (const Seen& s : Events("sub-c")) {
    if (s.event_id == "basis-1") {
      EXPECT_EQ(s.basis, "consent:" + consent);
      EXPECT_EQ(s.provider, "registry");
      EXPECT_EQ(s.citizen, consented);
    }
  }

  Revoke(consented, consent);
  ASSERT_TRUE(Publish("registry", AddressChanged("basis-3", consented)).ok());
  ASSERT_TRUE(WaitForAll("sub-a", {"basis-3"}));
  ASSERT_TRUE(WaitForAll("sub-b", {"basis-3"}));
  // A fence for sub-c: a later event it does have a basis for.
  const std::string fence_citizen = CitizenId(22);
  Consent(fence_citizen, "sub-c");
  ASSERT_TRUE(Publish("registry", AddressChanged("basis-fence", fence_citizen)).ok());
  ASSERT_TRUE(WaitForAll("sub-c", {"basis-fence"}));
  absl::SleepFor(absl::Milliseconds(300));

  // sub-c: no consent for `other`, and none any more for `consented`. sub-d, subscribed
  // to the attribute but without any basis: nothing at all.
  EXPECT_EQ(Counts("sub-c", "basis-"),
            (std::map<std::string, int>{{"basis-1", 1}, {"basis-fence", 1}}));
  EXPECT_TRUE(Counts("sub-d", "basis-").empty());
  EXPECT_EQ(Counts("sub-a", "basis-"),
            (std::map<std::string, int>{
                {"basis-1", 1}, {"basis-2", 1}, {"basis-3", 1}, {"basis-fence", 1}}));
}

TEST_F(NotificationTest, ASubscriberThatIsDownGetsItsDeliveriesInOrderOnceItIsBack) {
  ConnectorProcess* down = subscribers_["sub-b"];
  ASSERT_EQ(down->Terminate(), 0) << down->log();
  const absl::Time stopped = absl::Now();
  const std::vector<std::string> citizens = {CitizenId(30), CitizenId(31)};
  std::map<std::string, std::vector<std::string>> published;  // citizen -> ids, in order
  std::vector<std::string> all;
  for (int i = 0; i < 15; ++i) {
    const std::string& citizen = citizens[i % 3 == 2 ? 1 : 0];
    const std::string id = absl::StrCat("down-", i);
    ASSERT_TRUE(Publish("registry", AddressChanged(id, citizen)).ok());
    published[citizen].push_back(id);
    all.push_back(id);
  }
  // The others are not held up by the one that is down.
  ASSERT_TRUE(WaitForAll("sub-a", all));
  EXPECT_TRUE(Counts("sub-b", "down-").empty());
  // Down for a while (the broker keeps retrying with back-off), then back.
  absl::SleepFor(stopped + absl::Milliseconds(1500) - absl::Now());
  ASSERT_TRUE(down->Start().ok()) << down->log();
  ASSERT_TRUE(WaitForAll("sub-b", all)) << broker_->log();

  // Each exactly once, and in publication order for each citizen.
  std::map<std::string, std::vector<std::string>> received;
  for (const Seen& s : Events("sub-b")) {
    if (absl::StartsWith(s.event_id, "down-")) received[s.citizen].push_back(s.event_id);
  }
  EXPECT_EQ(received, published);
}

TEST_F(NotificationTest, APermanentlyFailingSubscriberIsParkedAsDeadAndCanBeRequeued) {
  const std::string citizen = CitizenId(40);
  Consent(citizen, "sub-c");
  SetMode("sub-c", "fail");
  ASSERT_TRUE(Publish("registry", AddressChanged("dead-1", citizen)).ok());
  // The others get it, and what comes next, at once.
  ASSERT_TRUE(WaitForAll("sub-a", {"dead-1"}, absl::Seconds(3)));
  ASSERT_TRUE(Publish("registry", AddressChanged("dead-2", CitizenId(41))).ok());
  ASSERT_TRUE(WaitForAll("sub-b", {"dead-1", "dead-2"}, absl::Seconds(3)));

  // Failing for longer than max_age (5 s): parked as dead, visible to operators.
  Delivery dead;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (dead.delivery_id().empty() && absl::Now() < deadline) {
    tellonce::v1::ListDeliveriesResponse response;
    grpc::Status status = ListDeliveries("ops", "sub-c", Delivery::DEAD, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    for (const Delivery& d : response.deliveries()) {
      if (d.event().event_id() == "dead-1") dead = d;
    }
    if (dead.delivery_id().empty()) absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_FALSE(dead.delivery_id().empty()) << "never parked as dead\n" << broker_->log();
  EXPECT_EQ(dead.subscriber(), "sub-c");
  EXPECT_GE(dead.attempts(), 2);
  EXPECT_TRUE(absl::StrContains(dead.last_error(), "failing on purpose")) << dead.last_error();
  EXPECT_TRUE(dead.basis().has_consent_id());
  EXPECT_TRUE(Counts("sub-c", "dead-").empty());
  // Only an operator may look.
  tellonce::v1::ListDeliveriesResponse ignored;
  EXPECT_EQ(ListDeliveries("sub-a", "", Delivery::DEAD, &ignored).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  // Fixed, and re-queued by the operator: delivered once, and gone from the outbox.
  SetMode("sub-c", "ok");
  auto stub =
      tellonce::v1::DeliveryAdminService::NewStub(AgencyChannel(*pki_, "ops", broker_->address()));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  tellonce::v1::RetryDeliveriesRequest retry;
  retry.add_delivery_ids(dead.delivery_id());
  tellonce::v1::RetryDeliveriesResponse requeued;
  grpc::Status status = stub->RetryDeliveries(&context, retry, &requeued);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(requeued.requeued(), 1);
  ASSERT_TRUE(WaitForAll("sub-c", {"dead-1"}, absl::Seconds(5)));
  EXPECT_EQ(Counts("sub-c", "dead-"), (std::map<std::string, int>{{"dead-1", 1}}));
  const absl::Time gone_by = absl::Now() + absl::Seconds(5);
  bool gone = false;
  while (!gone && absl::Now() < gone_by) {
    tellonce::v1::ListDeliveriesResponse response;
    ASSERT_TRUE(ListDeliveries("ops", "sub-c", Delivery::STATE_UNSPECIFIED, &response).ok());
    gone = true;
    for (const Delivery& d : response.deliveries()) gone = gone && d.event().event_id() != "dead-1";
    if (!gone) absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(gone);
}

TEST_F(NotificationTest, BrokerKilledDuringABurstStillDeliversEveryAcknowledgedEventOnce) {
  // A broker of its own, on a fixed port so publishers find it again after the restart,
  // and with the default patience (no delivery may die of the crash).
  const int port = FreePort();
  BrokerProcess broker(dir_->path() + "/crash-broker", *pki_, directory_,
                       "notifications { initial_backoff_ms: 50 max_backoff_ms: 500 }\n");
  {
    absl::StatusOr<std::string> config = ReadFileToString(broker.config_path());
    ASSERT_TRUE(config.ok());
    std::string text = *config;
    const std::string any = "127.0.0.1:0";
    text.replace(text.find(any), any.size(), absl::StrCat("127.0.0.1:", port));
    std::ofstream(broker.config_path()) << text;
  }
  ASSERT_TRUE(broker.Start().ok()) << broker.log();

  constexpr int kEvents = 1000;
  constexpr int kCitizens = 50;
  constexpr int kPublishers = 8;
  std::vector<std::string> citizens;
  for (int i = 0; i < kCitizens; ++i) {
    citizens.push_back(CitizenId(1000 + i));
    Consent(citizens.back(), "sub-c", &broker);
  }
  std::vector<PublishChangeRequest> requests;
  std::vector<std::string> ids;
  for (int i = 0; i < kEvents; ++i) {
    ids.push_back(absl::StrCat("crash-", i));
    requests.push_back(AddressChanged(ids.back(), citizens[i % kCitizens]));
  }

  // Publishers retry until the broker acknowledges, as a provider would: the event id
  // makes a retry of an event the broker did store before dying harmless.
  std::atomic<int> acknowledged{0};
  std::atomic<int> failed_attempts{0};
  std::vector<std::thread> publishers;
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  for (int t = 0; t < kPublishers; ++t) {
    publishers.emplace_back([&, t] {
      auto connect = [&] {
        return tellonce::v1::NotificationService::NewStub(
            QuickChannel(*pki_, "registry", broker.address()));
      };
      auto stub = connect();
      for (int i = t; i < kEvents; i += kPublishers) {
        while (absl::Now() < give_up) {
          grpc::ClientContext context;
          context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(3)));
          PublishChangeResponse response;
          if (stub->PublishChange(&context, requests[i], &response).ok()) {
            ++acknowledged;
            break;
          }
          ++failed_attempts;
          absl::SleepFor(absl::Milliseconds(50));
          // A new channel for the retry: one whose connection attempts began while the
          // broker was down can sit out gRPC's connect timeout (20 s) before it tries
          // the restarted broker.
          stub = connect();
        }
      }
    });
  }
  const absl::Time crash_by = absl::Now() + absl::Seconds(30);
  while (acknowledged.load() < kEvents / 3 && absl::Now() < crash_by) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  const int acknowledged_before_crash = acknowledged.load();
  broker.Kill9();
  absl::SleepFor(absl::Milliseconds(300));
  ASSERT_TRUE(broker.Start().ok()) << broker.log();
  for (std::thread& t : publishers) t.join();
  EXPECT_GT(acknowledged_before_crash, 0);
  EXPECT_LT(acknowledged_before_crash, kEvents) << "the crash came after the burst";
  ASSERT_EQ(acknowledged.load(), kEvents) << "not every event was acknowledged in time\n"
                                          << broker.log();

  // Every acknowledged event reaches each subscriber with a basis; each handler saw
  // each exactly once; sub-d, without a basis, nothing.
  for (const std::string s : {"sub-a", "sub-b", "sub-c"}) {
    ASSERT_TRUE(WaitForAll(s, ids, absl::Seconds(60))) << s << "\n" << broker.log();
  }
  for (const std::string s : {"sub-a", "sub-b", "sub-c"}) {
    std::map<std::string, int> counts = Counts(s, "crash-");
    EXPECT_EQ(counts.size(), static_cast<size_t>(kEvents)) << s;
    int twice = 0;
    for (const auto& [id, n] : counts) twice += n != 1;
    EXPECT_EQ(twice, 0) << s << ": events handed to the handler more than once";
  }
  EXPECT_TRUE(Counts("sub-d", "crash-").empty());

  // Republishing with the same event ids: replayed, nothing new reaches anyone.
  for (int i = 0; i < kEvents; i += 50) {
    PublishChangeResponse response;
    grpc::Status status = Publish("registry", requests[i], &response, &broker);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_TRUE(response.replayed()) << ids[i];
  }
  // The outbox empties (the last acknowledgements may still be on their way) and stays
  // empty.
  tellonce::v1::ListDeliveriesResponse owed;
  const absl::Time drained_by = absl::Now() + absl::Seconds(10);
  do {
    absl::SleepFor(absl::Milliseconds(100));
    ASSERT_TRUE(ListDeliveries("ops", "", Delivery::STATE_UNSPECIFIED, &owed, &broker).ok());
  } while (owed.deliveries_size() > 0 && absl::Now() < drained_by);
  EXPECT_EQ(owed.deliveries_size(), 0) << "deliveries still owed after a replay";
  absl::SleepFor(absl::Milliseconds(500));
  for (const std::string s : {"sub-a", "sub-b", "sub-c"}) {
    size_t lines = 0;
    for (const Seen& seen : Events(s)) lines += absl::StartsWith(seen.event_id, "crash-");
    EXPECT_EQ(lines, static_cast<size_t>(kEvents)) << s;
  }
  EXPECT_EQ(broker.Terminate(), 0) << broker.log();
}

}  // namespace
}  // namespace tellonce::testing
