// Change publication (broker::ChangePublisher) and the outbox on a real RocksDB with the
// sample directory: who gets a delivery, what the access log records, idempotency, and
// what happens to deliveries nobody can take (retries, then dead, then re-queued).

#include "broker/publisher.h"

#include <cstdlib>
#include <future>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "consent/directory.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "storage/rocksdb/rocks_storage.h"
#include "storage/rocksdb/testing.h"
#include "tests/testing/sample_directory.h"
#include "tests/testing/temp_dir.h"

namespace tellonce::broker {
namespace {

using google::protobuf::util::TimeUtil;
using ::tellonce::testing::TempDir;

constexpr char kCitizen[] = "37605030299";

std::string SourceDir() {
  const char* src = std::getenv("TELLONCE_SOURCE_DIR");
  return src != nullptr ? src : ".";
}

tellonce::v1::PublishChangeRequest AddressChanged(const std::string& event_id) {
  tellonce::v1::PublishChangeRequest r;
  r.set_event_id(event_id);
  r.set_citizen_id(kCitizen);
  r.set_event_type("ADDRESS_CHANGED");
  r.add_attributes("person.address");
  *r.mutable_occurred_at() = TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(absl::Now()));
  return r;
}

class PublisherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A PKI for the connector pool's channels, and a directory whose tax connector
    // endpoint refuses connections, so every delivery fails and is retried.
    ASSERT_EQ(std::system(absl::StrCat(SourceDir(), "/certs/make-dev-pki --out ", dir_.path(),
                                       "/pki --directory ", SourceDir(),
                                       "/deploy/local/directory.textproto > /dev/null 2>&1")
                              .c_str()),
              0);
    absl::StatusOr<std::shared_ptr<const consent::Directory>> directory =
        ::tellonce::testing::LoadSampleDirectory(SourceDir() + "/deploy/local/directory.textproto",
                                                 dir_.path());
    ASSERT_TRUE(directory.ok()) << directory.status();
    tellonce::v1::Directory proto = (*directory)->proto();
    for (auto& agency : *proto.mutable_agencies()) {
      if (agency.id() == "tax") agency.set_connector_endpoint("127.0.0.1:1");
    }
    absl::StatusOr<std::shared_ptr<const consent::Directory>> patched =
        consent::Directory::FromProto(proto);
    ASSERT_TRUE(patched.ok()) << patched.status();
    holder_ = std::make_unique<consent::DirectoryHolder>(*patched);

