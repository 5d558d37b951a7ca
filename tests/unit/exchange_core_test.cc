// The exchange core over a real RocksDB consent store, with a store wrapper that makes
// races happen on cue: a ONE_TIME consent revoked between the access decision and its
// spend must be reported as revoked, not as used.

#include <future>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "broker/access_log.h"
#include "broker/connector_pool.h"
#include "broker/exchange.h"
#include "consent/consent_store.h"
#include "consent/directory.h"
#include "gtest/gtest.h"
#include "proto/time.h"
#include "storage/rocksdb/rocks_storage.h"
#include "storage/rocksdb/testing.h"
#include "tests/testing/sample_directory.h"
#include "tests/testing/temp_dir.h"

namespace tellonce::broker {
namespace {

constexpr char kCitizen[] = "37605030299";
const absl::Time kT0 = absl::FromUnixSeconds(1790000000);

std::string SampleDirectory() {
  const char* source = std::getenv("TELLONCE_SOURCE_DIR");
  return std::string(source != nullptr ? source : ".") + "/deploy/local/directory.textproto";
}

// Forwards to a real store; the first MarkUsed of `target` is preceded by a revocation
// of that consent (the citizen revoking while an exchange is about to spend it).
class RevokeBeforeSpend final : public consent::ConsentStore {
 public:
  explicit RevokeBeforeSpend(consent::ConsentStore* real) : real_(real) {}
  void set_target(std::string id) {
    absl::MutexLock lock(&mu_);
    target_ = std::move(id);
  }

  void Grant(tellonce::v1::StoredConsent record, GrantDone done) override {
    real_->Grant(std::move(record), std::move(done));
  }
  void Revoke(const std::string& consent_id, const std::string& citizen_id,
              tellonce::v1::ConsentEvent event, absl::Time now, ConsentDone done) override {
    real_->Revoke(consent_id, citizen_id, std::move(event), now, std::move(done));
  }
  void MarkUsed(const std::string& consent_id, const std::string& actor, absl::Time now,
                ConsentDone done) override {
    bool race = false;
    {
      absl::MutexLock lock(&mu_);
      race = consent_id == target_;
      if (race) target_.clear();
    }
    if (!race) {
      real_->MarkUsed(consent_id, actor, now, std::move(done));
      return;
    }
    tellonce::v1::ConsentEvent event;
    event.set_actor("portal");
    event.set_reason("changed my mind");
    real_->Revoke(consent_id, kCitizen, std::move(event), now,
                  [this, consent_id, actor, now,
                   done = std::move(done)](absl::StatusOr<tellonce::v1::Consent> revoked) mutable {
                    EXPECT_TRUE(revoked.ok()) << revoked.status();
                    real_->MarkUsed(consent_id, actor, now, std::move(done));
                  });
  }
  absl::StatusOr<tellonce::v1::StoredConsent> Get(const std::string& consent_id,
                                                  const std::string& citizen_id,
                                                  absl::Time now) override {
    return real_->Get(consent_id, citizen_id, now);
  }
  absl::StatusOr<Page> List(const std::string& citizen_id, tellonce::v1::ConsentStatus status,
                            int page_size, const std::string& page_token, absl::Time now) override {
    return real_->List(citizen_id, status, page_size, page_token, now);
  }
  absl::StatusOr<std::vector<tellonce::v1::Consent>> FindActive(const std::string& citizen_id,
                                                                const std::string& consumer,
                                                                absl::Time now) override {
    return real_->FindActive(citizen_id, consumer, now);
  }

 private:
  consent::ConsentStore* real_;
  absl::Mutex mu_;
  std::string target_ ABSL_GUARDED_BY(mu_);
};

class ExchangeCoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::shared_ptr<const consent::Directory>> directory =
        testing::LoadSampleDirectory(SampleDirectory(), dir_.path());
    ASSERT_TRUE(directory.ok()) << directory.status();
    holder_ = std::make_unique<consent::DirectoryHolder>(*directory);
    absl::StatusOr<std::unique_ptr<storage::Storage>> opened =
        storage::OpenRocksStorage({.path = dir_.path() + "/db"});
    ASSERT_TRUE(opened.ok()) << opened.status();
    storage_ = *std::move(opened);
    db_ = storage::rocks::DatabaseOf(*storage_);
    real_store_ = consent::NewConsentStore(storage_.get());
    store_ = std::make_unique<RevokeBeforeSpend>(real_store_.get());
    log_ = std::make_unique<AccessLog>(storage_.get());
    connectors_ = std::make_unique<ConnectorPool>(ConnectorPool::Options{});
    exchange_ =
        std::make_unique<Exchange>(holder_.get(), store_.get(), log_.get(), connectors_.get(),
                                   ExchangeOptions{.clock = [] { return kT0; }});
  }
  void TearDown() override {
    exchange_.reset();
    connectors_.reset();
    storage_->Close();  // drains before the log and the store go
  }

