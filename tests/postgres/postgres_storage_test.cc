// The PostgreSQL storage against a real throwaway cluster: what only a shared database
// has to get right. Several PostgresStorage objects over one database stand for several
// broker replicas (each has its own pools, commit threads and replica id, exactly as
// separate processes would); the multi-process tests with real brokers are in
// tests/postgres/replica_test.cc.

#include "storage/postgres/postgres_storage.h"

#include <atomic>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/time.h"
#include "tests/testing/pg_cluster.h"

namespace tellonce::storage {
namespace {

using postgres::PostgresOptions;
using postgres::PostgresStorage;
using tellonce::v1::ConsentEvent;
using ::testing::HasSubstr;

class PostgresStorageTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<testing::PgCluster>> c = testing::PgCluster::Start({});
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = c->release();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
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

  PostgresOptions Options() {
    PostgresOptions o;
    o.conninfo = cluster_->ConnInfo(dbname_);
    o.pool_size = 4;
    return o;
  }
  std::unique_ptr<PostgresStorage> Open(PostgresOptions o) {
    absl::StatusOr<std::unique_ptr<PostgresStorage>> s = postgres::OpenPostgresStorage(o);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *std::move(s) : nullptr;
  }
  std::unique_ptr<PostgresStorage> Open() { return Open(Options()); }
  std::string Sql(const std::string& sql) {
    absl::StatusOr<std::string> out = cluster_->Psql(dbname_, sql);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? std::string(absl::StripTrailingAsciiWhitespace(*out)) : "";
  }

  static testing::PgCluster* cluster_;
  std::string dbname_;
};

testing::PgCluster* PostgresStorageTest::cluster_ = nullptr;

std::atomic<int> next_id{0};

StoredConsent NewConsent(const std::string& citizen, const std::string& request_id,
                         tellonce::v1::ConsentMode mode = tellonce::v1::UNTIL_EXPIRY) {
  StoredConsent record;
  Consent* c = record.mutable_consent();
  c->set_consent_id(absl::StrCat("01TEST", 1000000 + next_id.fetch_add(1)));
  c->set_citizen_id(citizen);
  c->set_consumer("tax");
  c->add_attributes("bank.interest_paid");
  c->add_attributes("person.name");
  c->set_purpose("TAX_DEDUCTION_CHECK");
  c->set_portal("portal");
  c->set_request_id(request_id);
  c->set_mode(mode);
  c->set_status(tellonce::v1::ACTIVE);
  *c->mutable_captured_at() = ToProtoTime(absl::Now());
  *c->mutable_valid_from() = ToProtoTime(absl::Now() - absl::Minutes(1));
  *c->mutable_expires_at() = ToProtoTime(absl::Now() + absl::Hours(24));
  ConsentEvent* e = c->add_events();
  e->set_kind(ConsentEvent::GRANTED);
  *e->mutable_at() = c->captured_at();
  e->set_actor("portal");
  e->set_citizen_authenticated_by("https://idp.example");
  record.mutable_receipt()->set_body("receipt");
  record.set_request_fingerprint(absl::StrCat("fp-", request_id));
  return record;
}

// The consent store's grant: replay when the request id was used, else insert.
struct GrantResult {
  absl::Status status;
  std::string consent_id;
  bool replayed = false;
};
GrantResult Grant(Storage& s, const StoredConsent& record) {
  GrantResult out;
  out.status = s.Run([&](Transaction& tx) -> absl::Status {
    absl::StatusOr<std::string> existing =
        tx.ConsentIdForRequest(record.consent().portal(), record.consent().request_id());
    if (existing.ok()) {
      out.consent_id = *existing;
      out.replayed = true;
      return absl::OkStatus();
    }
    if (!absl::IsNotFound(existing.status())) return existing.status();
    out.consent_id = record.consent().consent_id();
    out.replayed = false;
    return tx.InsertConsent(record);
  });
  return out;
}

// The consent store's ONE_TIME spend.
absl::Status Spend(Storage& s, const std::string& consent_id) {
  return s.Run([&](Transaction& tx) -> absl::Status {
    absl::StatusOr<StoredConsent> record = tx.GetConsent(consent_id);
    if (!record.ok()) return record.status();
    if (record->consent().status() != tellonce::v1::ACTIVE) {
      return absl::FailedPreconditionError("consent is not ACTIVE");
    }
    record->mutable_consent()->set_status(tellonce::v1::USED);
    ConsentEvent* e = record->mutable_consent()->add_events();
    e->set_kind(ConsentEvent::USED);
    *e->mutable_at() = ToProtoTime(absl::Now());
    e->set_actor("tax");
    return tx.UpdateConsent(*record);
  });
}

absl::Status Revoke(Storage& s, const std::string& consent_id) {
  return s.Run([&](Transaction& tx) -> absl::Status {
    absl::StatusOr<StoredConsent> record = tx.GetConsent(consent_id);
    if (!record.ok()) return record.status();
    if (record->consent().status() != tellonce::v1::ACTIVE) {
      return absl::FailedPreconditionError("consent is not ACTIVE");
    }
    record->mutable_consent()->set_status(tellonce::v1::REVOKED);
    ConsentEvent* e = record->mutable_consent()->add_events();
    e->set_kind(ConsentEvent::REVOKED);
    *e->mutable_at() = ToProtoTime(absl::Now());
    e->set_actor("portal");
    return tx.UpdateConsent(*record);
  });
}

AccessEvent Event(const std::string& citizen, const std::string& exchange_id) {
  AccessEvent e;
  *e.mutable_at() = ToProtoTime(absl::Now());
  e.set_exchange_id(exchange_id);
  e.set_consumer("tax");
  e.set_provider("bank");
  e.set_citizen_id(citizen);
  e.add_attributes("bank.interest_paid");
  e.set_purpose("TAX_DEDUCTION_CHECK");
  e.mutable_basis()->set_consent_id("01CONSENT");
  e.set_outcome(AccessEvent::ALLOWED);
  return e;
}

// --- Consents ----------------------------------------------------------------------------

TEST_F(PostgresStorageTest, AGrantIsReadableThroughTheStoresAndAsRowsADbaCanQuery) {
  std::unique_ptr<PostgresStorage> s = Open();
  ASSERT_NE(s, nullptr);
  const StoredConsent record = NewConsent("38001085718", "r1");
  GrantResult g = Grant(*s, record);
  ASSERT_TRUE(g.status.ok()) << g.status;
  EXPECT_FALSE(g.replayed);

  absl::StatusOr<StoredConsent> read = s->consents().Get(record.consent().consent_id());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->SerializeAsString(), record.SerializeAsString());
  absl::StatusOr<std::vector<Consent>> active = s->consents().Active("38001085718", "tax", 10);
  ASSERT_TRUE(active.ok());
  ASSERT_EQ(active->size(), 1u);
  EXPECT_EQ((*active)[0].consent_id(), record.consent().consent_id());
  EXPECT_EQ(s->consents().Get("nope").status().code(), absl::StatusCode::kNotFound);