    absl::StatusOr<std::unique_ptr<storage::Storage>> opened =
        storage::OpenRocksStorage({.path = dir_.path() + "/db"});
    ASSERT_TRUE(opened.ok()) << opened.status();
    storage_ = *std::move(opened);
    db_ = storage::rocks::DatabaseOf(*storage_);
    store_ = consent::NewConsentStore(storage_.get());
    log_ = std::make_unique<AccessLog>(storage_.get());
    pool_ = std::make_unique<ConnectorPool>(
        ConnectorPool::Options{.tls = {.ca_file = dir_.path() + "/pki/ca.pem",
                                       .cert_file = dir_.path() + "/pki/broker.pem",
                                       .key_file = dir_.path() + "/pki/broker.key",
                                       .crl_dir = ""}});
    absl::StatusOr<std::unique_ptr<Outbox>> outbox =
        Outbox::Start(&storage_->deliveries(), holder_.get(), pool_.get(),
                      {.window = 4,
                       .initial_backoff = absl::Milliseconds(10),
                       .max_backoff = absl::Milliseconds(20),
                       .max_attempts = 3});
    ASSERT_TRUE(outbox.ok()) << outbox.status();
    outbox_ = *std::move(outbox);
    publisher_ = std::make_unique<ChangePublisher>(holder_.get(), store_.get(), storage_.get(),
                                                   outbox_.get(), consent::RequestLimits{});
  }
  void TearDown() override {
    publisher_.reset();
    storage_->Close();
    outbox_.reset();
  }

  absl::StatusOr<tellonce::v1::PublishChangeResponse> Publish(
      const std::string& provider, const tellonce::v1::PublishChangeRequest& request) {
    std::promise<absl::StatusOr<tellonce::v1::PublishChangeResponse>> done;
    publisher_->Publish(provider, request,
                        [&](absl::StatusOr<tellonce::v1::PublishChangeResponse> r) {
                          done.set_value(std::move(r));
                        });
    return done.get_future().get();
  }

  void GrantTaxConsentForAddress() {
    tellonce::v1::StoredConsent record;
    tellonce::v1::Consent& c = *record.mutable_consent();
    c.set_consent_id(consent::NewConsentId(absl::Now()));
    c.set_citizen_id(kCitizen);
    c.set_consumer("tax");
    c.add_attributes("person.address");
    c.set_purpose("TAX_DEDUCTION_CHECK");
    *c.mutable_valid_from() =
        TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(absl::Now() - absl::Minutes(1)));
    *c.mutable_expires_at() =
        TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(absl::Now() + absl::Hours(1)));
    c.set_mode(tellonce::v1::UNTIL_EXPIRY);
    c.set_portal("portal");
    c.set_status(tellonce::v1::ACTIVE);
    c.set_request_id("grant-1");
    record.set_request_fingerprint("fp");
    std::promise<absl::Status> done;
    store_->Grant(record, [&](absl::StatusOr<consent::ConsentStore::GrantOutcome> r) {
      done.set_value(r.status());
    });
    ASSERT_TRUE(done.get_future().get().ok());
  }

  absl::StatusOr<tellonce::v1::ListDeliveriesResponse> Deliveries(
      tellonce::v1::Delivery::State state = tellonce::v1::Delivery::STATE_UNSPECIFIED) {
    return outbox_->List("", state, 0, "");
  }

  TempDir dir_;
  std::unique_ptr<consent::DirectoryHolder> holder_;
  std::unique_ptr<storage::Storage> storage_;
  storage::rocks::Database* db_ = nullptr;
  std::unique_ptr<consent::ConsentStore> store_;
  std::unique_ptr<AccessLog> log_;
  std::unique_ptr<ConnectorPool> pool_;
  std::unique_ptr<Outbox> outbox_;
  std::unique_ptr<ChangePublisher> publisher_;
};

