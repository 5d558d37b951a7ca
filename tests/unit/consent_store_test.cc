// The RocksDB consent store, on a real database in a temporary directory.

#include "consent/consent_store.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "storage/rocksdb/rocks_storage.h"
#include "storage/rocksdb/testing.h"
#include "tests/testing/temp_dir.h"

namespace tellonce::consent {
namespace {

using storage::rocks::Database;
using storage::rocks::FromRocks;
using tellonce::v1::Consent;
using tellonce::v1::ConsentEvent;
using tellonce::v1::StoredConsent;

// A directory made with mkdtemp, removed with everything in it at the end.
using ::tellonce::testing::TempDir;

// Fixed times far from the test's real time, so nothing depends on the wall clock.
const absl::Time kT0 = absl::FromUnixSeconds(1'900'000'000);

void SetTime(absl::Time t, google::protobuf::Timestamp* ts) {
  ts->set_seconds(absl::ToUnixSeconds(t));
  ts->set_nanos(0);
}

struct GrantSpec {
  std::string citizen = "39001010001";
  std::string consumer = "tax";
  std::string portal = "portal-a";
  std::string request_id = "";
  absl::Time captured = kT0;
  absl::Time valid_from = kT0;
  absl::Time expires_at = kT0 + absl::Hours(24);
  tellonce::v1::ConsentMode mode = tellonce::v1::UNTIL_EXPIRY;
  std::string fingerprint = "";  // defaults to one derived from request_id
};

// A record as the registry hands it to the store.
StoredConsent MakeRecord(const GrantSpec& spec) {
  StoredConsent record;
  Consent& c = *record.mutable_consent();
  c.set_consent_id(NewConsentId(spec.captured));
  c.set_citizen_id(spec.citizen);
  c.set_consumer(spec.consumer);
  c.add_attributes("person.address");
  c.add_attributes("person.name");
  c.set_purpose("TAX_DEDUCTION_CHECK");
  SetTime(spec.valid_from, c.mutable_valid_from());
  SetTime(spec.expires_at, c.mutable_expires_at());
  c.set_mode(spec.mode);
  c.set_portal(spec.portal);
  SetTime(spec.captured, c.mutable_captured_at());
  c.set_status(tellonce::v1::ACTIVE);
  ConsentEvent* e = c.add_events();
  e->set_kind(ConsentEvent::GRANTED);
  SetTime(spec.captured, e->mutable_at());
  e->set_actor(spec.portal);
  c.set_request_id(spec.request_id);
  record.mutable_receipt()->set_body("receipt body for " + c.consent_id());
  record.mutable_receipt()->set_signature("signature");
  record.mutable_receipt()->set_signature_algorithm("ecdsa-p256-sha256");
  record.set_request_fingerprint(spec.fingerprint.empty() ? "fp:" + spec.request_id
                                                          : spec.fingerprint);
  return record;
}

class ConsentStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }

  void Open() {
    absl::StatusOr<std::unique_ptr<storage::Storage>> opened =
        storage::OpenRocksStorage({.path = dir_.path() + "/db"});
    ASSERT_TRUE(opened.ok()) << opened.status();
    storage_ = *std::move(opened);
    db_ = storage::rocks::DatabaseOf(*storage_);
    store_ = consent::NewConsentStore(storage_.get());
  }

  void Close() {
    store_.reset();
    storage_.reset();
    db_ = nullptr;
  }

  absl::StatusOr<ConsentStore::GrantOutcome> Grant(StoredConsent record) {
    std::promise<absl::StatusOr<ConsentStore::GrantOutcome>> result;
    store_->Grant(std::move(record), [&](absl::StatusOr<ConsentStore::GrantOutcome> r) {
      result.set_value(std::move(r));
    });
    return result.get_future().get();
  }

  // Grants and returns the stored consent; fails the test on error.
  Consent MustGrant(const GrantSpec& spec) {
    absl::StatusOr<ConsentStore::GrantOutcome> outcome = Grant(MakeRecord(spec));
    EXPECT_TRUE(outcome.ok()) << outcome.status();
    return outcome.ok() ? outcome->consent : Consent();
  }

  absl::StatusOr<Consent> Revoke(const std::string& id, const std::string& citizen, absl::Time now,
                                 const std::string& reason = "changed my mind") {
    std::promise<absl::StatusOr<Consent>> result;
    tellonce::v1::ConsentEvent event;
    event.set_actor("portal-a");
    event.set_reason(reason);
    store_->Revoke(id, citizen, std::move(event), now,
                   [&](absl::StatusOr<Consent> r) { result.set_value(std::move(r)); });
    return result.get_future().get();
  }

  absl::StatusOr<Consent> MarkUsed(const std::string& id, absl::Time now) {
    std::promise<absl::StatusOr<Consent>> result;
    store_->MarkUsed(id, "broker", now,
                     [&](absl::StatusOr<Consent> r) { result.set_value(std::move(r)); });
    return result.get_future().get();
  }

  // All keys of a family, in order (a full scan, so total order rather than prefix mode).
  std::vector<std::string> Keys(storage::rocks::Family family) {
    rocksdb::ReadOptions options;
    options.total_order_seek = true;
    std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(options, db_->family(family)));
    std::vector<std::string> keys;
    for (it->SeekToFirst(); it->Valid(); it->Next()) keys.push_back(it->key().ToString());
    EXPECT_TRUE(it->status().ok()) << it->status().ToString();
    return keys;
  }