  std::string GrantOneTime(const std::string& attribute, const std::string& purpose) {
    tellonce::v1::StoredConsent record;
    tellonce::v1::Consent& c = *record.mutable_consent();
    c.set_consent_id(consent::NewConsentId(kT0 + absl::Milliseconds(++granted_)));
    c.set_citizen_id(kCitizen);
    c.set_consumer("tax");
    c.add_attributes(attribute);
    c.set_purpose(purpose);
    *c.mutable_valid_from() = ToProtoTime(kT0 - absl::Hours(1));
    *c.mutable_expires_at() = ToProtoTime(kT0 + absl::Hours(24));
    c.set_mode(tellonce::v1::ONE_TIME);
    c.set_portal("portal");
    c.set_status(tellonce::v1::ACTIVE);
    c.set_request_id("r" + std::to_string(granted_));
    record.set_request_fingerprint("fp" + std::to_string(granted_));
    std::promise<absl::StatusOr<consent::ConsentStore::GrantOutcome>> done;
    real_store_->Grant(record, [&](auto r) { done.set_value(std::move(r)); });
    absl::StatusOr<consent::ConsentStore::GrantOutcome> outcome = done.get_future().get();
    EXPECT_TRUE(outcome.ok()) << outcome.status();
    return c.consent_id();
  }

  absl::StatusOr<tellonce::v1::GetAttributesResponse> Fetch(const std::string& attribute,
                                                            const std::string& purpose) {
    tellonce::v1::GetAttributesRequest request;
    request.set_request_id("req-" + std::to_string(++fetched_));
    request.set_citizen_id(kCitizen);
    request.add_attributes(attribute);
    request.set_purpose(purpose);
    std::promise<absl::StatusOr<tellonce::v1::GetAttributesResponse>> done;
    exchange_->GetAttributes("tax", request, kT0 + absl::Seconds(5),
                             [&](auto r) { done.set_value(std::move(r)); });
    return done.get_future().get();
  }

  testing::TempDir dir_;
  std::unique_ptr<consent::DirectoryHolder> holder_;
  std::unique_ptr<storage::Storage> storage_;
  storage::rocks::Database* db_ = nullptr;
  std::unique_ptr<consent::ConsentStore> real_store_;
  std::unique_ptr<RevokeBeforeSpend> store_;
  std::unique_ptr<AccessLog> log_;
  std::unique_ptr<ConnectorPool> connectors_;
  std::unique_ptr<Exchange> exchange_;
  int granted_ = 0;
  int fetched_ = 0;
};

TEST_F(ExchangeCoreTest, OneTimeConsentRevokedBeforeItsSpendIsReportedAsRevokedNotUsed) {
  const std::string consent = GrantOneTime("bank.interest_paid", "TAX_DEDUCTION_CHECK");
  store_->set_target(consent);
  absl::StatusOr<tellonce::v1::GetAttributesResponse> response =
      Fetch("bank.interest_paid", "TAX_DEDUCTION_CHECK");
  ASSERT_TRUE(response.ok()) << response.status();
  ASSERT_EQ(response->results_size(), 1);
  EXPECT_EQ(response->results(0).code(), tellonce::v1::RESULT_CONSENT_REVOKED)
      << tellonce::v1::ResultCode_Name(response->results(0).code()) << ": "
      << response->results(0).detail();
  EXPECT_FALSE(response->results(0).has_value());
  // The consent is revoked, not spent.
  absl::StatusOr<tellonce::v1::StoredConsent> stored = real_store_->Get(consent, kCitizen, kT0);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->consent().status(), tellonce::v1::REVOKED);
}

}  // namespace
}  // namespace tellonce::broker