TEST_F(PublisherTest, OnlyTheAuthoritativeProviderMayPublishAnAttribute) {
  absl::StatusOr<tellonce::v1::PublishChangeResponse> r = Publish("bank", AddressChanged("e1"));
  EXPECT_TRUE(absl::IsPermissionDenied(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("attributes[0]"), std::string::npos);
  EXPECT_EQ(*log_->Size(), 0u);
  EXPECT_EQ(Deliveries()->deliveries_size(), 0);
}

TEST_F(PublisherTest, MalformedRequestsAreRefusedNamingTheField) {
  struct Case {
    const char* field;
    std::function<void(tellonce::v1::PublishChangeRequest&)> spoil;
  };
  const std::vector<Case> cases = {
      {"event_id", [](auto& r) { r.clear_event_id(); }},
      {"citizen_id", [](auto& r) { r.set_citizen_id("12345678901"); }},
      {"event_type", [](auto& r) { r.set_event_type("moved"); }},
      {"attributes", [](auto& r) { r.clear_attributes(); }},
      {"attributes[1]", [](auto& r) { r.add_attributes("person.address"); }},
      {"attributes[0]", [](auto& r) { r.set_attributes(0, "person.shoe_size"); }},
      {"occurred_at", [](auto& r) { r.clear_occurred_at(); }},
      {"occurred_at", [](auto& r) { r.mutable_occurred_at()->set_seconds(4'000'000'000); }},
  };
  for (const Case& c : cases) {
    tellonce::v1::PublishChangeRequest r = AddressChanged("bad");
    c.spoil(r);
    absl::StatusOr<tellonce::v1::PublishChangeResponse> result = Publish("registry", r);
    EXPECT_TRUE(absl::IsInvalidArgument(result.status())) << c.field << " " << result.status();
    EXPECT_EQ(result.status().message().rfind(c.field, 0), 0u) << result.status();
  }
  EXPECT_EQ(*log_->Size(), 0u);
}

TEST_F(PublisherTest, SubscriberWithoutBasisGetsNothingButTheDenialIsLogged) {
  ASSERT_TRUE(Publish("registry", AddressChanged("e1")).ok());
  EXPECT_EQ(Deliveries()->deliveries_size(), 0);
  ASSERT_EQ(*log_->Size(), 1u);
  tellonce::v1::AccessEvent e = *log_->Read(0);
  EXPECT_EQ(e.consumer(), "tax");
  EXPECT_EQ(e.outcome(), tellonce::v1::AccessEvent::DENIED);
  EXPECT_EQ(e.notified_event_type(), "ADDRESS_CHANGED");
}

TEST_F(PublisherTest, SubscriberWithConsentGetsOneDeliveryAndARepublishAddsNothing) {
  GrantTaxConsentForAddress();
  absl::StatusOr<tellonce::v1::PublishChangeResponse> first =
      Publish("registry", AddressChanged("e2"));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->replayed());
  absl::StatusOr<tellonce::v1::ListDeliveriesResponse> stored = Deliveries();
  ASSERT_EQ(stored->deliveries_size(), 1);
  EXPECT_EQ(stored->deliveries(0).subscriber(), "tax");
  EXPECT_EQ(stored->deliveries(0).event().provider(), "registry");
  EXPECT_TRUE(stored->deliveries(0).basis().has_consent_id());
  EXPECT_EQ(log_->Read(0)->outcome(), tellonce::v1::AccessEvent::ALLOWED);

  // Same event id, same content: replayed, nothing new. Different content: refused.
  tellonce::v1::PublishChangeRequest again = AddressChanged("e2");
  again.mutable_occurred_at()->CopyFrom(stored->deliveries(0).event().occurred_at());
  absl::StatusOr<tellonce::v1::PublishChangeResponse> replay = Publish("registry", again);
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_TRUE(replay->replayed());
  again.set_event_type("DEATH_REGISTERED");
  EXPECT_TRUE(absl::IsInvalidArgument(Publish("registry", again).status()));
  EXPECT_EQ(*log_->Size(), 1u);
  EXPECT_LE(Deliveries()->deliveries_size(), 1);
}

TEST_F(PublisherTest, UndeliverableDeliveryIsRetriedThenParkedDeadThenRequeued) {
  GrantTaxConsentForAddress();
  ASSERT_TRUE(Publish("registry", AddressChanged("e3")).ok());
  // The tax connector refuses connections: three attempts with short back-off.
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline &&
         Deliveries(tellonce::v1::Delivery::DEAD)->deliveries_size() == 0) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  absl::StatusOr<tellonce::v1::ListDeliveriesResponse> dead =
      Deliveries(tellonce::v1::Delivery::DEAD);
  ASSERT_EQ(dead->deliveries_size(), 1);
  EXPECT_EQ(dead->deliveries(0).attempts(), 3);
  EXPECT_FALSE(dead->deliveries(0).last_error().empty());
  EXPECT_EQ(outbox_->pending(), 0u);

  EXPECT_TRUE(absl::IsNotFound(outbox_->Retry({"999"}, "").status()));
  absl::StatusOr<int> requeued = outbox_->Retry({}, "tax");
  ASSERT_TRUE(requeued.ok()) << requeued.status();
  EXPECT_EQ(*requeued, 1);
  EXPECT_EQ(Deliveries(tellonce::v1::Delivery::PENDING)->deliveries_size(), 1);
}

}  // namespace
}  // namespace tellonce::broker
