// The policies behind TransparencyService and DeliveryAdminService, in their cores
// (issue 14: services thin), over a real transparency log and outbox on RocksDB and the
// sample federation directory: who may see and do what, and one page check that follows
// limits.max_page_size (the transparency service had 500 written into it).

#include "broker/transparency_core.h"

#include <cstdlib>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/access_log.h"
#include "broker/connector_pool.h"
#include "broker/delivery_admin.h"
#include "broker/outbox.h"
#include "broker/rate_limiter.h"
#include "broker/transparency.h"
#include "certs/citizen_assertion.h"
#include "consent/directory.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/textproto.h"
#include "storage/rocksdb/rocks_storage.h"
#include "storage/rocksdb/testing.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_keys.h"

namespace tellonce::broker {
namespace {

using ::tellonce::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kCitizen[] = "37605030299";
constexpr char kOtherCitizen[] = "39001010001";
constexpr char kIssuer[] = "https://eid.tellonce.local";

std::string SourceDir() {
  const char* src = std::getenv("TELLONCE_SOURCE_DIR");
  return src != nullptr ? src : ".";
}

// The sample federation (deploy/local/directory.textproto): registry and bank provide,
// tax and benefits consume, portal is the portal, ops the admin. Its identity provider's
// keys are replaced by the test's own, so the test can mint citizen tokens.
class CoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<certs::CitizenAssertionSigner> signer =
        certs::CitizenAssertionSigner::GenerateEs256("dev-idp");
    ASSERT_TRUE(signer.ok()) << signer.status();
    signer_ = std::make_unique<certs::CitizenAssertionSigner>(*std::move(signer));
    tellonce::v1::Directory proto;
    const std::string sample = SourceDir() + "/deploy/local/directory.textproto";
    ASSERT_TRUE(ParseTextProtoFile(sample, &proto).ok());
    const std::string jwks = dir_.path() + "/jwks.json";
    std::ofstream(jwks) << signer_->JwksJson();
    for (auto& provider : *proto.mutable_citizen_identity_providers()) {
      provider.set_jwks_file(jwks);
    }
    absl::StatusOr<std::shared_ptr<const consent::Directory>> directory =
        consent::Directory::FromProto(std::move(proto), sample);
    ASSERT_TRUE(directory.ok()) << directory.status();
    directory_ = *std::move(directory);

    absl::StatusOr<certs::SigningKey> key = certs::SigningKey::FromPem(testing::NewP256KeyPem());
    ASSERT_TRUE(key.ok());
    absl::StatusOr<std::unique_ptr<storage::Storage>> opened =
        storage::OpenRocksStorage({.path = dir_.path() + "/db"});
    ASSERT_TRUE(opened.ok()) << opened.status();
    storage_ = *std::move(opened);
    db_ = storage::rocks::DatabaseOf(*storage_);
    log_ = std::make_unique<AccessLog>(storage_.get());
    absl::StatusOr<std::unique_ptr<TransparencyLog>> t = TransparencyLog::Start(
        storage_.get(), log_.get(), *key,
        {.issuer = "spiffe://tellonce.local/broker", .checkpoint_interval = absl::Hours(1)});
    ASSERT_TRUE(t.ok()) << t.status();
    tlog_ = *std::move(t);
    storage_->SetAppendListener([t = tlog_.get()] { t->Notify(); });
  }
  void TearDown() override {
    outbox_.reset();
    storage_->Close();
    tlog_.reset();
    log_.reset();
    storage_.reset();
    db_ = nullptr;
  }