  std::vector<std::string> Ids(const std::vector<Consent>& consents) {
    std::vector<std::string> ids;
    for (const Consent& c : consents) ids.push_back(c.consent_id());
    return ids;
  }

  TempDir dir_;
  std::unique_ptr<storage::Storage> storage_;
  storage::rocks::Database* db_ = nullptr;
  std::unique_ptr<ConsentStore> store_;
};

TEST_F(ConsentStoreTest, GrantedConsentIsReadableWithItsReceipt) {
  StoredConsent record = MakeRecord({.request_id = "r1"});
  absl::StatusOr<ConsentStore::GrantOutcome> outcome = Grant(record);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_FALSE(outcome->replayed);
  EXPECT_EQ(outcome->consent.SerializeAsString(), record.consent().SerializeAsString());

  absl::StatusOr<StoredConsent> got =
      store_->Get(record.consent().consent_id(), "39001010001", kT0 + absl::Hours(1));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->SerializeAsString(), record.SerializeAsString());
  EXPECT_EQ(got->consent().status(), tellonce::v1::ACTIVE);
}

TEST_F(ConsentStoreTest, GetByAnotherCitizenIsNotFound) {
  Consent c = MustGrant({.request_id = "r1"});
  EXPECT_TRUE(absl::IsNotFound(store_->Get(c.consent_id(), "39001010002", kT0).status()));
}

TEST_F(ConsentStoreTest, GetOfUnknownIdIsNotFound) {
  EXPECT_TRUE(
      absl::IsNotFound(store_->Get("01ARZ3NDEKTSV4RRFFQ69G5FAV", "39001010001", kT0).status()));
  EXPECT_TRUE(absl::IsNotFound(store_->Get("", "39001010001", kT0).status()));
}

TEST_F(ConsentStoreTest, ListReturnsOnlyTheCitizensConsentsOldestFirst) {
  std::vector<std::string> mine;
  for (int i = 0; i < 4; ++i) {
    // Capture times deliberately not in submission order.
    absl::Time captured = kT0 + absl::Minutes((i * 7) % 4);
    mine.push_back(
        MustGrant({.request_id = absl::StrCat("m", i), .captured = captured}).consent_id());
  }
  // Another citizen whose id extends this one's: the separator keeps them apart.
  MustGrant({.citizen = "390010100011", .request_id = "other1"});
  MustGrant({.citizen = "3900101000", .request_id = "other2"});

  absl::StatusOr<ConsentStore::Page> page =
      store_->List("39001010001", tellonce::v1::CONSENT_STATUS_UNSPECIFIED, 10, "", kT0);
  ASSERT_TRUE(page.ok()) << page.status();
  std::vector<std::string> expected = mine;
  std::sort(expected.begin(), expected.end());  // ids sort by capture time
  EXPECT_EQ(Ids(page->consents), expected);
  EXPECT_TRUE(page->next_page_token.empty());
  for (size_t i = 1; i < page->consents.size(); ++i) {
    EXPECT_LE(page->consents[i - 1].captured_at().seconds(),
              page->consents[i].captured_at().seconds());
  }
}

TEST_F(ConsentStoreTest, ListPagesWithTokensUntilExhausted) {
  std::vector<std::string> all;
  for (int i = 0; i < 5; ++i) {
    all.push_back(
        MustGrant({.request_id = absl::StrCat("p", i), .captured = kT0 + absl::Seconds(i)})
            .consent_id());
  }
  std::vector<std::string> seen;
  std::vector<size_t> sizes;
  std::string token;
  for (int round = 0; round < 10; ++round) {
    absl::StatusOr<ConsentStore::Page> page =
        store_->List("39001010001", tellonce::v1::CONSENT_STATUS_UNSPECIFIED, 2, token, kT0);
    ASSERT_TRUE(page.ok()) << page.status();
    sizes.push_back(page->consents.size());
    for (const Consent& c : page->consents) seen.push_back(c.consent_id());
    if (page->next_page_token.empty()) break;
    EXPECT_EQ(page->next_page_token, page->consents.back().consent_id());
    token = page->next_page_token;
  }
  EXPECT_EQ(seen, all);
  EXPECT_EQ(sizes, (std::vector<size_t>{2, 2, 1}));

  // A page that ends exactly at the last consent says there is nothing more.
  absl::StatusOr<ConsentStore::Page> last =
      store_->List("39001010001", tellonce::v1::CONSENT_STATUS_UNSPECIFIED, 2, all[2], kT0);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(Ids(last->consents), (std::vector<std::string>{all[3], all[4]}));
  EXPECT_TRUE(last->next_page_token.empty());
}

TEST_F(ConsentStoreTest, ListWithPageSizeZeroUsesTheDefault) {
  for (int i = 0; i < 55; ++i) {
    store_->Grant(MakeRecord({.request_id = absl::StrCat("d", i)}),
                  [](auto r) { ASSERT_TRUE(r.ok()) << r.status(); });
  }
  ASSERT_TRUE(
      storage_->Run([](storage::Transaction&) { return absl::OkStatus(); }).ok());  // barrier
  absl::StatusOr<ConsentStore::Page> page =
      store_->List("39001010001", tellonce::v1::CONSENT_STATUS_UNSPECIFIED, 0, "", kT0);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->consents.size(), 50u);
  EXPECT_FALSE(page->next_page_token.empty());
}

