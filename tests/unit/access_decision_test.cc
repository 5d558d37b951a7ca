// Access decisions (consent::DecideAccess) over a real RocksDB consent store and the
// sample directory, and the broker's durable access log.

#include "consent/access_decision.h"

#include <future>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "broker/access_log.h"
#include "gtest/gtest.h"
#include "storage/rocksdb/rocks_storage.h"
#include "storage/rocksdb/testing.h"
#include "tests/testing/sample_directory.h"
#include "tests/testing/temp_dir.h"

namespace tellonce::consent {
namespace {

using ::tellonce::testing::TempDir;
using tellonce::v1::StoredConsent;

const absl::Time kT0 = absl::FromUnixSeconds(1'900'000'000);
constexpr char kCitizen[] = "37605030299";

std::string SampleDirectory() {
  const char* src = std::getenv("TELLONCE_SOURCE_DIR");
  return std::string(src != nullptr ? src : ".") + "/deploy/local/directory.textproto";
}

void SetTime(absl::Time t, google::protobuf::Timestamp* ts) {
  ts->set_seconds(absl::ToUnixSeconds(t));
}

class AccessDecisionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::shared_ptr<const Directory>> directory =
        ::tellonce::testing::LoadSampleDirectory(SampleDirectory(), dir_.path());
    ASSERT_TRUE(directory.ok()) << directory.status();
    directory_ = *directory;
    absl::StatusOr<std::unique_ptr<storage::Storage>> opened =
        storage::OpenRocksStorage({.path = dir_.path() + "/db"});
    ASSERT_TRUE(opened.ok()) << opened.status();
    storage_ = *std::move(opened);
    db_ = storage::rocks::DatabaseOf(*storage_);
    store_ = consent::NewConsentStore(storage_.get());
  }

  std::string Grant(const std::string& consumer, std::vector<std::string> attributes,
                    const std::string& purpose,
                    tellonce::v1::ConsentMode mode = tellonce::v1::UNTIL_EXPIRY,
                    absl::Time expires_at = kT0 + absl::Hours(24)) {
    StoredConsent record;
    tellonce::v1::Consent& c = *record.mutable_consent();
    c.set_consent_id(NewConsentId(kT0 + absl::Milliseconds(++granted_)));
    c.set_citizen_id(kCitizen);
    c.set_consumer(consumer);
    for (const std::string& a : attributes) c.add_attributes(a);
    c.set_purpose(purpose);
    SetTime(kT0 - absl::Hours(1), c.mutable_valid_from());
    SetTime(expires_at, c.mutable_expires_at());
    c.set_mode(mode);
    c.set_portal("portal");
    c.set_status(tellonce::v1::ACTIVE);
    c.set_request_id("r" + std::to_string(granted_));
    record.set_request_fingerprint("fp" + std::to_string(granted_));
    std::promise<absl::StatusOr<ConsentStore::GrantOutcome>> done;
    store_->Grant(record, [&](absl::StatusOr<ConsentStore::GrantOutcome> r) {
      done.set_value(std::move(r));
    });
    absl::StatusOr<ConsentStore::GrantOutcome> outcome = done.get_future().get();
    EXPECT_TRUE(outcome.ok()) << outcome.status();
    return c.consent_id();
  }

  absl::Status Apply(const std::string& consent_id, bool revoke) {
    std::promise<absl::Status> done;
    auto finish = [&](absl::StatusOr<tellonce::v1::Consent> r) { done.set_value(r.status()); };
    if (revoke) {
      tellonce::v1::ConsentEvent event;
      event.set_actor("portal");
      event.set_reason("test");
      store_->Revoke(consent_id, kCitizen, std::move(event), kT0, finish);
    } else {
      store_->MarkUsed(consent_id, "tax", kT0, finish);
    }
    return done.get_future().get();
  }

  std::vector<AccessDecision> Decide(const std::string& consumer,
                                     std::vector<std::string> attributes,
                                     const std::string& purpose, absl::Time now = kT0) {
    absl::StatusOr<std::vector<AccessDecision>> d =
        DecideAccess(*directory_, *store_, consumer, kCitizen, purpose, attributes, now);
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? *d : std::vector<AccessDecision>{};
  }