  // `n` access events about `citizen` caused by `consumer`.
  void Append(int n, const std::string& citizen, const std::string& consumer) {
    std::vector<tellonce::v1::AccessEvent> events;
    for (int i = 0; i < n; ++i) {
      tellonce::v1::AccessEvent& e = events.emplace_back();
      e.set_exchange_id(absl::StrCat("x", appended_++));
      e.set_consumer(consumer);
      e.set_citizen_id(citizen);
      e.add_attributes("person.name");
      e.mutable_at()->set_seconds(1'900'000'000 + appended_);
    }
    std::promise<absl::Status> done;
    log_->Append(std::move(events), [&](absl::Status r) { done.set_value(r); });
    ASSERT_TRUE(done.get_future().get().ok());
  }

  // Waits until the tree covers every event appended (a fresh checkpoint).
  void AwaitTree() {
    std::promise<absl::StatusOr<tellonce::v1::SignedCheckpoint>> fresh;
    tlog_->FreshCheckpoint(
        [&](absl::StatusOr<tellonce::v1::SignedCheckpoint> c) { fresh.set_value(c); });
    ASSERT_TRUE(fresh.get_future().get().ok());
  }

  std::string Token(const std::string& citizen) {
    certs::CitizenAssertionClaims claims;
    claims.issuer = kIssuer;
    claims.audience = "tellonce-portal";
    claims.citizen_id = citizen;
    absl::StatusOr<std::string> token = signer_->Mint(claims);
    EXPECT_TRUE(token.ok()) << token.status();
    return token.ok() ? *token : "";
  }

  TransparencyCore Core(consent::RequestLimits limits = {}, RateLimiter* fresh = nullptr) {
    return TransparencyCore(tlog_.get(), {.limits = limits, .fresh_limit = fresh});
  }

  static tellonce::v1::ListAccessEventsRequest ListRequest(const std::string& citizen,
                                                           int page_size = 0) {
    tellonce::v1::ListAccessEventsRequest r;
    r.set_citizen_id(citizen);
    r.set_page_size(page_size);
    return r;
  }

  TempDir dir_;
  std::unique_ptr<certs::CitizenAssertionSigner> signer_;
  std::shared_ptr<const consent::Directory> directory_;
  std::unique_ptr<storage::Storage> storage_;
  storage::rocks::Database* db_ = nullptr;
  std::unique_ptr<AccessLog> log_;
  std::unique_ptr<TransparencyLog> tlog_;
  std::unique_ptr<Outbox> outbox_;
  int appended_ = 0;
};

TEST_F(CoreTest, AConsumerSeesOnlyTheEventsItCausedWithoutAToken) {
  Append(3, kCitizen, "tax");
  Append(2, kCitizen, "benefits");
  TransparencyCore core = Core();
  absl::StatusOr<tellonce::v1::ListAccessEventsResponse> tax =
      core.ListAccessEvents(*directory_, "tax", "", ListRequest(kCitizen));
  ASSERT_TRUE(tax.ok()) << tax.status();
  ASSERT_EQ(tax->events_size(), 3);
  for (const auto& e : tax->events()) EXPECT_EQ(e.event().consumer(), "tax");
}

TEST_F(CoreTest, APortalSeesEverythingButOnlyWithTheCitizensOwnToken) {
  Append(3, kCitizen, "tax");
  Append(2, kCitizen, "benefits");
  TransparencyCore core = Core();
  absl::StatusOr<tellonce::v1::ListAccessEventsResponse> all =
      core.ListAccessEvents(*directory_, "portal", Token(kCitizen), ListRequest(kCitizen));
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->events_size(), 5);

  EXPECT_EQ(core.ListAccessEvents(*directory_, "portal", "", ListRequest(kCitizen)).status().code(),
            absl::StatusCode::kUnauthenticated);
  // Another citizen's token does not open this citizen's history.
  EXPECT_EQ(
      core.ListAccessEvents(*directory_, "portal", Token(kOtherCitizen), ListRequest(kCitizen))
          .status()
          .code(),
      absl::StatusCode::kPermissionDenied);
}

TEST_F(CoreTest, AProviderOrAnAdminCannotListACitizensHistory) {
  Append(1, kCitizen, "tax");
  TransparencyCore core = Core();
  for (const char* agency : {"registry", "ops"}) {
    absl::Status s = core.ListAccessEvents(*directory_, agency, "", ListRequest(kCitizen)).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << agency;
    EXPECT_THAT(std::string(s.message()), HasSubstr("portal or the consumer role")) << agency;
  }
}