TEST_F(ConsentStoreTest, ListFiltersByEffectiveStatus) {
  const absl::Time now = kT0 + absl::Hours(2);
  Consent active1 = MustGrant({.request_id = "a1", .captured = kT0});
  Consent revoked = MustGrant({.request_id = "rv", .captured = kT0 + absl::Seconds(1)});
  Consent expired = MustGrant(
      {.request_id = "ex", .captured = kT0 + absl::Seconds(2), .expires_at = kT0 + absl::Hours(1)});
  Consent used = MustGrant(
      {.request_id = "us", .captured = kT0 + absl::Seconds(3), .mode = tellonce::v1::ONE_TIME});
  Consent active2 = MustGrant({.request_id = "a2", .captured = kT0 + absl::Seconds(4)});
  ASSERT_TRUE(Revoke(revoked.consent_id(), "39001010001", now).ok());
  ASSERT_TRUE(MarkUsed(used.consent_id(), now).ok());

  auto list = [&](tellonce::v1::ConsentStatus status, int page_size, const std::string& token) {
    absl::StatusOr<ConsentStore::Page> page =
        store_->List("39001010001", status, page_size, token, now);
    EXPECT_TRUE(page.ok()) << page.status();
    return page.ok() ? *page : ConsentStore::Page();
  };
  EXPECT_EQ(Ids(list(tellonce::v1::ACTIVE, 10, "").consents),
            (std::vector<std::string>{active1.consent_id(), active2.consent_id()}));
  EXPECT_EQ(Ids(list(tellonce::v1::REVOKED, 10, "").consents),
            (std::vector<std::string>{revoked.consent_id()}));
  EXPECT_EQ(Ids(list(tellonce::v1::USED, 10, "").consents),
            (std::vector<std::string>{used.consent_id()}));
  ConsentStore::Page expired_page = list(tellonce::v1::EXPIRED, 10, "");
  ASSERT_EQ(Ids(expired_page.consents), (std::vector<std::string>{expired.consent_id()}));
  EXPECT_EQ(expired_page.consents[0].status(), tellonce::v1::EXPIRED);

  // Paging with a filter skips the non-matching consents in between.
  ConsentStore::Page first = list(tellonce::v1::ACTIVE, 1, "");
  EXPECT_EQ(Ids(first.consents), (std::vector<std::string>{active1.consent_id()}));
  ASSERT_EQ(first.next_page_token, active1.consent_id());
  ConsentStore::Page second = list(tellonce::v1::ACTIVE, 1, first.next_page_token);
  EXPECT_EQ(Ids(second.consents), (std::vector<std::string>{active2.consent_id()}));
  EXPECT_TRUE(second.next_page_token.empty());
}

TEST_F(ConsentStoreTest, RevokeAppendsAnEventAndEndsAccess) {
  Consent c = MustGrant({.request_id = "r1"});
  const absl::Time when = kT0 + absl::Minutes(30);
  absl::StatusOr<Consent> revoked = Revoke(c.consent_id(), "39001010001", when, "moved abroad");
  ASSERT_TRUE(revoked.ok()) << revoked.status();
  EXPECT_EQ(revoked->status(), tellonce::v1::REVOKED);
  ASSERT_EQ(revoked->events_size(), 2);
  EXPECT_EQ(revoked->events(1).kind(), ConsentEvent::REVOKED);
  EXPECT_EQ(revoked->events(1).at().seconds(), absl::ToUnixSeconds(when));
  EXPECT_EQ(revoked->events(1).actor(), "portal-a");
  EXPECT_EQ(revoked->events(1).reason(), "moved abroad");

  absl::StatusOr<StoredConsent> stored = store_->Get(c.consent_id(), "39001010001", when);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->consent().SerializeAsString(), revoked->SerializeAsString());
  absl::StatusOr<std::vector<Consent>> active = store_->FindActive("39001010001", "tax", when);
  ASSERT_TRUE(active.ok());
  EXPECT_TRUE(active->empty());
}

TEST_F(ConsentStoreTest, RevokingTwiceIsFailedPreconditionAndChangesNothing) {
  Consent c = MustGrant({.request_id = "r1"});
  absl::StatusOr<Consent> first = Revoke(c.consent_id(), "39001010001", kT0 + absl::Minutes(1));
  ASSERT_TRUE(first.ok());
  absl::StatusOr<Consent> second = Revoke(c.consent_id(), "39001010001", kT0 + absl::Minutes(2));
  EXPECT_TRUE(absl::IsFailedPrecondition(second.status())) << second.status();
  EXPECT_EQ(second.status().message(), "consent is REVOKED");
  // Even past expiry a revoked consent stays REVOKED.
  absl::StatusOr<Consent> late = Revoke(c.consent_id(), "39001010001", kT0 + absl::Hours(48));
  EXPECT_TRUE(absl::IsFailedPrecondition(late.status())) << late.status();
  absl::StatusOr<StoredConsent> stored =
      store_->Get(c.consent_id(), "39001010001", kT0 + absl::Hours(48));
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->consent().status(), tellonce::v1::REVOKED);
  EXPECT_EQ(stored->consent().SerializeAsString(), first->SerializeAsString());
}