  TempDir dir_;
  int granted_ = 0;
  std::shared_ptr<const Directory> directory_;
  std::unique_ptr<storage::Storage> storage_;
  storage::rocks::Database* db_ = nullptr;
  std::unique_ptr<ConsentStore> store_;
};

TEST_F(AccessDecisionTest, ActiveConsentIsTheBasisAndNamesTheProvider) {
  const std::string id = Grant("tax", {"bank.interest_paid"}, "TAX_DEDUCTION_CHECK");
  std::vector<AccessDecision> d = Decide("tax", {"bank.interest_paid"}, "TAX_DEDUCTION_CHECK");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].code, tellonce::v1::RESULT_OK);
  EXPECT_EQ(d[0].basis.consent_id(), id);
  EXPECT_EQ(d[0].provider, "bank");
  EXPECT_FALSE(d[0].spends_one_time_consent);
}

TEST_F(AccessDecisionTest, MandateAllowsWithoutConsentAndCarriesItsLegalReference) {
  std::vector<AccessDecision> d = Decide("tax", {"person.name"}, "TAX_ASSESSMENT");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].code, tellonce::v1::RESULT_OK);
  EXPECT_EQ(d[0].basis.mandate_id(), "income-tax-act-identity");
  EXPECT_FALSE(d[0].basis.legal_reference().empty());
  // The same mandate is no basis for another consumer or purpose.
  EXPECT_EQ(Decide("benefits", {"person.name"}, "TAX_ASSESSMENT")[0].code,
            tellonce::v1::RESULT_NO_BASIS);
  EXPECT_EQ(Decide("tax", {"person.name"}, "TAX_DEDUCTION_CHECK")[0].code,
            tellonce::v1::RESULT_NO_BASIS);
}

TEST_F(AccessDecisionTest, StandingConsentIsPreferredToMandateAndMandateToOneTimeConsent) {
  const std::string one_time =
      Grant("tax", {"person.name"}, "TAX_ASSESSMENT", tellonce::v1::ONE_TIME);
  std::vector<AccessDecision> d = Decide("tax", {"person.name"}, "TAX_ASSESSMENT");
  EXPECT_EQ(d[0].basis.mandate_id(), "income-tax-act-identity") << "one-time consent spent";
  const std::string standing = Grant("tax", {"person.name"}, "TAX_ASSESSMENT");
  d = Decide("tax", {"person.name"}, "TAX_ASSESSMENT");
  EXPECT_EQ(d[0].basis.consent_id(), standing);
  // Without mandate or standing consent, the one-time consent is used and must be spent.
  Grant("tax", {"person.address"}, "TAX_ASSESSMENT", tellonce::v1::ONE_TIME);
  d = Decide("tax", {"person.address"}, "TAX_ASSESSMENT");
  EXPECT_EQ(d[0].code, tellonce::v1::RESULT_OK);
  EXPECT_TRUE(d[0].spends_one_time_consent);
  EXPECT_NE(d[0].basis.consent_id(), one_time);
}

TEST_F(AccessDecisionTest, RefusalSaysWhyRevokedExpiredUsedWrongPurposeOrNoBasis) {
  const std::string revoked = Grant("tax", {"person.address"}, "TAX_DEDUCTION_CHECK");
  ASSERT_TRUE(Apply(revoked, /*revoke=*/true).ok());
  Grant("tax", {"person.date_of_birth"}, "TAX_DEDUCTION_CHECK", tellonce::v1::UNTIL_EXPIRY,
        kT0 + absl::Minutes(1));
  const std::string used =
      Grant("tax", {"bank.account_iban"}, "TAX_DEDUCTION_CHECK", tellonce::v1::ONE_TIME);
  ASSERT_TRUE(Apply(used, /*revoke=*/false).ok());
  Grant("tax", {"bank.interest_paid"}, "TAX_ASSESSMENT");

  std::vector<AccessDecision> d =
      Decide("tax",
             {"person.address", "person.date_of_birth", "bank.account_iban", "bank.interest_paid",
              "person.name", "person.shoe_size"},
             "TAX_DEDUCTION_CHECK", kT0 + absl::Minutes(2));
  ASSERT_EQ(d.size(), 6u);
  EXPECT_EQ(d[0].code, tellonce::v1::RESULT_CONSENT_REVOKED);
  EXPECT_EQ(d[0].basis.consent_id(), revoked);
  EXPECT_EQ(d[1].code, tellonce::v1::RESULT_CONSENT_EXPIRED);
  EXPECT_EQ(d[2].code, tellonce::v1::RESULT_CONSENT_USED);
  EXPECT_EQ(d[2].basis.consent_id(), used);
  EXPECT_EQ(d[3].code, tellonce::v1::RESULT_WRONG_PURPOSE);
  EXPECT_EQ(d[4].code, tellonce::v1::RESULT_NO_BASIS);
  EXPECT_EQ(d[5].code, tellonce::v1::RESULT_UNKNOWN_ATTRIBUTE);
  EXPECT_TRUE(d[5].provider.empty());
  for (const AccessDecision& x : d) EXPECT_FALSE(x.detail.empty()) << x.attribute;
}