// The service had 500 written into it; limits.max_page_size now decides, for every
// list.
TEST_F(CoreTest, ThePageSizeLimitIsTheConfiguredOne) {
  Append(3, kCitizen, "tax");
  consent::RequestLimits small;
  small.max_page_size = 2;
  TransparencyCore strict = Core(small);
  EXPECT_TRUE(strict.ListAccessEvents(*directory_, "tax", "", ListRequest(kCitizen, 2)).ok());
  absl::Status over =
      strict.ListAccessEvents(*directory_, "tax", "", ListRequest(kCitizen, 3)).status();
  EXPECT_EQ(over.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(over.message()), "page_size: at most 2");

  consent::RequestLimits large;
  large.max_page_size = 1000;
  absl::StatusOr<tellonce::v1::ListAccessEventsResponse> big =
      Core(large).ListAccessEvents(*directory_, "tax", "", ListRequest(kCitizen, 600));
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(big->events_size(), 3);

  EXPECT_EQ(std::string(Core()
                            .ListAccessEvents(*directory_, "tax", "", ListRequest(kCitizen, 501))
                            .status()
                            .message()),
            "page_size: at most 500");
  EXPECT_EQ(std::string(Core()
                            .ListAccessEvents(*directory_, "tax", "", ListRequest(kCitizen, -1))
                            .status()
                            .message()),
            "page_size: must not be negative");
}

TEST_F(CoreTest, PagesFollowTheirTokensAndMalformedTokensAreRefused) {
  Append(5, kCitizen, "tax");
  TransparencyCore core = Core();
  tellonce::v1::ListAccessEventsRequest request = ListRequest(kCitizen, 2);
  std::vector<uint64_t> seen;
  for (int pages = 0; pages < 10; ++pages) {
    absl::StatusOr<tellonce::v1::ListAccessEventsResponse> page =
        core.ListAccessEvents(*directory_, "tax", "", request);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const auto& e : page->events()) seen.push_back(e.index());
    if (page->next_page_token().empty()) break;
    request.set_page_token(page->next_page_token());
  }
  EXPECT_EQ(seen, (std::vector<uint64_t>{0, 1, 2, 3, 4}));

  const std::vector<std::string> malformed = {"abc",
                                              "-1",
                                              "+1",
                                              " 1",
                                              "1.5",
                                              std::string(21, '1'),
                                              std::string("1\0", 2),
                                              "99999999999999999999"};
  for (const std::string& token : malformed) {
    request.set_page_token(token);
    absl::Status s = core.ListAccessEvents(*directory_, "tax", "", request).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << token;
    EXPECT_EQ(std::string(s.message()), "page_token: not a valid page token") << token;
  }
}