TEST_F(ConsentStoreTest, RevokeByAnotherCitizenIsNotFoundAndChangesNothing) {
  Consent c = MustGrant({.request_id = "r1"});
  absl::StatusOr<Consent> r = Revoke(c.consent_id(), "39001010002", kT0 + absl::Minutes(1));
  EXPECT_TRUE(absl::IsNotFound(r.status())) << r.status();
  EXPECT_TRUE(absl::IsNotFound(Revoke("01ARZ3NDEKTSV4RRFFQ69G5FAV", "39001010001", kT0).status()));
  absl::StatusOr<StoredConsent> stored = store_->Get(c.consent_id(), "39001010001", kT0);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->consent().status(), tellonce::v1::ACTIVE);
  EXPECT_EQ(stored->consent().events_size(), 1);
}

TEST_F(ConsentStoreTest, RevokeOfExpiredConsentIsFailedPrecondition) {
  Consent c = MustGrant({.request_id = "r1", .expires_at = kT0 + absl::Hours(1)});
  absl::StatusOr<Consent> r = Revoke(c.consent_id(), "39001010001", kT0 + absl::Hours(1));
  ASSERT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  EXPECT_EQ(r.status().message(), "consent is EXPIRED");
  absl::StatusOr<StoredConsent> stored = store_->Get(c.consent_id(), "39001010001", kT0);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->consent().status(), tellonce::v1::ACTIVE);  // not rewritten
}

TEST_F(ConsentStoreTest, RevokeOfUsedConsentIsFailedPrecondition) {
  Consent c = MustGrant({.request_id = "r1", .mode = tellonce::v1::ONE_TIME});
  ASSERT_TRUE(MarkUsed(c.consent_id(), kT0 + absl::Minutes(1)).ok());
  absl::StatusOr<Consent> r = Revoke(c.consent_id(), "39001010001", kT0 + absl::Minutes(2));
  ASSERT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  EXPECT_EQ(r.status().message(), "consent is USED");
}

TEST_F(ConsentStoreTest, ExpiryIsEvaluatedOnReadWithoutRewritingTheRecord) {
  const absl::Time expires = kT0 + absl::Hours(1);
  Consent c = MustGrant({.request_id = "r1", .expires_at = expires});

  absl::StatusOr<StoredConsent> before =
      store_->Get(c.consent_id(), "39001010001", expires - absl::Seconds(1));
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before->consent().status(), tellonce::v1::ACTIVE);
  EXPECT_EQ(before->consent().events_size(), 1);

  absl::StatusOr<StoredConsent> after = store_->Get(c.consent_id(), "39001010001", expires);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->consent().status(), tellonce::v1::EXPIRED);
  ASSERT_EQ(after->consent().events_size(), 2);
  EXPECT_EQ(after->consent().events(1).kind(), ConsentEvent::EXPIRED);
  EXPECT_EQ(after->consent().events(1).at().seconds(), absl::ToUnixSeconds(expires));
  EXPECT_EQ(after->consent().events(1).actor(), "broker");

  // Reading "in the past" again shows it active: nothing was written.
  absl::StatusOr<StoredConsent> again = store_->Get(c.consent_id(), "39001010001", kT0);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->consent().status(), tellonce::v1::ACTIVE);

  absl::StatusOr<std::vector<Consent>> active = store_->FindActive("39001010001", "tax", expires);
  ASSERT_TRUE(active.ok());
  EXPECT_TRUE(active->empty());
}