  EXPECT_EQ(Sql("SELECT citizen_id, consumer, portal, request_id, status, mode, purpose, "
                "array_to_string(attributes, ' '), expires_at > now() FROM consents"),
            "38001085718|tax|portal|r1|ACTIVE|UNTIL_EXPIRY|TAX_DEDUCTION_CHECK|"
            "bank.interest_paid person.name|t");
  EXPECT_EQ(Sql("SELECT seq, kind, actor, citizen_authenticated_by FROM consent_events"),
            "0|GRANTED|portal|https://idp.example");

  ASSERT_TRUE(Revoke(*s, record.consent().consent_id()).ok());
  EXPECT_EQ(Sql("SELECT string_agg(kind, ',' ORDER BY seq) FROM consent_events"),
            "GRANTED,REVOKED");
  EXPECT_EQ(Sql("SELECT status FROM consents"), "REVOKED");
}

TEST_F(PostgresStorageTest, ScanCitizenPagesThroughManyConsentsInIdOrder) {
  std::unique_ptr<PostgresStorage> s = Open();
  ASSERT_NE(s, nullptr);
  std::vector<std::string> ids;
  for (int i = 0; i < 600; ++i) {  // more than one chunk of the scan
    StoredConsent r = NewConsent("39912310001", absl::StrCat("scan-", i));
    ids.push_back(r.consent().consent_id());
    ASSERT_TRUE(Grant(*s, r).status.ok());
  }
  ASSERT_TRUE(Grant(*s, NewConsent("49912310002", "other")).status.ok());
  std::vector<std::string> seen;
  ASSERT_TRUE(s->consents()
                  .ScanCitizen("39912310001", "",
                               [&](StoredConsent& r) {
                                 seen.push_back(r.consent().consent_id());
                                 return true;
                               })
                  .ok());
  EXPECT_EQ(seen, ids);
  seen.clear();
  ASSERT_TRUE(s->consents()
                  .ScanCitizen("39912310001", ids[299],
                               [&](StoredConsent& r) {
                                 seen.push_back(r.consent().consent_id());
                                 return seen.size() < 3;
                               })
                  .ok());
  EXPECT_EQ(seen, std::vector<std::string>(ids.begin() + 300, ids.begin() + 303));
}