TEST_F(AccessDecisionTest, AnotherConsumersConsentIsNoBasis) {
  Grant("benefits", {"person.address"}, "TAX_DEDUCTION_CHECK");
  std::vector<AccessDecision> d = Decide("tax", {"person.address"}, "TAX_DEDUCTION_CHECK");
  EXPECT_EQ(d[0].code, tellonce::v1::RESULT_NO_BASIS);
  EXPECT_FALSE(d[0].basis.has_consent_id());
}

class AccessLogTest : public ::testing::Test {
 protected:
  void Open() {
    absl::StatusOr<std::unique_ptr<storage::Storage>> opened =
        storage::OpenRocksStorage({.path = dir_.path() + "/db"});
    ASSERT_TRUE(opened.ok()) << opened.status();
    storage_ = *std::move(opened);
    db_ = storage::rocks::DatabaseOf(*storage_);
    log_ = std::make_unique<broker::AccessLog>(storage_.get());
  }
  void Close() {
    log_.reset();
    storage_.reset();
    db_ = nullptr;
  }
  absl::Status Append(std::vector<tellonce::v1::AccessEvent> events) {
    std::promise<absl::Status> done;
    log_->Append(std::move(events), [&](absl::Status s) { done.set_value(std::move(s)); });
    return done.get_future().get();
  }
  static tellonce::v1::AccessEvent Event(const std::string& exchange) {
    tellonce::v1::AccessEvent e;
    e.set_exchange_id(exchange);
    e.set_consumer("tax");
    e.set_citizen_id(kCitizen);
    e.add_attributes("person.name");
    return e;
  }

  TempDir dir_;
  std::unique_ptr<storage::Storage> storage_;
  storage::rocks::Database* db_ = nullptr;
  std::unique_ptr<broker::AccessLog> log_;
};

TEST_F(AccessLogTest, AppendsGetConsecutiveIndexesAndSurviveReopening) {
  Open();
  EXPECT_EQ(*log_->Size(), 0u);
  ASSERT_TRUE(Append({Event("a"), Event("b")}).ok());
  EXPECT_EQ(*log_->Size(), 2u);
  EXPECT_EQ(log_->Read(0)->exchange_id(), "a");
  ASSERT_TRUE(Append({Event("c")}).ok());
  EXPECT_EQ(*log_->Size(), 3u);
  Close();
  Open();
  EXPECT_EQ(*log_->Size(), 3u);
  EXPECT_EQ(log_->Read(1)->exchange_id(), "b");
  EXPECT_EQ(log_->Read(2)->exchange_id(), "c");
  EXPECT_TRUE(absl::IsNotFound(log_->Read(3).status()));
}

TEST_F(AccessLogTest, ConcurrentAppendsLeaveNoGapAndNoOverlap) {
  Open();
  constexpr int kThreads = 8, kPerThread = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        ASSERT_TRUE(Append({Event(std::to_string(t) + "/" + std::to_string(i))}).ok());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_EQ(*log_->Size(), static_cast<uint64_t>(kThreads * kPerThread));
  std::set<std::string> seen;
  for (uint64_t i = 0; i < kThreads * kPerThread; ++i) {
    absl::StatusOr<tellonce::v1::AccessEvent> e = log_->Read(i);
    ASSERT_TRUE(e.ok()) << i;
    EXPECT_TRUE(seen.insert(e->exchange_id()).second);
  }
}

}  // namespace
}  // namespace tellonce::consent