TEST_F(ConsentStoreTest, FindActiveReturnsOnlyValidActiveConsentsOfThatConsumer) {
  const absl::Time now = kT0 + absl::Hours(2);
  Consent a = MustGrant({.request_id = "a", .captured = kT0, .expires_at = kT0 + absl::Hours(240)});
  Consent b = MustGrant({.request_id = "b",
                         .captured = kT0 + absl::Seconds(1),
                         .expires_at = kT0 + absl::Hours(240)});
  MustGrant(
      {.consumer = "bank", .request_id = "other-consumer", .expires_at = kT0 + absl::Hours(240)});
  MustGrant(
      {.consumer = "ta", .request_id = "prefix-consumer", .expires_at = kT0 + absl::Hours(240)});
  MustGrant({.citizen = "390010100011",
             .request_id = "prefix-citizen",
             .expires_at = kT0 + absl::Hours(240)});
  MustGrant({.request_id = "future",
             .valid_from = now + absl::Hours(1),
             .expires_at = kT0 + absl::Hours(240)});
  MustGrant({.request_id = "expired", .expires_at = kT0 + absl::Hours(1)});
  Consent revoked = MustGrant({.request_id = "revoked", .expires_at = kT0 + absl::Hours(240)});
  ASSERT_TRUE(Revoke(revoked.consent_id(), "39001010001", now).ok());

  absl::StatusOr<std::vector<Consent>> active = store_->FindActive("39001010001", "tax", now);
  ASSERT_TRUE(active.ok()) << active.status();
  EXPECT_EQ(Ids(*active), (std::vector<std::string>{a.consent_id(), b.consent_id()}));
  for (const Consent& c : *active) EXPECT_EQ(c.status(), tellonce::v1::ACTIVE);

  absl::StatusOr<std::vector<Consent>> none = store_->FindActive("39001010009", "tax", now);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(ConsentStoreTest, AccessIndexEntryHoldsOnlyWhatADecisionReads) {
  Consent granted = MustGrant({.request_id = "slim", .mode = tellonce::v1::ONE_TIME});
  const std::string nul(1, '\0');
  const std::string key =
      absl::StrCat("a", nul, "39001010001", nul, "tax", nul, granted.consent_id());
  std::string value;
  ASSERT_TRUE(db_->db()->Get({}, db_->family(storage::rocks::Family::kIndexes), key, &value).ok());
  Consent entry;
  ASSERT_TRUE(entry.ParseFromString(value));
  // The consent id stays in the value: builds from before this layout return the value
  // as the consent.
  Consent expected;
  expected.set_consent_id(granted.consent_id());
  *expected.mutable_attributes() = granted.attributes();
  expected.set_purpose(granted.purpose());
  *expected.mutable_valid_from() = granted.valid_from();
  *expected.mutable_expires_at() = granted.expires_at();
  expected.set_mode(tellonce::v1::ONE_TIME);
  expected.set_status(tellonce::v1::ACTIVE);
  EXPECT_EQ(entry.SerializeAsString(), expected.SerializeAsString());

  // FindActive adds citizen and consumer from the key.
  absl::StatusOr<std::vector<Consent>> active =
      store_->FindActive("39001010001", "tax", kT0 + absl::Minutes(1));
  ASSERT_TRUE(active.ok()) << active.status();
  ASSERT_EQ(active->size(), 1u);
  expected.set_citizen_id("39001010001");
  expected.set_consumer("tax");
  EXPECT_EQ((*active)[0].SerializeAsString(), expected.SerializeAsString());
}

TEST_F(ConsentStoreTest, FindActiveReadsAccessIndexEntriesOfOlderBuilds) {
  const absl::Time now = kT0 + absl::Minutes(5);
  Consent whole = MustGrant({.request_id = "whole"});
  Consent empty = MustGrant({.request_id = "empty", .captured = kT0 + absl::Seconds(1)});
  Consent revoked = MustGrant({.request_id = "revoked", .captured = kT0 + absl::Seconds(2)});
  ASSERT_TRUE(Revoke(revoked.consent_id(), "39001010001", now).ok());
  // Entries as older builds wrote them: the whole consent, or an empty value (the
  // record is read instead, and decides: the revoked consent's entry is put back here
  // only to show that).
  const std::string nul(1, '\0');
  auto key = [&](const Consent& c) {
    return absl::StrCat("a", nul, "39001010001", nul, "tax", nul, c.consent_id());
  };
  rocksdb::ColumnFamilyHandle* indexes = db_->family(storage::rocks::Family::kIndexes);
  ASSERT_TRUE(db_->db()->Put({}, indexes, key(whole), whole.SerializeAsString()).ok());
  ASSERT_TRUE(db_->db()->Put({}, indexes, key(empty), "").ok());
  ASSERT_TRUE(db_->db()->Put({}, indexes, key(revoked), "").ok());

  absl::StatusOr<std::vector<Consent>> active = store_->FindActive("39001010001", "tax", now);
  ASSERT_TRUE(active.ok()) << active.status();
  ASSERT_EQ(active->size(), 2u);
  EXPECT_EQ((*active)[0].SerializeAsString(), whole.SerializeAsString());
  EXPECT_EQ((*active)[1].SerializeAsString(), empty.SerializeAsString());
}

TEST_F(ConsentStoreTest, IndexEntriesMatchRecordsAfterGrantRevokeAndUse) {
  const absl::Time now = kT0 + absl::Minutes(5);
  std::vector<Consent> consents;
  for (int i = 0; i < 6; ++i) {
    consents.push_back(
        MustGrant({.citizen = absl::StrCat("3900101000", i % 2),
                   .consumer = i % 3 ? "tax" : "bank",
                   .request_id = absl::StrCat("x", i),
                   .mode = i % 2 ? tellonce::v1::ONE_TIME : tellonce::v1::UNTIL_EXPIRY}));
  }
  ASSERT_TRUE(Revoke(consents[0].consent_id(), consents[0].citizen_id(), now).ok());
  ASSERT_TRUE(MarkUsed(consents[1].consent_id(), now).ok());

  std::vector<std::string> records = Keys(storage::rocks::Family::kConsents);
  std::set<std::string> expected_index;
  for (const std::string& id : records) {
    std::string bytes;
    ASSERT_TRUE(
        db_->db()->Get({}, db_->family(storage::rocks::Family::kConsents), id, &bytes).ok());
    StoredConsent record;
    ASSERT_TRUE(record.ParseFromString(bytes));
    const Consent& c = record.consent();
    std::string nul(1, '\0');
    expected_index.insert(absl::StrCat("c", nul, c.citizen_id(), nul, id));
    if (c.status() == tellonce::v1::ACTIVE) {
      expected_index.insert(absl::StrCat("a", nul, c.citizen_id(), nul, c.consumer(), nul, id));
    }
    expected_index.insert(absl::StrCat("r", nul, c.portal(), nul, c.request_id()));
    std::string by_request;
    ASSERT_TRUE(db_->db()
                    ->Get({}, db_->family(storage::rocks::Family::kIndexes),
                          absl::StrCat("r", nul, c.portal(), nul, c.request_id()), &by_request)
                    .ok());
    EXPECT_EQ(by_request, id);
  }
  EXPECT_EQ(records.size(), 6u);
  std::vector<std::string> index = Keys(storage::rocks::Family::kIndexes);
  EXPECT_EQ(std::set<std::string>(index.begin(), index.end()), expected_index);
  EXPECT_EQ(index.size(), 6u + 6u + 4u);  // c and r per consent, a for the 4 still active
}

TEST_F(ConsentStoreTest, RetriedGrantReturnsTheFirstResultAndStoresNothing) {
  GrantSpec spec{.request_id = "retry-me"};
  Consent first = MustGrant(spec);
  std::vector<std::string> records = Keys(storage::rocks::Family::kConsents);
  std::vector<std::string> index = Keys(storage::rocks::Family::kIndexes);

  // The portal retries: same request, a fresh id and capture time.
  spec.captured = kT0 + absl::Seconds(3);
  StoredConsent retry = MakeRecord(spec);
  ASSERT_NE(retry.consent().consent_id(), first.consent_id());
  absl::StatusOr<ConsentStore::GrantOutcome> again = Grant(retry);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(again->consent.SerializeAsString(), first.SerializeAsString());
  EXPECT_EQ(again->receipt.body(), "receipt body for " + first.consent_id());

  EXPECT_EQ(Keys(storage::rocks::Family::kConsents), records);
  EXPECT_EQ(Keys(storage::rocks::Family::kIndexes), index);
}

TEST_F(ConsentStoreTest, RetryAfterExpiryReportsTheConsentExpired) {
  GrantSpec spec{.request_id = "late-retry", .expires_at = kT0 + absl::Hours(1)};
  MustGrant(spec);
  spec.captured = kT0 + absl::Hours(2);
  absl::StatusOr<ConsentStore::GrantOutcome> again = Grant(MakeRecord(spec));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(again->consent.status(), tellonce::v1::EXPIRED);
}

TEST_F(ConsentStoreTest, ReusedRequestIdWithDifferentContentIsInvalidArgument) {
  MustGrant({.request_id = "dup"});
  std::vector<std::string> records = Keys(storage::rocks::Family::kConsents);
  std::vector<std::string> index = Keys(storage::rocks::Family::kIndexes);

  absl::StatusOr<ConsentStore::GrantOutcome> other =
      Grant(MakeRecord({.consumer = "bank", .request_id = "dup", .fingerprint = "different"}));
  ASSERT_TRUE(absl::IsInvalidArgument(other.status())) << other.status();
  EXPECT_EQ(other.status().message(), "request_id: already used for a different consent");
  EXPECT_EQ(Keys(storage::rocks::Family::kConsents), records);
  EXPECT_EQ(Keys(storage::rocks::Family::kIndexes), index);
}

TEST_F(ConsentStoreTest, RequestIdsAreScopedToThePortal) {
  Consent a = MustGrant({.portal = "portal-a", .request_id = "same"});
  absl::StatusOr<ConsentStore::GrantOutcome> b =
      Grant(MakeRecord({.portal = "portal-b", .request_id = "same", .fingerprint = "other"}));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_FALSE(b->replayed);
  EXPECT_NE(b->consent.consent_id(), a.consent_id());
  EXPECT_EQ(Keys(storage::rocks::Family::kConsents).size(), 2u);
}

TEST_F(ConsentStoreTest, ConcurrentRetriesOfOneGrantStoreOneRecord) {
  constexpr int kRetries = 16;
  // Hold the commit thread so that all retries land in one commit group, where the
  // first one's writes are staged but not yet in the database.
  absl::Notification started, release;
  storage_->Submit(
      [&](storage::Transaction&) {
        started.Notify();
        release.WaitForNotification();
        return absl::OkStatus();
      },
      [](absl::Status) {});
  started.WaitForNotification();
  std::vector<std::promise<absl::StatusOr<ConsentStore::GrantOutcome>>> results(kRetries);
  std::vector<std::thread> threads;
  for (int i = 0; i < kRetries; ++i) {
    threads.emplace_back([&, i] {
      store_->Grant(MakeRecord({.request_id = "racy", .captured = kT0 + absl::Milliseconds(i)}),
                    [&, i](auto r) { results[i].set_value(std::move(r)); });
    });
  }
  for (std::thread& t : threads) t.join();
  release.Notify();
  std::set<std::string> ids;
  int fresh = 0;
  for (auto& result : results) {
    absl::StatusOr<ConsentStore::GrantOutcome> r = result.get_future().get();
    ASSERT_TRUE(r.ok()) << r.status();
    ids.insert(r->consent.consent_id());
    fresh += r->replayed ? 0 : 1;
  }
  EXPECT_EQ(fresh, 1);
  EXPECT_EQ(ids.size(), 1u);
  EXPECT_EQ(Keys(storage::rocks::Family::kConsents).size(), 1u);
}

TEST_F(ConsentStoreTest, MarkUsedSucceedsExactlyOnceUnderConcurrentCalls) {
  constexpr int kConsents = 8;
  constexpr int kThreads = 16;
  std::vector<std::string> ids;
  for (int i = 0; i < kConsents; ++i) {
    ids.push_back(MustGrant({.request_id = absl::StrCat("once", i), .mode = tellonce::v1::ONE_TIME})
                      .consent_id());
  }
  std::atomic<int> succeeded[kConsents] = {};
  std::atomic<int> refused[kConsents] = {};
  std::atomic<int> other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kConsents; ++i) {
        absl::StatusOr<Consent> r = MarkUsed(ids[i], kT0 + absl::Minutes(1));
        if (r.ok()) {
          ++succeeded[i];
        } else if (absl::IsFailedPrecondition(r.status()) &&
                   r.status().message() == "consent is USED") {
          ++refused[i];
        } else {
          ++other;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(other.load(), 0);
  for (int i = 0; i < kConsents; ++i) {
    EXPECT_EQ(succeeded[i].load(), 1) << i;
    EXPECT_EQ(refused[i].load(), kThreads - 1) << i;
    absl::StatusOr<StoredConsent> stored = store_->Get(ids[i], "39001010001", kT0);
    ASSERT_TRUE(stored.ok());
    EXPECT_EQ(stored->consent().status(), tellonce::v1::USED);
    ASSERT_EQ(stored->consent().events_size(), 2);
    EXPECT_EQ(stored->consent().events(1).kind(), ConsentEvent::USED);
  }
}

TEST_F(ConsentStoreTest, MarkUsedRefusesWhatIsNotAnActiveOneTimeConsent) {
  const absl::Time now = kT0 + absl::Hours(2);
  Consent standing = MustGrant({.request_id = "standing"});
  Consent future = MustGrant(
      {.request_id = "future", .valid_from = now + absl::Hours(1), .mode = tellonce::v1::ONE_TIME});
  Consent expired = MustGrant({.request_id = "expired",
                               .expires_at = kT0 + absl::Hours(1),
                               .mode = tellonce::v1::ONE_TIME});
  Consent revoked = MustGrant({.request_id = "revoked", .mode = tellonce::v1::ONE_TIME});
  ASSERT_TRUE(Revoke(revoked.consent_id(), "39001010001", now).ok());

  auto message = [&](const std::string& id) {
    absl::StatusOr<Consent> r = MarkUsed(id, now);
    EXPECT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
    return std::string(r.status().message());
  };
  EXPECT_EQ(message(standing.consent_id()), "consent is not ONE_TIME");
  EXPECT_EQ(message(future.consent_id()), "consent is not yet valid");
  EXPECT_EQ(message(expired.consent_id()), "consent is EXPIRED");
  EXPECT_EQ(message(revoked.consent_id()), "consent is REVOKED");
  EXPECT_TRUE(absl::IsNotFound(MarkUsed("01ARZ3NDEKTSV4RRFFQ69G5FAV", now).status()));
}

TEST_F(ConsentStoreTest, DataSurvivesCloseAndReopen) {
  Consent kept = MustGrant({.request_id = "kept", .mode = tellonce::v1::ONE_TIME});
  Consent revoked = MustGrant({.request_id = "gone", .captured = kT0 + absl::Seconds(1)});
  ASSERT_TRUE(Revoke(revoked.consent_id(), "39001010001", kT0 + absl::Minutes(1)).ok());
  Close();
  Open();

  absl::StatusOr<StoredConsent> got = store_->Get(kept.consent_id(), "39001010001", kT0);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->consent().SerializeAsString(), kept.SerializeAsString());
  absl::StatusOr<std::vector<Consent>> active =
      store_->FindActive("39001010001", "tax", kT0 + absl::Minutes(2));
  ASSERT_TRUE(active.ok());
  EXPECT_EQ(Ids(*active), (std::vector<std::string>{kept.consent_id()}));
  // Idempotency and one-time state survive too.
  absl::StatusOr<ConsentStore::GrantOutcome> retry =
      Grant(MakeRecord({.request_id = "kept", .mode = tellonce::v1::ONE_TIME}));
  ASSERT_TRUE(retry.ok());
  EXPECT_TRUE(retry->replayed);
  EXPECT_EQ(retry->consent.consent_id(), kept.consent_id());
  ASSERT_TRUE(MarkUsed(kept.consent_id(), kT0 + absl::Minutes(3)).ok());
  Close();
  Open();
  EXPECT_TRUE(
      absl::IsFailedPrecondition(MarkUsed(kept.consent_id(), kT0 + absl::Minutes(4)).status()));
}

TEST_F(ConsentStoreTest, KeyComponentsWithNulAreRejected) {
  absl::StatusOr<ConsentStore::GrantOutcome> r = Grant(MakeRecord({.citizen = std::string("3900\0"
                                                                                          "1",
                                                                                          6),
                                                                   .request_id = "nul"}));
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  EXPECT_TRUE(absl::IsInvalidArgument(Grant(MakeRecord({.request_id = ""})).status()));
  EXPECT_TRUE(Keys(storage::rocks::Family::kConsents).empty());
}

TEST(ConsentIdTest, NewConsentIdsAreWellFormedUniqueAndTimeOrdered) {
  const std::string alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  std::set<std::string> seen;
  std::string previous;
  for (int i = 0; i < 2000; ++i) {
    // Many ids per millisecond, then later milliseconds.
    std::string id = NewConsentId(kT0 + absl::Milliseconds(i / 100));
    ASSERT_EQ(id.size(), 26u);
    for (char c : id) ASSERT_NE(alphabet.find(c), std::string::npos) << id;
    EXPECT_GT(id, previous);
    previous = id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 2000u);
  // The first 10 characters are the millisecond timestamp.
  EXPECT_EQ(NewConsentId(absl::FromUnixMillis(0)).substr(0, 10), "0000000000");
  EXPECT_EQ(NewConsentId(absl::FromUnixMillis(1469918176385)).substr(0, 10), "01ARYZ6S41");
  EXPECT_LT(NewConsentId(kT0), NewConsentId(kT0 + absl::Milliseconds(1)));
  // Different milliseconds draw fresh random bits.
  EXPECT_NE(NewConsentId(kT0 + absl::Seconds(5)).substr(10),
            NewConsentId(kT0 + absl::Seconds(6)).substr(10));
}

TEST(ExpiryTest, OnlyActiveConsentsExpire) {
  Consent c;
  c.set_status(tellonce::v1::ACTIVE);
  SetTime(kT0, c.mutable_expires_at());
  EXPECT_EQ(EffectiveStatus(c, kT0 - absl::Nanoseconds(1)), tellonce::v1::ACTIVE);
  EXPECT_EQ(EffectiveStatus(c, kT0), tellonce::v1::EXPIRED);

  Consent revoked = c;
  revoked.set_status(tellonce::v1::REVOKED);
  ApplyExpiry(&revoked, kT0 + absl::Hours(1));
  EXPECT_EQ(revoked.status(), tellonce::v1::REVOKED);
  EXPECT_EQ(revoked.events_size(), 0);

  ApplyExpiry(&c, kT0 + absl::Hours(1));
  EXPECT_EQ(c.status(), tellonce::v1::EXPIRED);
  ASSERT_EQ(c.events_size(), 1);
  ApplyExpiry(&c, kT0 + absl::Hours(2));  // applying twice adds nothing
  EXPECT_EQ(c.events_size(), 1);
}

// --- Database ---

TEST(DatabaseTest, RefusesADatabaseWrittenByANewerSchema) {
  TempDir dir;
  {
    absl::StatusOr<std::unique_ptr<Database>> db = Database::Open({.path = dir.path()});
    ASSERT_TRUE(db.ok()) << db.status();
    std::string version;
    ASSERT_TRUE(
        (*db)
            ->db()
            ->Get({}, (*db)->family(storage::rocks::Family::kMeta), "schema_version", &version)
            .ok());
    EXPECT_EQ(version, "1");
    rocksdb::WriteOptions sync;
    sync.sync = true;
    ASSERT_TRUE((*db)
                    ->db()
                    ->Put(sync, (*db)->family(storage::rocks::Family::kMeta), "schema_version", "2")
                    .ok());
  }
  absl::StatusOr<std::unique_ptr<Database>> again = Database::Open({.path = dir.path()});
  ASSERT_TRUE(absl::IsFailedPrecondition(again.status())) << again.status();
  EXPECT_NE(again.status().message().find("schema version 2"), std::string::npos);
  EXPECT_NE(again.status().message().find(dir.path()), std::string::npos);
}

TEST(DatabaseTest, ASecondOpenInTheSameProcessIsRefused) {
  TempDir dir;
  absl::StatusOr<std::unique_ptr<Database>> first = Database::Open({.path = dir.path()});
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<std::unique_ptr<Database>> second = Database::Open({.path = dir.path()});
  ASSERT_TRUE(absl::IsFailedPrecondition(second.status())) << second.status();
  EXPECT_NE(second.status().message().find("in use"), std::string::npos) << second.status();
}

TEST(DatabaseTest, ADirectoryLockedByAnotherProcessIsFailedPrecondition) {
  TempDir dir;
  { ASSERT_TRUE(Database::Open({.path = dir.path()}).ok()); }
  // The child takes the same POSIX record lock RocksDB takes, using only
  // async-signal-safe calls, and holds it until killed.
  const std::string lock_path = dir.path() + "/LOCK";
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int fd = open(lock_path.c_str(), O_RDWR | O_CREAT, 0644);
    struct flock lock = {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    char ok = (fd >= 0 && fcntl(fd, F_SETLK, &lock) == 0) ? 'y' : 'n';
    (void)!write(ready[1], &ok, 1);
    for (;;) pause();
  }
  close(ready[1]);
  char ok = 0;
  ASSERT_EQ(read(ready[0], &ok, 1), 1);
  close(ready[0]);
  absl::StatusOr<std::unique_ptr<Database>> db = Database::Open({.path = dir.path()});
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  ASSERT_EQ(ok, 'y');
  ASSERT_TRUE(absl::IsFailedPrecondition(db.status())) << db.status();
  EXPECT_NE(db.status().message().find("data directory is in use by another process"),
            std::string::npos);
}

TEST(DatabaseTest, FromRocksMapsCodes) {
  EXPECT_TRUE(FromRocks(rocksdb::Status::OK()).ok());
  EXPECT_TRUE(absl::IsNotFound(FromRocks(rocksdb::Status::NotFound("x"))));
  EXPECT_TRUE(absl::IsUnavailable(FromRocks(rocksdb::Status::Busy("x"))));
  EXPECT_TRUE(absl::IsUnavailable(FromRocks(rocksdb::Status::TryAgain("x"))));
  EXPECT_TRUE(absl::IsDataLoss(FromRocks(rocksdb::Status::Corruption("x"))));
  EXPECT_TRUE(absl::IsInvalidArgument(FromRocks(rocksdb::Status::InvalidArgument("x"))));
  EXPECT_TRUE(absl::IsInternal(FromRocks(rocksdb::Status::IOError("disk on fire"))));
  EXPECT_TRUE(absl::IsResourceExhausted(FromRocks(rocksdb::Status::NoSpace("full"))));
}

}  // namespace
}  // namespace tellonce::consent
