// The storage contract suite (see contract.h): transactions are atomic across stores,
// acknowledged means durable, pages are stable, idempotency keys hold, a read for update
// serialises read-modify-writes, the log is gapless, the tree is fenced.

#include <algorithm>
#include <atomic>
#include <cctype>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "tests/storage/contract.h"

namespace tellonce::storage::testing {
namespace {

std::string Id(int n) { return absl::StrFormat("C%08d", n); }

StoredConsent Record(int n, const std::string& citizen = "37605030299",
                     const std::string& consumer = "tax", const std::string& portal = "portal",
                     tellonce::v1::ConsentStatus status = tellonce::v1::ACTIVE) {
  StoredConsent record;
  Consent& c = *record.mutable_consent();
  c.set_consent_id(Id(n));
  c.set_citizen_id(citizen);
  c.set_consumer(consumer);
  c.set_portal(portal);
  c.set_request_id(absl::StrCat("req-", n));
  c.set_purpose("tax-return");
  c.add_attributes("person.name");
  c.set_mode(tellonce::v1::ONE_TIME);
  c.set_status(status);
  c.mutable_captured_at()->set_seconds(1'900'000'000 + n);
  record.set_request_fingerprint(absl::StrCat("fp-", n));
  return record;
}

AccessEvent Event(const std::string& citizen, const std::string& exchange) {
  AccessEvent e;
  e.set_exchange_id(exchange);
  e.set_consumer("tax");
  e.set_citizen_id(citizen);
  e.add_attributes("person.name");
  return e;
}

Delivery NewDelivery(const std::string& subscriber, const std::string& citizen,
                     const std::string& event_id) {
  Delivery d;
  d.set_subscriber(subscriber);
  d.mutable_event()->set_event_id(event_id);
  d.mutable_event()->set_citizen_id(citizen);
  d.set_state(Delivery::PENDING);
  return d;
}

certs::Hash HashOf(int n) {
  certs::Hash h{};
  h[0] = static_cast<uint8_t>(n);
  h[31] = 0x5a;
  return h;
}

uint64_t Numbered(Storage& storage) {
  absl::StatusOr<uint64_t> size = storage.tree().Sequence();
  EXPECT_TRUE(size.ok()) << size.status();
  return size.ok() ? *size : 0;
}

std::vector<Delivery> AllDeliveries(Storage& storage) {
  std::vector<Delivery> all;
  EXPECT_TRUE(storage.deliveries()
                  .Scan(0,
                        [&](Delivery& d) {
                          all.push_back(d);
                          return true;
                        })
                  .ok());
  return all;
}

std::vector<std::string> CitizenConsentIds(Storage& storage, const std::string& citizen,
                                           const std::string& after = "") {
  std::vector<std::string> ids;
  absl::Status s = storage.consents().ScanCitizen(citizen, after, [&](StoredConsent& r) {
    ids.push_back(r.consent().consent_id());
    return true;
  });
  EXPECT_TRUE(s.ok()) << s;
  return ids;
}

}  // namespace

void StorageContractTest::SetUp() {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  name_ = absl::StrCat("contract_", info->name());
  for (char& c : name_) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  Open();
}

void StorageContractTest::TearDown() {
  storage_.reset();
  GetParam().drop(name_);
}

void StorageContractTest::Open() {
  storage_.reset();
  absl::StatusOr<std::unique_ptr<Storage>> opened = GetParam().open(name_);
  ASSERT_TRUE(opened.ok()) << opened.status();
  storage_ = *std::move(opened);
}

void StorageContractTest::Drop() { storage_.reset(); }

TEST_P(StorageContractTest, AFailedWorkLeavesNothingInAnyStore) {
  absl::Status status = storage_->Run([](Transaction& tx) -> absl::Status {
    if (absl::Status s = tx.InsertConsent(Record(1)); !s.ok()) return s;
    if (absl::Status s = tx.AppendAccessEvents({Event("37605030299", "x1")}); !s.ok()) return s;
    if (absl::Status s = tx.RecordPublished("registry", "ev-1", "fp"); !s.ok()) return s;
    absl::StatusOr<std::vector<Delivery>> d =
        tx.AddDeliveries({NewDelivery("tax", "37605030299", "ev-1")});
    if (!d.ok()) return d.status();
    return absl::FailedPreconditionError("the work changes its mind");
  });
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_TRUE(absl::IsNotFound(storage_->consents().Get(Id(1)).status()));
  EXPECT_EQ(Numbered(*storage_), 0u);
  EXPECT_TRUE(AllDeliveries(*storage_).empty());
  EXPECT_TRUE(CitizenConsentIds(*storage_, "37605030299").empty());
  ASSERT_TRUE(
      storage_
          ->Run([](Transaction& tx) -> absl::Status {
            EXPECT_TRUE(absl::IsNotFound(tx.PublishedFingerprint("registry", "ev-1").status()));
            EXPECT_TRUE(absl::IsNotFound(tx.ConsentIdForRequest("portal", "req-1").status()));
            return absl::OkStatus();
          })
          .ok());
}

TEST_P(StorageContractTest, AcknowledgedWorkIsInEveryStoreAndSurvivesReopening) {
  ASSERT_TRUE(storage_
                  ->Run([](Transaction& tx) -> absl::Status {
                    if (absl::Status s = tx.InsertConsent(Record(1)); !s.ok()) return s;
                    if (absl::Status s = tx.AppendAccessEvents(
                            {Event("37605030299", "x1"), Event("49403136526", "x2")});
                        !s.ok()) {
                      return s;
                    }
                    if (absl::Status s = tx.RecordPublished("registry", "ev-1", "fp-1"); !s.ok()) {
                      return s;
                    }
                    absl::StatusOr<std::vector<Delivery>> d =
                        tx.AddDeliveries({NewDelivery("tax", "37605030299", "ev-1")});
                    return d.status();
                  })
                  .ok());
  Numbered(*storage_);
  Drop();
  Open();
  absl::StatusOr<StoredConsent> record = storage_->consents().Get(Id(1));
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->consent().citizen_id(), "37605030299");
  EXPECT_EQ(record->request_fingerprint(), "fp-1");
  EXPECT_EQ(Numbered(*storage_), 2u);
  absl::StatusOr<std::string> bytes = storage_->access_events().ReadBytes(1);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  AccessEvent second;
  ASSERT_TRUE(second.ParseFromString(*bytes));
  EXPECT_EQ(second.exchange_id(), "x2");
  std::vector<Delivery> deliveries = AllDeliveries(*storage_);
  ASSERT_EQ(deliveries.size(), 1u);
  EXPECT_EQ(deliveries[0].state(), Delivery::PENDING);
  EXPECT_FALSE(deliveries[0].delivery_id().empty());
  ASSERT_TRUE(storage_
                  ->Run([](Transaction& tx) -> absl::Status {
                    absl::StatusOr<std::string> fp = tx.PublishedFingerprint("registry", "ev-1");
                    EXPECT_TRUE(fp.ok()) << fp.status();
                    if (fp.ok()) EXPECT_EQ(*fp, "fp-1");
                    absl::StatusOr<std::string> id = tx.ConsentIdForRequest("portal", "req-1");
                    EXPECT_TRUE(id.ok()) << id.status();
                    if (id.ok()) EXPECT_EQ(*id, Id(1));
                    return absl::OkStatus();
                  })
                  .ok());
}

TEST_P(StorageContractTest, OneFailingWorkInAConcurrentBatchDoesNotTouchTheOthers) {
  constexpr int kWorks = 40;
  std::vector<std::thread> threads;
  std::vector<absl::Status> results(kWorks);
  for (int i = 0; i < kWorks; ++i) {
    threads.emplace_back([&, i] {
      results[i] = storage_->Run([i](Transaction& tx) -> absl::Status {
        if (absl::Status s = tx.InsertConsent(Record(i)); !s.ok()) return s;
        if (i % 7 == 3) return absl::AbortedError("this one fails");
        return absl::OkStatus();
      });
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kWorks; ++i) {
    if (i % 7 == 3) {
      EXPECT_TRUE(absl::IsAborted(results[i])) << i << ": " << results[i];
      EXPECT_TRUE(absl::IsNotFound(storage_->consents().Get(Id(i)).status())) << i;
    } else {
      EXPECT_TRUE(results[i].ok()) << i << ": " << results[i];
      EXPECT_TRUE(storage_->consents().Get(Id(i)).ok()) << i;
    }
  }
}

TEST_P(StorageContractTest, AWorkSeesItsOwnWrites) {
  ASSERT_TRUE(storage_
                  ->Run([](Transaction& tx) -> absl::Status {
                    if (absl::Status s = tx.InsertConsent(Record(1)); !s.ok()) return s;
                    absl::StatusOr<StoredConsent> read = tx.GetConsent(Id(1));
                    EXPECT_TRUE(read.ok()) << read.status();
                    absl::StatusOr<std::string> id = tx.ConsentIdForRequest("portal", "req-1");
                    EXPECT_TRUE(id.ok()) << id.status();
                    absl::StatusOr<std::vector<Consent>> active =
                        tx.ActiveConsents("37605030299", "tax", 10);
                    EXPECT_TRUE(active.ok()) << active.status();
                    if (active.ok()) EXPECT_EQ(active->size(), 1u);
                    return absl::OkStatus();
                  })
                  .ok());
}

TEST_P(StorageContractTest, IdempotencyKeysAreUnique) {
  ASSERT_TRUE(storage_
                  ->Run([](Transaction& tx) -> absl::Status {
                    if (absl::Status s = tx.InsertConsent(Record(1)); !s.ok()) return s;
                    return tx.RecordPublished("registry", "ev-1", "fp");
                  })
                  .ok());
  // The same consent id; another id with the same (portal, request id); the same event.
  absl::Status same_id = storage_->Run([](Transaction& tx) {
    StoredConsent again = Record(1);
    again.mutable_consent()->set_request_id("other");
    return tx.InsertConsent(again);
  });
  EXPECT_TRUE(absl::IsAlreadyExists(same_id)) << same_id;
  absl::Status same_request = storage_->Run([](Transaction& tx) {
    StoredConsent other = Record(2);
    other.mutable_consent()->set_request_id("req-1");
    return tx.InsertConsent(other);
  });
  EXPECT_TRUE(absl::IsAlreadyExists(same_request)) << same_request;
  EXPECT_TRUE(absl::IsNotFound(storage_->consents().Get(Id(2)).status()));
  absl::Status same_event = storage_->Run(
      [](Transaction& tx) { return tx.RecordPublished("registry", "ev-1", "other"); });
  EXPECT_TRUE(absl::IsAlreadyExists(same_event)) << same_event;
  // The same request id from another portal is another request.
  absl::Status other_portal = storage_->Run([](Transaction& tx) {
    StoredConsent other = Record(3, "37605030299", "tax", "portal-b");
    other.mutable_consent()->set_request_id("req-1");
    return tx.InsertConsent(other);
  });
  EXPECT_TRUE(other_portal.ok()) << other_portal;
}

TEST_P(StorageContractTest, AReadForUpdateSerialisesConcurrentSpends) {
  ASSERT_TRUE(storage_->Run([](Transaction& tx) { return tx.InsertConsent(Record(1)); }).ok());
  constexpr int kRacers = 20;
  std::atomic<int> spent{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kRacers; ++i) {
    threads.emplace_back([&] {
      auto won = std::make_shared<bool>(false);
      absl::Status s = storage_->Run([won](Transaction& tx) -> absl::Status {
        *won = false;
        absl::StatusOr<StoredConsent> record = tx.GetConsent(Id(1));
        if (!record.ok()) return record.status();
        if (record->consent().status() != tellonce::v1::ACTIVE) {
          return absl::FailedPreconditionError("consent is USED");
        }
        record->mutable_consent()->set_status(tellonce::v1::USED);
        if (absl::Status u = tx.UpdateConsent(*record); !u.ok()) return u;
        *won = true;
        return absl::OkStatus();
      });
      if (s.ok() && *won) ++spent;
      EXPECT_TRUE(s.ok() || absl::IsFailedPrecondition(s)) << s;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(spent.load(), 1);
  EXPECT_EQ(storage_->consents().Get(Id(1))->consent().status(), tellonce::v1::USED);
}

TEST_P(StorageContractTest, ActiveFindsOnlyConsentsStoredActive) {
  ASSERT_TRUE(storage_
                  ->Run([](Transaction& tx) -> absl::Status {
                    for (int i = 1; i <= 4; ++i) {
                      if (absl::Status s = tx.InsertConsent(Record(i)); !s.ok()) return s;
                    }
                    // Another consumer, another citizen, and one granted already revoked.
                    if (absl::Status s = tx.InsertConsent(Record(5, "37605030299", "benefits"));
                        !s.ok()) {
                      return s;
                    }
                    if (absl::Status s = tx.InsertConsent(Record(6, "49403136526")); !s.ok()) {
                      return s;
                    }
                    return tx.InsertConsent(
                        Record(7, "37605030299", "tax", "portal", tellonce::v1::REVOKED));
                  })
                  .ok());
  absl::StatusOr<std::vector<Consent>> active =
      storage_->consents().Active("37605030299", "tax", 10);
  ASSERT_TRUE(active.ok()) << active.status();
  ASSERT_EQ(active->size(), 4u);
  for (size_t i = 0; i < active->size(); ++i) {
    EXPECT_EQ((*active)[i].consent_id(), Id(static_cast<int>(i) + 1)) << "oldest first";
    EXPECT_EQ((*active)[i].citizen_id(), "37605030299");
    EXPECT_EQ((*active)[i].consumer(), "tax");
    EXPECT_EQ((*active)[i].mode(), tellonce::v1::ONE_TIME);
    EXPECT_EQ((*active)[i].purpose(), "tax-return");
    EXPECT_EQ((*active)[i].attributes_size(), 1);
  }
  EXPECT_EQ(storage_->consents().Active("37605030299", "tax", 2)->size(), 2u) << "limit";

  // Revoked (UpdateConsent) and dropped as expired: no longer found.
  ASSERT_TRUE(storage_
                  ->Run([](Transaction& tx) -> absl::Status {
                    absl::StatusOr<StoredConsent> r = tx.GetConsent(Id(2));
                    if (!r.ok()) return r.status();
                    r->mutable_consent()->set_status(tellonce::v1::REVOKED);
                    if (absl::Status s = tx.UpdateConsent(*r); !s.ok()) return s;
                    absl::StatusOr<StoredConsent> e = tx.GetConsent(Id(3));
                    if (!e.ok()) return e.status();
                    return tx.DropExpired(e->consent());
                  })
                  .ok());
  active = storage_->consents().Active("37605030299", "tax", 10);
  ASSERT_TRUE(active.ok()) << active.status();
  std::vector<std::string> ids;
  for (const Consent& c : *active) ids.push_back(c.consent_id());
  // A backend that filters expiry itself may keep 3 (it has no expires_at here).
  EXPECT_TRUE(ids == std::vector<std::string>({Id(1), Id(4)}) ||
              ids == std::vector<std::string>({Id(1), Id(3), Id(4)}));
  EXPECT_EQ(storage_->consents().Get(Id(2))->consent().status(), tellonce::v1::REVOKED);
  EXPECT_EQ(storage_->consents().Get(Id(3))->consent().status(), tellonce::v1::ACTIVE)
      << "DropExpired leaves the record alone";
}

TEST_P(StorageContractTest, CitizenPagesAreStableAndOrdered) {
  ASSERT_TRUE(storage_
                  ->Run([](Transaction& tx) -> absl::Status {
                    for (int i = 10; i < 20; ++i) {
                      if (absl::Status s = tx.InsertConsent(Record(i)); !s.ok()) return s;
                    }
                    return tx.InsertConsent(Record(30, "49403136526"));
                  })
                  .ok());
  std::vector<std::string> all = CitizenConsentIds(*storage_, "37605030299");
  ASSERT_EQ(all.size(), 10u);
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end()));
  // Resuming after an id returns exactly the rest, also when others were added since
  // (later ids come later).
  ASSERT_TRUE(storage_->Run([](Transaction& tx) { return tx.InsertConsent(Record(25)); }).ok());
  std::vector<std::string> rest = CitizenConsentIds(*storage_, "37605030299", Id(14));
  EXPECT_EQ(rest, std::vector<std::string>({Id(15), Id(16), Id(17), Id(18), Id(19), Id(25)}));
  EXPECT_TRUE(CitizenConsentIds(*storage_, "unknown-citizen").empty());
  // A visitor that stops is not called again.
  int calls = 0;
  ASSERT_TRUE(storage_->consents()
                  .ScanCitizen("37605030299", "",
                               [&](StoredConsent&) {
                                 ++calls;
                                 return calls < 3;
                               })
                  .ok());
  EXPECT_EQ(calls, 3);
}

TEST_P(StorageContractTest, ConcurrentAppendsAreGaplessAndFoundByCitizen) {
  constexpr int kThreads = 6, kPerThread = 30;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string citizen = (i % 2 == 0) ? "37605030299" : "49403136526";
        // Two events per transaction: consecutive indexes.
        absl::Status s = storage_->Run([&](Transaction& tx) {
          return tx.AppendAccessEvents({Event(citizen, absl::StrCat(t, "/", i, "/a")),
                                        Event(citizen, absl::StrCat(t, "/", i, "/b"))});
        });
        ASSERT_TRUE(s.ok()) << s;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const uint64_t total = 2 * kThreads * kPerThread;
  ASSERT_EQ(Numbered(*storage_), total);
  std::set<std::string> seen;
  std::string previous;
  uint64_t expected = 0;
  ASSERT_TRUE(
      storage_->access_events()
          .Scan(0, total,
                [&](uint64_t index, std::string_view bytes) {
                  EXPECT_EQ(index, expected++);
                  AccessEvent e;
                  EXPECT_TRUE(e.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())));
                  EXPECT_TRUE(seen.insert(e.exchange_id()).second) << e.exchange_id();
                  if (absl::EndsWith(e.exchange_id(), "/b")) {
                    EXPECT_EQ(previous, e.exchange_id().substr(0, e.exchange_id().size() - 1) + "a")
                        << "events of one transaction are consecutive";
                  }
                  previous = e.exchange_id();
                  return true;
                })
          .ok());
  EXPECT_EQ(expected, total);
  EXPECT_TRUE(absl::IsNotFound(storage_->access_events().ReadBytes(total).status()));

  uint64_t found = 0;
  std::optional<uint64_t> last;
  ASSERT_TRUE(storage_->access_events()
                  .ScanCitizen("49403136526", std::nullopt,
                               [&](uint64_t index, std::string_view bytes) {
                                 if (last.has_value()) EXPECT_GT(index, *last);
                                 last = index;
                                 AccessEvent e;
                                 EXPECT_TRUE(e.ParseFromArray(bytes.data(),
                                                              static_cast<int>(bytes.size())));
                                 EXPECT_EQ(e.citizen_id(), "49403136526");
                                 ++found;
                                 return true;
                               })
                  .ok());
  EXPECT_EQ(found, total / 2);
  // Resuming after an index.
  uint64_t after_count = 0;
  ASSERT_TRUE(storage_->access_events()
                  .ScanCitizen("49403136526", *last - 1,
                               [&](uint64_t index, std::string_view) {
                                 EXPECT_GT(index, *last - 1);
                                 ++after_count;
                                 return true;
                               })
                  .ok());
  EXPECT_EQ(after_count, 1u);
}

TEST_P(StorageContractTest, TheTreeIsFencedAndCheckpointsFollowIt) {
  ASSERT_TRUE(
      storage_
          ->Run([](Transaction& tx) {
            return tx.AppendAccessEvents({Event("37605030299", "1"), Event("37605030299", "2")});
          })
          .ok());
  Numbered(*storage_);
  TreeStore& tree = storage_->tree();
  absl::StatusOr<bool> sequencer = tree.AcquireSequencer();
  ASSERT_TRUE(sequencer.ok()) << sequencer.status();
  ASSERT_TRUE(*sequencer) << "a lone process is the sequencer";
  EXPECT_EQ(*tree.TreeSize(), 0u);
  SignedCheckpoint early;
  early.set_body("body-2");
  EXPECT_TRUE(absl::IsFailedPrecondition(tree.PutCheckpoint(2, early)))
      << "no checkpoint beyond the stored tree";

  ASSERT_TRUE(
      tree.ExtendTree(0, 2, {{0, 0, HashOf(1)}, {0, 1, HashOf(2)}, {1, 0, HashOf(3)}}).ok());
  EXPECT_EQ(*tree.TreeSize(), 2u);
  EXPECT_EQ(*tree.ReadNode(1, 0), HashOf(3));
  EXPECT_TRUE(absl::IsDataLoss(tree.ReadNode(1, 1).status()));
  // A late writer that still thinks the tree is empty is refused, and changes nothing.
  absl::Status late = tree.ExtendTree(0, 1, {{0, 0, HashOf(9)}});
  EXPECT_TRUE(absl::IsAborted(late)) << late;
  EXPECT_EQ(*tree.ReadNode(0, 0), HashOf(1));
  EXPECT_EQ(*tree.TreeSize(), 2u);

  SignedCheckpoint one, two, other;
  one.set_body("body-1");
  two.set_body("body-2");
  other.set_body("another body-2");
  ASSERT_TRUE(tree.PutCheckpoint(1, one).ok());
  ASSERT_TRUE(tree.PutCheckpoint(2, two).ok());
  EXPECT_TRUE(tree.PutCheckpoint(2, two).ok()) << "storing the same one again is harmless";
  EXPECT_TRUE(absl::IsAlreadyExists(tree.PutCheckpoint(2, other)));
  Drop();
  Open();
  std::vector<std::pair<uint64_t, std::string>> stored;
  ASSERT_TRUE(storage_->tree()
                  .ScanCheckpoints(0,
                                   [&](uint64_t size, SignedCheckpoint& c) {
                                     stored.emplace_back(size, c.body());
                                     return true;
                                   })
                  .ok());
  EXPECT_EQ(stored, (std::vector<std::pair<uint64_t, std::string>>{{1, "body-1"}, {2, "body-2"}}));
  stored.clear();
  ASSERT_TRUE(storage_->tree()
                  .ScanCheckpoints(2,
                                   [&](uint64_t size, SignedCheckpoint& c) {
                                     stored.emplace_back(size, c.body());
                                     return true;
                                   })
                  .ok());
  EXPECT_EQ(stored.size(), 1u);
}

TEST_P(StorageContractTest, DeliveriesArePendingInOrderUntilRemovedOrParked) {
  std::vector<Delivery> added;
  ASSERT_TRUE(storage_
                  ->Run([&](Transaction& tx) -> absl::Status {
                    absl::StatusOr<std::vector<Delivery>> d = tx.AddDeliveries(
                        {NewDelivery("tax", "A", "e1"), NewDelivery("benefits", "A", "e1"),
                         NewDelivery("tax", "B", "e2"), NewDelivery("tax", "A", "e3")});
                    if (!d.ok()) return d.status();
                    added = *std::move(d);
                    return absl::OkStatus();
                  })
                  .ok());
  ASSERT_EQ(added.size(), 4u);
  std::vector<uint64_t> sequences;
  for (const Delivery& d : added) {
    uint64_t s = 0;
    ASSERT_TRUE(absl::SimpleAtoi(d.delivery_id(), &s)) << d.delivery_id();
    sequences.push_back(s);
    EXPECT_EQ(d.state(), Delivery::PENDING);
  }
  EXPECT_TRUE(std::is_sorted(sequences.begin(), sequences.end()));
  EXPECT_EQ(std::set<uint64_t>(sequences.begin(), sequences.end()).size(), 4u);

  DeliveryStore& store = storage_->deliveries();
  const uint64_t end = sequences.back() + 1;
  absl::StatusOr<std::vector<Delivery>> tax = store.Pending("tax", 0, end, 10);
  ASSERT_TRUE(tax.ok()) << tax.status();
  ASSERT_EQ(tax->size(), 3u);
  EXPECT_EQ((*tax)[0].event().event_id(), "e1");
  EXPECT_EQ((*tax)[1].event().event_id(), "e2");
  EXPECT_EQ((*tax)[2].event().event_id(), "e3");
  EXPECT_EQ(store.Pending("tax", 0, end, 2)->size(), 2u) << "limit";
  EXPECT_EQ(store.Pending("tax", sequences[2], end, 10)->size(), 2u) << "from";
  EXPECT_EQ(store.Pending("tax", 0, sequences[2], 10)->size(), 1u) << "upper";

  // Parked as DEAD: not pending, still stored. Acknowledged: gone.
  Delivery dead = added[0];
  dead.set_state(Delivery::DEAD);
  dead.set_attempts(20);
  ASSERT_TRUE(store.Update(dead).ok());
  ASSERT_TRUE(store.Remove(added[2]).ok());
  tax = store.Pending("tax", 0, end, 10);
  ASSERT_EQ(tax->size(), 1u);
  EXPECT_EQ((*tax)[0].event().event_id(), "e3");
  EXPECT_EQ(store.Get(sequences[0])->state(), Delivery::DEAD);
  EXPECT_TRUE(absl::IsNotFound(store.Get(sequences[2]).status()));

  // Re-queued durably: pending again after reopening.
  dead.set_state(Delivery::PENDING);
  dead.set_attempts(0);
  ASSERT_TRUE(store.Requeue({dead}).ok());
  Drop();
  Open();
  tax = storage_->deliveries().Pending("tax", 0, end, 10);
  ASSERT_TRUE(tax.ok()) << tax.status();
  ASSERT_EQ(tax->size(), 2u);
  EXPECT_EQ((*tax)[0].event().event_id(), "e1");
  EXPECT_EQ((*tax)[0].attempts(), 0);
  EXPECT_EQ(AllDeliveries(*storage_).size(), 3u);
}

TEST_P(StorageContractTest, AfterCloseWorkIsRefusedAndReadsStillWork) {
  ASSERT_TRUE(storage_->Run([](Transaction& tx) { return tx.InsertConsent(Record(1)); }).ok());
  storage_->Close();
  storage_->Close();  // idempotent
  absl::Status late = storage_->Run([](Transaction& tx) { return tx.InsertConsent(Record(2)); });
  EXPECT_TRUE(absl::IsUnavailable(late)) << late;
  EXPECT_TRUE(storage_->consents().Get(Id(1)).ok());
  EXPECT_TRUE(absl::IsNotFound(storage_->consents().Get(Id(2)).status()));
}

TEST_P(StorageContractTest, MalformedKeysAreRefusedNotStored) {
  absl::Status nul = storage_->Run([](Transaction& tx) {
    StoredConsent bad = Record(1);
    bad.mutable_consent()->set_citizen_id(std::string("3760\0x", 6));
    return tx.InsertConsent(bad);
  });
  EXPECT_TRUE(absl::IsInvalidArgument(nul)) << nul;
  absl::Status empty = storage_->Run([](Transaction& tx) {
    StoredConsent bad = Record(1);
    bad.mutable_consent()->clear_request_id();
    return tx.InsertConsent(bad);
  });
  EXPECT_TRUE(absl::IsInvalidArgument(empty)) << empty;
  EXPECT_TRUE(absl::IsNotFound(storage_->consents().Get(Id(1)).status()));
  EXPECT_TRUE(absl::IsNotFound(storage_->consents().Get("").status()));
}

}  // namespace tellonce::storage::testing