TEST_F(PostgresStorageTest, AWorkThatFailsAfterWritingLeavesNothingAndTheRestOfItsGroupCommits) {
  PostgresOptions o = Options();
  o.commit_threads = 1;
  std::unique_ptr<PostgresStorage> s = Open(o);
  ASSERT_NE(s, nullptr);
  // A slow first work holds the commit thread, so the others queue up into one group.
  absl::Notification blocked;
  s->Submit(
      [&](Transaction&) {
        blocked.WaitForNotificationWithTimeout(absl::Seconds(5));
        return absl::OkStatus();
      },
      [](absl::Status) {});
  constexpr int kWorks = 40;
  std::vector<StoredConsent> records;
  std::vector<absl::Status> results(kWorks);
  std::atomic<int> done{0};
  for (int i = 0; i < kWorks; ++i)
    records.push_back(NewConsent("38001085718", absl::StrCat("g", i)));
  for (int i = 0; i < kWorks; ++i) {
    s->Submit(
        [&, i](Transaction& tx) -> absl::Status {
          if (absl::Status st = tx.InsertConsent(records[i]); !st.ok()) return st;
          if (!tx.AppendAccessEvents({Event("38001085718", absl::StrCat("x", i))}).ok()) {
            return absl::InternalError("append");
          }
          if (i % 10 == 3) return absl::InvalidArgumentError("refused after writing");
          if (i % 10 == 7) {
            // A statement of this work fails (the consent exists): its error, and its
            // transaction's state, stay this work's.
            return tx.InsertConsent(records[0]);
          }
          return absl::OkStatus();
        },
        [&, i](absl::Status st) {
          results[i] = st;
          done.fetch_add(1);
        });
  }
  blocked.Notify();
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (done.load() < kWorks && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_EQ(done.load(), kWorks);
  int ok = 0;
  for (int i = 0; i < kWorks; ++i) {
    if (i % 10 == 3) {
      EXPECT_EQ(results[i].code(), absl::StatusCode::kInvalidArgument) << i;
    } else if (i % 10 == 7) {
      EXPECT_EQ(results[i].code(), absl::StatusCode::kAlreadyExists) << i << results[i];
    } else {
      EXPECT_TRUE(results[i].ok()) << i << results[i];
      ++ok;
    }
  }
  EXPECT_EQ(Sql("SELECT count(*) FROM consents"), absl::StrCat(ok));
  EXPECT_EQ(Sql("SELECT count(*) FROM access_queue"), absl::StrCat(ok));
  EXPECT_EQ(Sql("SELECT count(*) FROM consents WHERE request_id IN ('g3','g13','g7','g17')"), "0");
  const Storage::CommitCounts counts = s->commit_counts();
  EXPECT_LT(counts.groups, static_cast<uint64_t>(kWorks)) << "the works were not grouped";
}

TEST_F(PostgresStorageTest, AnEventPostgresCannotStoreFailsItsOwnWorkNotTheGroup) {
  PostgresOptions o = Options();
  o.commit_threads = 1;
  std::unique_ptr<PostgresStorage> s = Open(o);
  ASSERT_NE(s, nullptr);
  absl::Notification blocked;
  s->Submit(
      [&](Transaction&) {
        blocked.WaitForNotificationWithTimeout(absl::Seconds(5));
        return absl::OkStatus();
      },
      [](absl::Status) {});
  std::vector<absl::Status> results(10);
  std::atomic<int> done{0};
  for (int i = 0; i < 10; ++i) {
    AccessEvent e = Event(i == 4 ? std::string("3800108\0x", 9) : "38001085718", "e");
    s->Submit([e](Transaction& tx) { return tx.AppendAccessEvents({e}); },
              [&, i](absl::Status st) {
                results[i] = st;
                ++done;
              });
  }
  blocked.Notify();
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (done.load() < 10 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_EQ(done.load(), 10);
  for (int i = 0; i < 10; ++i) {
    if (i == 4) {
      EXPECT_EQ(results[i].code(), absl::StatusCode::kInvalidArgument) << results[i];
    } else {
      EXPECT_TRUE(results[i].ok()) << i << ": " << results[i];
    }
  }
  EXPECT_EQ(Sql("SELECT count(*) FROM access_queue"), "9");
}

TEST_F(PostgresStorageTest, ConcurrentRetriesOfOneGrantOnTwoReplicasReturnTheFirstConsent) {
  std::unique_ptr<PostgresStorage> a = Open();
  std::unique_ptr<PostgresStorage> b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  for (int round = 0; round < 20; ++round) {
    const std::string request = absl::StrCat("retry-", round);
    const StoredConsent ra = NewConsent("38001085718", request);
    const StoredConsent rb = NewConsent("38001085718", request);  // another consent id
    GrantResult ga, gb;
    std::thread ta([&] { ga = Grant(*a, ra); });
    std::thread tb([&] { gb = Grant(*b, rb); });
    ta.join();
    tb.join();
    ASSERT_TRUE(ga.status.ok()) << ga.status;
    ASSERT_TRUE(gb.status.ok()) << gb.status;
    EXPECT_EQ(ga.consent_id, gb.consent_id) << "two consents for one request id";
    EXPECT_NE(ga.replayed, gb.replayed);
  }
  EXPECT_EQ(Sql("SELECT count(*) FROM consents"), "20");
}

TEST_F(PostgresStorageTest, AOneTimeConsentRacedOverThreeReplicasIsSpentExactlyOnce) {
  std::vector<std::unique_ptr<PostgresStorage>> replicas;
  for (int i = 0; i < 3; ++i) {
    replicas.push_back(Open());
    ASSERT_NE(replicas.back(), nullptr);
  }
  for (int round = 0; round < 5; ++round) {
    const StoredConsent record =
        NewConsent("38001085718", absl::StrCat("once-", round), tellonce::v1::ONE_TIME);
    ASSERT_TRUE(Grant(*replicas[0], record).status.ok());
    std::vector<absl::Status> results(20);
    std::vector<std::thread> threads;
    for (int i = 0; i < 20; ++i) {
      threads.emplace_back(
          [&, i] { results[i] = Spend(*replicas[i % 3], record.consent().consent_id()); });
    }
    for (std::thread& t : threads) t.join();
    int spent = 0;
    for (const absl::Status& r : results) {
      if (r.ok()) {
        ++spent;
      } else {
        EXPECT_EQ(r.code(), absl::StatusCode::kFailedPrecondition) << r;
      }
    }
    EXPECT_EQ(spent, 1);
    EXPECT_EQ(Sql(absl::StrCat("SELECT count(*) FROM consent_events WHERE kind = 'USED' AND "
                               "consent_id = '",
                               record.consent().consent_id(), "'")),
              "1");
  }
}

TEST_F(PostgresStorageTest, ARevokeAcknowledgedOnOneReplicaIsSeenAtOnceByAnother) {
  std::unique_ptr<PostgresStorage> a = Open();
  std::unique_ptr<PostgresStorage> b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  for (int i = 0; i < 20; ++i) {
    const StoredConsent record = NewConsent("38001085718", absl::StrCat("rv-", i));
    ASSERT_TRUE(Grant(*a, record).status.ok());
    absl::StatusOr<std::vector<Consent>> before = b->consents().Active("38001085718", "tax", 100);
    ASSERT_TRUE(before.ok());
    ASSERT_EQ(before->size(), 1u);
    ASSERT_TRUE(Revoke(*a, record.consent().consent_id()).ok());
    absl::StatusOr<std::vector<Consent>> after = b->consents().Active("38001085718", "tax", 100);
    ASSERT_TRUE(after.ok());
    EXPECT_TRUE(after->empty()) << "replica B still sees the revoked consent as active";
    absl::Status spend = Spend(*b, record.consent().consent_id());
    EXPECT_EQ(spend.code(), absl::StatusCode::kFailedPrecondition);
  }
}

TEST_F(PostgresStorageTest, DropExpiredTakesAConsentOutOfTheActiveIndexOnly) {
  std::unique_ptr<PostgresStorage> s = Open();
  ASSERT_NE(s, nullptr);
  const StoredConsent record = NewConsent("38001085718", "exp");
  ASSERT_TRUE(Grant(*s, record).status.ok());
  ASSERT_TRUE(s->Run([&](Transaction& tx) {
                 absl::StatusOr<std::vector<Consent>> active =
                     tx.ActiveConsents("38001085718", "tax", 10);
                 if (!active.ok()) return active.status();
                 if (active->size() != 1) return absl::InternalError("not found");
                 return tx.DropExpired((*active)[0]);
               }).ok());
  absl::StatusOr<std::vector<Consent>> active = s->consents().Active("38001085718", "tax", 10);
  ASSERT_TRUE(active.ok());
  EXPECT_TRUE(active->empty());
  absl::StatusOr<StoredConsent> read = s->consents().Get(record.consent().consent_id());
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->consent().status(), tellonce::v1::ACTIVE) << "the record must not change";
}

TEST_F(PostgresStorageTest, TheSweepTakesConsentsPastExpiryOutOfTheActiveIndexOnly) {
  std::unique_ptr<PostgresStorage> s = Open();
  ASSERT_NE(s, nullptr);
  StoredConsent old = NewConsent("38001085718", "sweep-old");
  *old.mutable_consent()->mutable_expires_at() = ToProtoTime(absl::Now() - absl::Hours(1));
  StoredConsent live = NewConsent("38001085718", "sweep-live");
  *live.mutable_consent()->mutable_expires_at() = ToProtoTime(absl::Now() + absl::Hours(24));
  StoredConsent open_ended = NewConsent("38001085718", "sweep-none");
  open_ended.mutable_consent()->clear_expires_at();
  for (const StoredConsent* r : {&old, &live, &open_ended}) {
    ASSERT_TRUE(s->Run([&](Transaction& tx) { return tx.InsertConsent(*r); }).ok());
  }
  absl::StatusOr<int64_t> swept = s->SweepExpiredConsents(absl::Now());
  ASSERT_TRUE(swept.ok()) << swept.status();
  EXPECT_EQ(*swept, 1);
  EXPECT_EQ(Sql("SELECT consent_id FROM consents WHERE expiry_seen"),
            old.consent().consent_id());
  absl::StatusOr<std::vector<Consent>> active = s->consents().Active("38001085718", "tax", 10);
  ASSERT_TRUE(active.ok()) << active.status();
  EXPECT_EQ(active->size(), 2u);
  absl::StatusOr<StoredConsent> read = s->consents().Get(old.consent().consent_id());
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->consent().status(), tellonce::v1::ACTIVE) << "the record must not change";
  // Idempotent.
  swept = s->SweepExpiredConsents(absl::Now());
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(*swept, 0);
}