TEST_F(CoreTest, ATimeRangeMustBeValidAndInOrder) {
  TransparencyCore core = Core();
  tellonce::v1::ListAccessEventsRequest request = ListRequest(kCitizen);
  request.mutable_from()->set_seconds(2'000'000'000);
  request.mutable_to()->set_seconds(1'000'000'000);
  EXPECT_EQ(std::string(core.ListAccessEvents(*directory_, "tax", "", request).status().message()),
            "to: must not be before from");
  request.mutable_to()->set_nanos(-1);
  const absl::Status invalid = core.ListAccessEvents(*directory_, "tax", "", request).status();
  EXPECT_THAT(std::string(invalid.message()), StartsWith("to: not a valid timestamp"));
  // A bad citizen id is refused before anything is read.
  EXPECT_EQ(core.ListAccessEvents(*directory_, "tax", "", ListRequest("123")).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CoreTest, AConsumerProvesOnlyItsOwnEventsPortalAndAdminAny) {
  Append(1, kCitizen, "tax");
  Append(1, kCitizen, "benefits");
  AwaitTree();

  TransparencyCore core = Core();
  tellonce::v1::GetInclusionProofRequest own;
  own.set_index(0);
  own.set_tree_size(2);
  tellonce::v1::GetInclusionProofRequest other = own;
  other.set_index(1);
  EXPECT_TRUE(core.GetInclusionProof(*directory_, "tax", own).ok());
  absl::Status refused = core.GetInclusionProof(*directory_, "tax", other).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(std::string(refused.message()), "a consumer may only prove the events it caused");
  EXPECT_TRUE(core.GetInclusionProof(*directory_, "portal", other).ok());
  EXPECT_TRUE(core.GetInclusionProof(*directory_, "ops", other).ok());
  EXPECT_EQ(core.GetInclusionProof(*directory_, "registry", own).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(CoreTest, ExportsAreForTheAdminOnly) {
  Append(2, kCitizen, "tax");
  AwaitTree();
  TransparencyCore core = Core();
  tellonce::v1::ExportAccessLogRequest log_request;
  tellonce::v1::ExportCheckpointsRequest checkpoints_request;
  for (const char* agency : {"tax", "portal", "registry"}) {
    absl::Status s = core.ExportAccessLog(*directory_, agency, log_request).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(std::string(s.message()), "ExportAccessLog requires the admin role");
    s = core.ExportCheckpoints(*directory_, agency, checkpoints_request).status();
    EXPECT_EQ(std::string(s.message()), "ExportCheckpoints requires the admin role");
  }
  absl::StatusOr<tellonce::v1::ExportAccessLogResponse> exported =
      core.ExportAccessLog(*directory_, "ops", log_request);
  ASSERT_TRUE(exported.ok()) << exported.status();
  EXPECT_EQ(exported->events_size(), 2);
  EXPECT_TRUE(core.ExportCheckpoints(*directory_, "ops", checkpoints_request).ok());
}

TEST_F(CoreTest, FreshCheckpointsAreRateLimitedPerAgencyLatestOnesAreNot) {
  Append(1, kCitizen, "tax");
  RateLimiter fresh("fresh_checkpoint", RateLimiter::Options{.per_second = 0.001, .burst = 1});
  TransparencyCore core = Core({}, &fresh);
  auto get = [&](const std::string& agency, bool want_fresh) {
    tellonce::v1::GetCheckpointRequest request;
    request.set_fresh(want_fresh);
    std::promise<absl::StatusOr<tellonce::v1::SignedCheckpoint>> done;
    core.GetCheckpoint(agency, request, [&](absl::StatusOr<tellonce::v1::SignedCheckpoint> c) {
      done.set_value(c);
    });
    return done.get_future().get().status();
  };
  EXPECT_TRUE(get("tax", true).ok());
  EXPECT_EQ(get("tax", true).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(get("tax", false).ok());      // the latest is not limited
  EXPECT_TRUE(get("benefits", true).ok());  // another agency has its own bucket
}

// DeliveryAdminService's policy (its core, DeliveryAdmin): the admin role, the filters,
// and the same page check as every list.
class DeliveryAdminTest : public CoreTest {
 protected:
  void SetUp() override {
    CoreTest::SetUp();
    holder_ = std::make_unique<consent::DirectoryHolder>(directory_);
    pool_ = std::make_unique<ConnectorPool>(ConnectorPool::Options{});
    absl::StatusOr<std::unique_ptr<Outbox>> outbox =
        Outbox::Start(&storage_->deliveries(), holder_.get(), pool_.get(), DispatchOptions{});
    ASSERT_TRUE(outbox.ok()) << outbox.status();
    outbox_ = *std::move(outbox);
  }
  void TearDown() override {
    CoreTest::TearDown();
    pool_.reset();
  }

  // `n` PENDING deliveries to `subscriber`, stored (not handed to the dispatcher).
  void Stage(int n, const std::string& subscriber) {
    std::promise<absl::Status> done;
    storage_->Submit(
        [&](storage::Transaction& tx) -> absl::Status {
          for (int i = 0; i < n; ++i) {
            tellonce::v1::ChangeEvent event;
            event.set_event_id(absl::StrCat("e", staged_++));
            event.set_provider("registry");
            event.set_citizen_id(kCitizen);
            event.set_event_type("ADDRESS_CHANGED");
            event.add_attributes("person.address");
            tellonce::v1::Basis basis;
            basis.set_mandate_id("m");
            absl::StatusOr<std::vector<tellonce::v1::Delivery>> d =
                tx.AddDeliveries(Outbox::NewDeliveries(event, {{subscriber, basis}}, absl::Now()));
            if (!d.ok()) return d.status();
          }
          return absl::OkStatus();
        },
        [&](absl::Status s) { done.set_value(s); });
    ASSERT_TRUE(done.get_future().get().ok());
  }

  std::unique_ptr<consent::DirectoryHolder> holder_;
  std::unique_ptr<ConnectorPool> pool_;
  int staged_ = 0;
};

TEST_F(DeliveryAdminTest, OnlyTheAdminListsAndRetries) {
  Stage(2, "tax");
  DeliveryAdmin admin(outbox_.get(), {});
  for (const char* agency : {"tax", "portal", "registry"}) {
    absl::Status listed = admin.List(*directory_, agency, {}).status();
    EXPECT_EQ(listed.code(), absl::StatusCode::kPermissionDenied) << agency;
    EXPECT_EQ(std::string(listed.message()), "DeliveryAdminService requires the admin role");
    EXPECT_EQ(admin.Retry(*directory_, agency, {}).status().code(),
              absl::StatusCode::kPermissionDenied);
  }
  absl::StatusOr<tellonce::v1::ListDeliveriesResponse> listed = admin.List(*directory_, "ops", {});
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->deliveries_size(), 2);
  absl::StatusOr<tellonce::v1::RetryDeliveriesResponse> retried =
      admin.Retry(*directory_, "ops", {});
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->requeued(), 0);  // nothing is dead
}

TEST_F(DeliveryAdminTest, PagesFollowTheConfiguredLimitAndTheirTokens) {
  Stage(5, "tax");
  consent::RequestLimits limits;
  limits.max_page_size = 2;
  DeliveryAdmin admin(outbox_.get(), limits);
  tellonce::v1::ListDeliveriesRequest request;
  request.set_page_size(3);
  EXPECT_EQ(std::string(admin.List(*directory_, "ops", request).status().message()),
            "page_size: at most 2");
  request.set_page_size(2);
  int seen = 0;
  for (int pages = 0; pages < 10; ++pages) {
    absl::StatusOr<tellonce::v1::ListDeliveriesResponse> page =
        admin.List(*directory_, "ops", request);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_LE(page->deliveries_size(), 2);
    seen += page->deliveries_size();
    if (page->next_page_token().empty()) break;
    request.set_page_token(page->next_page_token());
  }
  EXPECT_EQ(seen, 5);
  request.set_page_token("next");
  EXPECT_EQ(std::string(admin.List(*directory_, "ops", request).status().message()),
            "page_token: not a valid page token");

  consent::RequestLimits large;
  large.max_page_size = 1000;
  tellonce::v1::ListDeliveriesRequest big;
  big.set_page_size(800);  // refused with the old hard-coded 500
  EXPECT_TRUE(DeliveryAdmin(outbox_.get(), large).List(*directory_, "ops", big).ok());
}

TEST_F(DeliveryAdminTest, FiltersAndRetryRequestsAreChecked) {
  DeliveryAdmin admin(outbox_.get(), {});
  tellonce::v1::ListDeliveriesRequest bad_subscriber;
  bad_subscriber.set_subscriber("Tax Office");
  EXPECT_THAT(std::string(admin.List(*directory_, "ops", bad_subscriber).status().message()),
              StartsWith("subscriber: must match"));
  tellonce::v1::ListDeliveriesRequest bad_state;
  bad_state.set_state(static_cast<tellonce::v1::Delivery::State>(42));
  EXPECT_EQ(std::string(admin.List(*directory_, "ops", bad_state).status().message()),
            "state: unknown value 42");

  tellonce::v1::RetryDeliveriesRequest too_many;
  for (int i = 0; i <= kMaxRetryDeliveryIds; ++i) too_many.add_delivery_ids(absl::StrCat(i));
  EXPECT_EQ(std::string(admin.Retry(*directory_, "ops", too_many).status().message()),
            "delivery_ids: at most 1000");
  tellonce::v1::RetryDeliveriesRequest retry_subscriber;
  retry_subscriber.set_subscriber("-tax");
  EXPECT_EQ(admin.Retry(*directory_, "ops", retry_subscriber).status().code(),
            absl::StatusCode::kInvalidArgument);
  tellonce::v1::RetryDeliveriesRequest unknown;
  unknown.add_delivery_ids("12345");
  EXPECT_EQ(admin.Retry(*directory_, "ops", unknown).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace tellonce::broker