TEST_F(PostgresStorageTest, ANonPositiveSweepIntervalIsRefused) {
  PostgresOptions o = Options();
  o.sweep_interval = absl::ZeroDuration();
  absl::StatusOr<std::unique_ptr<PostgresStorage>> s = postgres::OpenPostgresStorage(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("sweep_interval"), std::string::npos);
}

// --- Access events and the sequencer -----------------------------------------------------

class NumberingTest : public PostgresStorageTest,
                      public ::testing::WithParamInterface<PostgresOptions::Numbering> {};

TEST_P(NumberingTest, EventsFromThreeReplicasGetGaplessUniqueIndexesInOneOrder) {
  std::vector<std::unique_ptr<PostgresStorage>> replicas;
  for (int i = 0; i < 3; ++i) {
    PostgresOptions o = Options();
    o.numbering = GetParam();
    replicas.push_back(Open(o));
    ASSERT_NE(replicas.back(), nullptr);
  }
  std::atomic<bool> writing{true};
  std::thread sequencer([&] {
    while (writing.load()) {
      absl::StatusOr<bool> held = replicas[0]->tree().AcquireSequencer();
      if (held.ok() && *held) (void)replicas[0]->tree().Sequence();
      absl::SleepFor(absl::Milliseconds(5));
    }
  });
  constexpr int kThreadsPerReplica = 3;
  constexpr int kWorksPerThread = 150;
  std::atomic<int> failures{0};
  std::atomic<int> events{0};
  std::vector<std::thread> writers;
  for (int r = 0; r < 3; ++r) {
    for (int t = 0; t < kThreadsPerReplica; ++t) {
      writers.emplace_back([&, r, t] {
        for (int w = 0; w < kWorksPerThread; ++w) {
          const int n = 1 + (w % 3);
          std::vector<AccessEvent> batch;
          for (int k = 0; k < n; ++k) {
            batch.push_back(
                Event(absl::StrCat("3800108571", r), absl::StrCat(r, "-", t, "-", w, "-", k)));
          }
          absl::Status s =
              replicas[r]->Run([&](Transaction& tx) { return tx.AppendAccessEvents(batch); });
          if (s.ok()) {
            events.fetch_add(n);
          } else {
            failures.fetch_add(1);
          }
        }
      });
    }
  }
  for (std::thread& t : writers) t.join();
  writing = false;
  sequencer.join();
  ASSERT_EQ(failures.load(), 0);
  absl::StatusOr<bool> held = replicas[0]->tree().AcquireSequencer();
  ASSERT_TRUE(held.ok() && *held);
  absl::StatusOr<uint64_t> size = replicas[0]->tree().Sequence();
  ASSERT_TRUE(size.ok()) << size.status();
  EXPECT_EQ(*size, static_cast<uint64_t>(events.load()));
  for (auto& r : replicas) {
    absl::StatusOr<uint64_t> seen = r->access_events().Size();
    ASSERT_TRUE(seen.ok());
    EXPECT_EQ(*seen, *size) << "every replica sees one size";
  }

  // Every event exactly once, at indexes 0..size-1, and the events of one work together.
  std::set<std::string> ids;
  std::map<std::string, std::vector<uint64_t>> by_work;
  uint64_t expected = 0;
  absl::Status scanned =
      replicas[1]->access_events().Scan(0, *size, [&](uint64_t index, std::string_view bytes) {
        EXPECT_EQ(index, expected++);
        AccessEvent e;
        EXPECT_TRUE(e.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())));
        EXPECT_TRUE(ids.insert(e.exchange_id()).second) << "duplicate " << e.exchange_id();
        const std::string work = e.exchange_id().substr(0, e.exchange_id().rfind('-'));
        by_work[work].push_back(index);
        return true;
      });
  ASSERT_TRUE(scanned.ok()) << scanned;
  EXPECT_EQ(ids.size(), *size);
  for (const auto& [work, indexes] : by_work) {
    for (size_t k = 1; k < indexes.size(); ++k) {
      EXPECT_EQ(indexes[k], indexes[k - 1] + 1) << "events of work " << work << " not consecutive";
    }
  }
  // The citizen's history, from any replica.
  int citizen_events = 0;
  uint64_t last = 0;
  ASSERT_TRUE(replicas[2]
                  ->access_events()
                  .ScanCitizen("38001085711", std::nullopt,
                               [&](uint64_t index, std::string_view bytes) {
                                 EXPECT_TRUE(citizen_events == 0 || index > last);
                                 last = index;
                                 ++citizen_events;
                                 return true;
                               })
                  .ok());
  EXPECT_EQ(citizen_events, kThreadsPerReplica * (kWorksPerThread / 3) * 6);
  // Reading past the end.
  EXPECT_EQ(replicas[0]->access_events().ReadBytes(*size).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(replicas[0]
                ->access_events()
                .Scan(0, *size + 1, [](uint64_t, std::string_view) { return true; })
                .code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(Sql("SELECT count(*) FROM access_queue"), "0");
  EXPECT_EQ(Sql("SELECT min(idx), max(idx), count(DISTINCT idx) FROM access_events"),
            absl::StrCat("0|", *size - 1, "|", *size));
}

INSTANTIATE_TEST_SUITE_P(BothModes, NumberingTest,
                         ::testing::Values(PostgresOptions::Numbering::kSequencer,
                                           PostgresOptions::Numbering::kAtCommit),
                         [](const auto& info) {
                           return info.param == PostgresOptions::Numbering::kSequencer ? "Sequencer"
                                                                                       : "AtCommit";
                         });

std::vector<certs::TreeBuilder::Node> Grow(certs::TreeBuilder& builder, int leaves) {
  std::vector<certs::TreeBuilder::Node> nodes;
  for (int i = 0; i < leaves; ++i) {
    for (const auto& n : builder.Append(certs::LeafHash(absl::StrCat("leaf", builder.size())))) {
      nodes.push_back(n);
    }
  }
  return nodes;
}

SignedCheckpoint Checkpoint(const certs::TreeBuilder& builder, const std::string& signature) {
  tellonce::v1::Checkpoint body;
  body.set_issuer("spiffe://test/broker");
  body.set_tree_size(builder.size());
  const certs::Hash root = builder.Root();
  body.set_root_hash(std::string(reinterpret_cast<const char*>(root.data()), root.size()));
  *body.mutable_signed_at() = ToProtoTime(absl::Now());
  SignedCheckpoint c;
  c.set_body(body.SerializeAsString());
  c.set_signature(signature);
  c.set_key_id("k1");
  return c;
}

TEST_F(PostgresStorageTest, OnlyOneReplicaIsSequencerAndAnotherTakesOverWithinTheLease) {
  PostgresOptions o = Options();
  o.sequencer_lease = absl::Seconds(1);
  std::unique_ptr<PostgresStorage> a = Open(o);
  std::unique_ptr<PostgresStorage> b = Open(o);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  absl::StatusOr<bool> a_held = a->tree().AcquireSequencer();
  ASSERT_TRUE(a_held.ok() && *a_held);
  absl::StatusOr<bool> b_held = b->tree().AcquireSequencer();
  ASSERT_TRUE(b_held.ok());
  EXPECT_FALSE(*b_held);
  EXPECT_EQ(Sql("SELECT owner FROM sequencer"), a->replica_id());

  // A extends the tree and signs, then stops renewing (paused, or dead).
  certs::TreeBuilder builder;
  std::vector<certs::TreeBuilder::Node> nodes = Grow(builder, 3);
  ASSERT_TRUE(a->tree().ExtendTree(0, 3, nodes).ok());
  ASSERT_TRUE(a->tree().PutCheckpoint(3, Checkpoint(builder, "by-a")).ok());
  const absl::Time paused = absl::Now();

  absl::Time took_over = absl::InfiniteFuture();
  while (absl::Now() - paused < absl::Seconds(5)) {
    b_held = b->tree().AcquireSequencer();
    ASSERT_TRUE(b_held.ok());
    if (*b_held) {
      took_over = absl::Now();
      break;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_NE(took_over, absl::InfiniteFuture()) << "nobody took over";
  EXPECT_LT(took_over - paused, absl::Seconds(1) + absl::Milliseconds(500));
  EXPECT_GE(took_over - paused, absl::Milliseconds(500)) << "taken over before the lease ended";
  EXPECT_EQ(Sql("SELECT owner, epoch FROM sequencer"), absl::StrCat(b->replica_id(), "|2"));

  // B goes on from the stored tree.
  certs::TreeBuilder b_builder = builder;
  std::vector<certs::TreeBuilder::Node> b_nodes = Grow(b_builder, 2);
  ASSERT_TRUE(b->tree().ExtendTree(3, 5, b_nodes).ok());
  ASSERT_TRUE(b->tree().PutCheckpoint(5, Checkpoint(b_builder, "by-b")).ok());

  // A wakes up and writes what it had prepared: refused by the database, nothing stored.
  std::vector<certs::TreeBuilder::Node> late = Grow(builder, 1);
  absl::Status extend = a->tree().ExtendTree(3, 4, late);
  EXPECT_EQ(extend.code(), absl::StatusCode::kAborted) << extend;
  EXPECT_THAT(extend.message(), HasSubstr("no longer current"));
  absl::Status cp = a->tree().PutCheckpoint(4, Checkpoint(builder, "late"));
  EXPECT_EQ(cp.code(), absl::StatusCode::kAborted) << cp;
  absl::StatusOr<uint64_t> sequenced = a->tree().Sequence();
  EXPECT_EQ(sequenced.status().code(), absl::StatusCode::kAborted);
  absl::StatusOr<bool> a_again = a->tree().AcquireSequencer();
  ASSERT_TRUE(a_again.ok());
  EXPECT_FALSE(*a_again);

  absl::StatusOr<uint64_t> size = b->tree().TreeSize();
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(*size, 5u);
  EXPECT_EQ(Sql("SELECT string_agg(tree_size || ':' || epoch, ',' ORDER BY tree_size) FROM "
                "checkpoints"),
            "3:1,5:2");
  // Every stored node is the hash of the right subtree: the root from storage matches.
  absl::StatusOr<certs::Hash> root = certs::RootHash(
      5, [&](int level, uint64_t index) { return b->tree().ReadNode(level, index); });
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_EQ(*root, b_builder.Root());
}

TEST_F(PostgresStorageTest, GracefulReleaseHandsTheRoleOverAtOnce) {
  PostgresOptions o = Options();
  o.sequencer_lease = absl::Seconds(30);
  std::unique_ptr<PostgresStorage> a = Open(o);
  std::unique_ptr<PostgresStorage> b = Open(o);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(*a->tree().AcquireSequencer());
  ASSERT_FALSE(*b->tree().AcquireSequencer());
  a.reset();  // shutting down releases the role
  absl::StatusOr<bool> b_held = b->tree().AcquireSequencer();
  ASSERT_TRUE(b_held.ok());
  EXPECT_TRUE(*b_held);
}

TEST_F(PostgresStorageTest, TreeAndCheckpointWritesAreFencedOnTheStoredSize) {
  std::unique_ptr<PostgresStorage> s = Open();
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(*s->tree().AcquireSequencer());
  certs::TreeBuilder builder;
  std::vector<certs::TreeBuilder::Node> nodes = Grow(builder, 4);
  absl::Status wrong = s->tree().ExtendTree(2, 4, nodes);
  EXPECT_EQ(wrong.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(Sql("SELECT count(*) FROM tree_nodes"), "0");
  ASSERT_TRUE(s->tree().ExtendTree(0, 4, nodes).ok());
  EXPECT_EQ(s->tree().ExtendTree(0, 4, nodes).code(), absl::StatusCode::kAborted);

  const SignedCheckpoint cp = Checkpoint(builder, "sig");
  EXPECT_EQ(s->tree().PutCheckpoint(5, cp).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(s->tree().PutCheckpoint(4, cp).ok());
  EXPECT_TRUE(s->tree().PutCheckpoint(4, cp).ok()) << "the same checkpoint again is fine";
  EXPECT_EQ(s->tree().PutCheckpoint(4, Checkpoint(builder, "other")).code(),
            absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(s->tree().PutCheckpoint(2, Checkpoint(builder, "older")).ok());
  std::vector<uint64_t> sizes;
  ASSERT_TRUE(s->tree()
                  .ScanCheckpoints(0,
                                   [&](uint64_t size, SignedCheckpoint&) {
                                     sizes.push_back(size);
                                     return true;
                                   })
                  .ok());
  EXPECT_THAT(sizes, ::testing::ElementsAre(2, 4));
  EXPECT_EQ(s->tree().ReadNode(0, 9).status().code(), absl::StatusCode::kDataLoss);
}

// --- Publishing and deliveries -----------------------------------------------------------

TEST_F(PostgresStorageTest, APublishRacedOnTwoReplicasIsRecordedOnce) {
  std::unique_ptr<PostgresStorage> a = Open();
  std::unique_ptr<PostgresStorage> b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  auto publish = [](Storage& s, const std::string& event_id, bool* replayed) {
    return s.Run([&, event_id](Transaction& tx) -> absl::Status {
      absl::StatusOr<std::string> fp = tx.PublishedFingerprint("registry", event_id);
      if (fp.ok()) {
        *replayed = true;
        return absl::OkStatus();
      }
      *replayed = false;
      if (absl::Status st = tx.RecordPublished("registry", event_id, "fp"); !st.ok()) return st;
      Delivery d;
      d.set_subscriber("tax");
      d.mutable_event()->set_event_id(event_id);
      d.mutable_event()->set_citizen_id("38001085718");
      absl::StatusOr<std::vector<Delivery>> added = tx.AddDeliveries({d});
      return added.status();
    });
  };
  for (int round = 0; round < 20; ++round) {
    const std::string id = absl::StrCat("ev-", round);
    bool ra = false, rb = false;
    absl::Status sa, sb;
    std::thread ta([&] { sa = publish(*a, id, &ra); });
    std::thread tb([&] { sb = publish(*b, id, &rb); });
    ta.join();
    tb.join();
    ASSERT_TRUE(sa.ok()) << sa;
    ASSERT_TRUE(sb.ok()) << sb;
    EXPECT_NE(ra, rb);
  }
  EXPECT_EQ(Sql("SELECT count(*), count(DISTINCT event_id) FROM deliveries"), "20|20");
  // Outside a check, a recorded event id is ALREADY_EXISTS.
  absl::Status again =
      a->Run([](Transaction& tx) { return tx.RecordPublished("registry", "ev-1", "x"); });
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(PostgresStorageTest, DeliveriesAreNumberedInCommitOrderAndKeptPerSubscriber) {
  std::unique_ptr<PostgresStorage> a = Open();
  std::unique_ptr<PostgresStorage> b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  std::vector<std::thread> threads;
  std::mutex mu;
  std::vector<uint64_t> numbers;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Storage& s = t % 2 == 0 ? *a : *b;
      for (int i = 0; i < 25; ++i) {
        std::vector<Delivery> got;
        absl::Status st = s.Run([&](Transaction& tx) -> absl::Status {
          std::vector<Delivery> ds(2);
          ds[0].set_subscriber("tax");
          ds[1].set_subscriber("benefits");
          for (Delivery& d : ds) d.mutable_event()->set_citizen_id(absl::StrCat("c", i));
          absl::StatusOr<std::vector<Delivery>> added = tx.AddDeliveries(ds);
          if (!added.ok()) return added.status();
          got = *added;
          return absl::OkStatus();
        });
        ASSERT_TRUE(st.ok()) << st;
        ASSERT_EQ(got.size(), 2u);
        uint64_t first = 0, second = 0;
        ASSERT_TRUE(absl::SimpleAtoi(got[0].delivery_id(), &first));
        ASSERT_TRUE(absl::SimpleAtoi(got[1].delivery_id(), &second));
        EXPECT_EQ(second, first + 1);
        std::lock_guard<std::mutex> lock(mu);
        numbers.push_back(first);
        numbers.push_back(second);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::sort(numbers.begin(), numbers.end());
  for (size_t i = 0; i < numbers.size(); ++i) EXPECT_EQ(numbers[i], i);

  absl::StatusOr<std::vector<Delivery>> pending =
      b->deliveries().Pending("tax", 0, UINT64_MAX, 1000);
  ASSERT_TRUE(pending.ok()) << pending.status();
  ASSERT_EQ(pending->size(), 100u);
  for (size_t i = 1; i < pending->size(); ++i) {
    EXPECT_LT(std::stoull((*pending)[i - 1].delivery_id()),
              std::stoull((*pending)[i].delivery_id()));
  }
  // A failed attempt, a dead one, an acknowledged one, and a re-queue.
  Delivery d0 = (*pending)[0];
  d0.set_attempts(3);
  d0.set_last_error("UNAVAILABLE");
  ASSERT_TRUE(a->deliveries().Update(d0).ok());
  Delivery d1 = (*pending)[1];
  d1.set_state(Delivery::DEAD);
  ASSERT_TRUE(a->deliveries().Update(d1).ok());
  ASSERT_TRUE(a->deliveries().Remove((*pending)[2]).ok());
  absl::StatusOr<Delivery> read = b->deliveries().Get(std::stoull(d0.delivery_id()));
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->attempts(), 3);
  EXPECT_EQ(b->deliveries().Get(std::stoull((*pending)[2].delivery_id())).status().code(),
            absl::StatusCode::kNotFound);
  pending = b->deliveries().Pending("tax", 0, UINT64_MAX, 1000);
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(pending->size(), 98u) << "dead and removed ones are not pending";
  d1.set_state(Delivery::PENDING);
  d1.set_attempts(0);
  ASSERT_TRUE(a->deliveries().Requeue({d1}).ok());
  pending = b->deliveries().Pending("tax", 0, UINT64_MAX, 1000);
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(pending->size(), 99u);
  EXPECT_EQ(Sql(absl::StrCat("SELECT state, attempts FROM deliveries WHERE sequence = ",
                             d0.delivery_id())),
            "PENDING|3");
  int scanned = 0;
  ASSERT_TRUE(a->deliveries().Scan(0, [&](Delivery&) { return ++scanned < 1000; }).ok());
  EXPECT_EQ(scanned, 199);
}

TEST_F(PostgresStorageTest, ASubscribersDeliveriesAreClaimedByOneReplicaAtATime) {
  PostgresOptions o = Options();
  o.claim_lease = absl::Milliseconds(600);
  std::unique_ptr<PostgresStorage> a = Open(o);
  std::unique_ptr<PostgresStorage> b = Open(o);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(*a->ClaimSubscriber("tax"));
  EXPECT_FALSE(*b->ClaimSubscriber("tax"));
  EXPECT_TRUE(*b->ClaimSubscriber("benefits"));
  EXPECT_FALSE(*a->ClaimSubscriber("benefits"));
  // A keeps renewing; B never gets "tax" meanwhile.
  for (int i = 0; i < 6; ++i) {
    absl::SleepFor(absl::Milliseconds(200));
    EXPECT_TRUE(*a->ClaimSubscriber("tax"));
    EXPECT_FALSE(*b->ClaimSubscriber("tax"));
  }
  // A stops (dies): B takes over after the lease.
  const absl::Time stopped = absl::Now();
  absl::Time taken = absl::InfiniteFuture();
  while (absl::Now() - stopped < absl::Seconds(3)) {
    if (*b->ClaimSubscriber("tax")) {
      taken = absl::Now();
      break;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_LT(taken - stopped, absl::Milliseconds(1000));
  EXPECT_FALSE(*a->ClaimSubscriber("tax")) << "A woke up and must not dispatch for tax";
  b->Release();
  EXPECT_TRUE(*a->ClaimSubscriber("tax")) << "released claims are free at once";
}

// --- Failures ----------------------------------------------------------------------------

TEST_F(PostgresStorageTest, DatabaseDownFailsFastWithUnavailableAndRecoversByItself) {
  std::unique_ptr<PostgresStorage> s = Open();
  ASSERT_NE(s, nullptr);
  std::vector<std::string> acknowledged;
  for (int i = 0; i < 10; ++i) {
    const StoredConsent r = NewConsent("38001085718", absl::StrCat("down-", i));
    ASSERT_TRUE(Grant(*s, r).status.ok());
    acknowledged.push_back(r.consent().consent_id());
  }
  ASSERT_TRUE(s->Health().ok());
  ASSERT_TRUE(cluster_->Stop(/*immediate=*/true).ok());

  for (int i = 0; i < 5; ++i) {
    const absl::Time start = absl::Now();
    GrantResult g = Grant(*s, NewConsent("38001085718", absl::StrCat("while-down-", i)));
    EXPECT_EQ(g.status.code(), absl::StatusCode::kUnavailable) << g.status;
    EXPECT_THAT(g.status.message(), HasSubstr("postgres"));
    EXPECT_LT(absl::Now() - start, absl::Seconds(1)) << g.status;
    absl::StatusOr<std::vector<Consent>> read = s->consents().Active("38001085718", "tax", 10);
    EXPECT_EQ(read.status().code(), absl::StatusCode::kUnavailable);
  }
  EXPECT_EQ(s->Health().code(), absl::StatusCode::kUnavailable);

  ASSERT_TRUE(cluster_->Restart().ok());
  absl::Status back;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  do {
    back = Grant(*s, NewConsent("38001085718", "after")).status;
    if (!back.ok()) absl::SleepFor(absl::Milliseconds(100));
  } while (!back.ok() && absl::Now() < deadline);
  ASSERT_TRUE(back.ok()) << back;
  EXPECT_TRUE(s->Health().ok());
  for (const std::string& id : acknowledged) {
    EXPECT_TRUE(s->consents().Get(id).ok()) << "acknowledged consent " << id << " lost";
  }
  EXPECT_EQ(Sql("SELECT count(*) FROM consents WHERE request_id LIKE 'while-down-%'"), "0");
}

TEST_F(PostgresStorageTest, BadOptionsAndANewerSchemaAreRefusedAtOpen) {
  PostgresOptions o = Options();
  o.conninfo = "";
  EXPECT_EQ(postgres::OpenPostgresStorage(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Options();
  o.pool_size = 1;
  EXPECT_EQ(postgres::OpenPostgresStorage(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Options();
  o.conninfo = "host=/nonexistent port=5432 dbname=x";
  EXPECT_EQ(postgres::OpenPostgresStorage(o).status().code(), absl::StatusCode::kUnavailable);

  o = Options();
  o.apply_migrations = false;
  absl::Status unmigrated = postgres::OpenPostgresStorage(o).status();
  EXPECT_EQ(unmigrated.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(unmigrated.message(), HasSubstr("--migrate"));
  absl::StatusOr<std::vector<int>> applied = postgres::MigratePostgres(Options().conninfo);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_FALSE(applied->empty());
  EXPECT_TRUE(postgres::OpenPostgresStorage(o).ok());

  Sql("INSERT INTO tellonce_schema VALUES (1000, 'from the future')");
  absl::Status newer = postgres::OpenPostgresStorage(Options()).status();
  EXPECT_EQ(newer.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(newer.message(), HasSubstr("upgrade the broker"));
}

}  // namespace
}  // namespace tellonce::storage
