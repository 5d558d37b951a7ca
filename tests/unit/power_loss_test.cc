// "Acknowledged means durable", tested against a power cut rather than a process kill:
// `kill -9` leaves the page cache, so it cannot catch a write acknowledged before its
// fsync. Here the broker's storage stack (the same pieces broker.cc wires: the RocksDB
// storage of storage::OpenRocksStorage with a completion thread and group-commit
// gathering, the consent store over it, the access log with its Merkle tree and
// checkpoints, the outbox and the change publisher) runs in-process over
// PowerLossFileSystem
// (tests/testing/power_loss_fs.h), which drops everything not synced when the power is
// cut. Four threads drive mixed load (grants, revokes, ONE_TIME spends, access-log
// appends, publishes, fresh checkpoints) and record what was acknowledged; the power is
// cut at a random file system operation, with others in flight; the stack is closed,
// the disk left as a power cut would leave it (unsynced tails dropped, or partly kept:
// torn tails on every other seed; files and renames of unsynced directories gone), and
// the database reopened. Then:
//  - it opens without corruption, and the transparency log and outbox start;
//  - every acknowledged grant, revoke, ONE_TIME spend, access event and publication is
//    there; an acknowledged spend stays spent;
//  - nothing is half-applied: a consent is found exactly when its citizen index lists
//    it, every ACTIVE one is in the citizen+consumer index, a publication's deliveries,
//    access event and idempotency record are all there or none, the access log has no
//    gap and every event is in its citizen's index, a retried grant or publication is a
//    replay exactly when the first one is stored;
//  - `audit verify` (cli::ReadDataDirectory + cli::VerifyLog, as the CLI runs it) passes
//    against the last checkpoint handed out before the cut.
// Each seed runs three rounds on the same data: load and a cut just before a random file
// system operation (often between a WAL write and its sync); a cut while the database
// recovers from that (a new MANIFEST, WAL and OPTIONS file, CURRENT renamed); load and a
// cut again. TELLONCE_POWER_LOSS_SEEDS sets the number of seeds (default 16).

#include <atomic>
#include <cstdlib>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "broker/access_log.h"
#include "broker/connector_pool.h"
#include "broker/outbox.h"
#include "broker/publisher.h"
#include "broker/transparency.h"
#include "cli/audit.h"
#include "consent/consent_store.h"
#include "consent/registry.h"
#include "gtest/gtest.h"
#include "proto/textproto.h"
#include "proto/time.h"
#include "rocksdb/env.h"
#include "storage/rocksdb/rocks_storage.h"
#include "tests/testing/power_loss_fs.h"
#include "tests/testing/sample_directory.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_keys.h"

namespace tellonce {
namespace {

using ::tellonce::testing::PowerLossFileSystem;
using ::tellonce::testing::TempDir;

constexpr char kIssuer[] = "spiffe://tellonce.local/broker";
// Valid Estonian personal codes (the sample directory's citizen-id rule).
const char* const kCitizens[] = {"37605030299", "49403136526", "38001085718", "49001010001"};

std::string SampleDirectoryPath() {
  const char* source = std::getenv("TELLONCE_SOURCE_DIR");
  return std::string(source != nullptr ? source : ".") + "/deploy/local/directory.textproto";
}

// What the load asked for and what was acknowledged. Completions run on the commit
// queue's threads, so everything is under mu.
struct Ledger {
  struct Grant {
    tellonce::v1::StoredConsent record;  // as submitted (the consent id assigned here)
    bool one_time = false;
    bool acked = false;
    bool revoke_tried = false, revoke_acked = false;
    bool spend_tried = false, spend_acked = false;
  };
  struct Append {
    std::vector<std::string> exchange_ids;
    bool acked = false;
  };
  struct Publish {
    tellonce::v1::PublishChangeRequest request;
    bool acked = false;
  };
  absl::Mutex mu;
  std::map<std::string, Grant> grants ABSL_GUARDED_BY(mu);  // by consent id
  std::vector<Append> appends ABSL_GUARDED_BY(mu);
  std::map<std::string, Publish> publishes ABSL_GUARDED_BY(mu);  // by event id
  // The largest checkpoint handed out.
  std::optional<tellonce::v1::SignedCheckpoint> checkpoint ABSL_GUARDED_BY(mu);
  uint64_t checkpoint_size ABSL_GUARDED_BY(mu) = 0;
};

// The broker's storage stack over one data directory and file system.
struct Stack {
  std::unique_ptr<storage::Storage> storage;
  std::unique_ptr<consent::ConsentStore> store;
  std::unique_ptr<broker::AccessLog> log;
  std::unique_ptr<broker::TransparencyLog> tlog;
  std::unique_ptr<broker::ConnectorPool> pool;
  std::unique_ptr<broker::Outbox> outbox;
  std::unique_ptr<broker::ChangePublisher> publisher;

  // As Broker::Shutdown does: the storage commits and completes what is queued while
  // what completions call into is still there, then the rest in reverse order.
  void Close() {
    publisher.reset();
    if (storage != nullptr) storage->Close();
    outbox.reset();
    pool.reset();
    tlog.reset();
    log.reset();
    store.reset();
    storage.reset();
  }
  ~Stack() { Close(); }
};

template <typename T>
std::optional<T> Await(std::shared_ptr<std::promise<T>> p, absl::Duration timeout) {
  std::future<T> f = p->get_future();
  if (f.wait_for(absl::ToChronoSeconds(timeout)) != std::future_status::ready) return std::nullopt;
  return f.get();
}

class PowerLossTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    absl::StatusOr<certs::SigningKey> key =
        certs::SigningKey::FromPem(testing::NewP256KeyPem(), "k1");
    ASSERT_TRUE(key.ok()) << key.status();
    key_ = std::make_unique<certs::SigningKey>(*key);
    absl::StatusOr<certs::VerifyingKey> verifying =
        certs::VerifyingKey::FromPublicKeyPem(key_->PublicKeyPem());
    ASSERT_TRUE(verifying.ok());
    ASSERT_TRUE(keys_.Add("k1", *verifying).ok());
    absl::StatusOr<std::shared_ptr<const consent::Directory>> sample =
        testing::LoadSampleDirectory(SampleDirectoryPath(), dir_.path());
    ASSERT_TRUE(sample.ok()) << sample.status();
    // No connector answers: deliveries stay pending (port 1 refuses at once).
    tellonce::v1::Directory proto = (*sample)->proto();
    for (auto& agency : *proto.mutable_agencies()) {
      if (!agency.connector_endpoint().empty()) agency.set_connector_endpoint("127.0.0.1:1");
    }
    absl::StatusOr<std::shared_ptr<const consent::Directory>> patched =
        consent::Directory::FromProto(proto);
    ASSERT_TRUE(patched.ok()) << patched.status();
    directory_ = std::make_unique<consent::DirectoryHolder>(*patched);
    fs_ = std::make_shared<PowerLossFileSystem>(static_cast<uint64_t>(GetParam()));
    fs_->set_torn_tails(GetParam() % 2 == 1);
    env_ = rocksdb::NewCompositeEnv(fs_);
    path_ = dir_.path() + "/db";
  }

  // Opens the stack over the file system; false (with a test failure, unless the power
  // may go off meanwhile: `may_fail`) when it does not.
  bool Open(Stack& s, bool may_fail = false) {
    absl::StatusOr<std::unique_ptr<storage::Storage>> opened =
        storage::OpenRocksStorage({.path = path_,
                                   .block_cache_mb = 8,
                                   .gather = absl::Microseconds(250),
                                   .completion_thread = true,
                                   .env = env_.get()});
    if (may_fail && !opened.ok()) return false;
    EXPECT_TRUE(opened.ok()) << "reopening after the power cut: " << opened.status();
    if (!opened.ok()) return false;
    s.storage = *std::move(opened);
    s.store = consent::NewConsentStore(s.storage.get());
    s.log = std::make_unique<broker::AccessLog>(s.storage.get());
    absl::StatusOr<std::unique_ptr<broker::TransparencyLog>> tlog =
        broker::TransparencyLog::Start(s.storage.get(), s.log.get(), *key_,
                                       {.issuer = kIssuer,
                                        .checkpoint_interval = absl::Milliseconds(20),
                                        .fresh_interval = absl::ZeroDuration()});
    if (may_fail && !tlog.ok()) return false;
    EXPECT_TRUE(tlog.ok()) << "transparency log after the power cut: " << tlog.status();
    if (!tlog.ok()) return false;
    s.tlog = *std::move(tlog);
    s.storage->SetAppendListener([t = s.tlog.get()] { t->Notify(); });
    s.pool = std::make_unique<broker::ConnectorPool>(broker::ConnectorPool::Options{});
    absl::StatusOr<std::unique_ptr<broker::Outbox>> outbox = broker::Outbox::Start(
        &s.storage->deliveries(), directory_.get(), s.pool.get(),
        {.initial_backoff = absl::Seconds(30), .max_backoff = absl::Seconds(60)});
    if (may_fail && !outbox.ok()) return false;
    EXPECT_TRUE(outbox.ok()) << "outbox after the power cut: " << outbox.status();
    if (!outbox.ok()) return false;
    s.outbox = *std::move(outbox);
    s.publisher = std::make_unique<broker::ChangePublisher>(
        directory_.get(), s.store.get(), s.storage.get(), s.outbox.get(), consent::RequestLimits());
    return true;
  }

  // Runs the load on `s` from `threads` threads until the power goes off: just before
  // the `cut_at`-th file system operation from now (or after 2000 operations of the load,
  // should that come first).
  void Load(Stack& s, int threads, uint64_t cut_at, uint64_t seed) {
    fs_->PowerCutAtOperation(cut_at);
    std::atomic<int> started{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        std::mt19937_64 rng(seed * 131 + t);
        for (int n = 0; fs_->power_on(); ++n) {
          if (started.fetch_add(1) == 2000) fs_->PowerCut();
          Step(s, rng, absl::StrCat(seed, "-", round_, "-", t, "-", n));
        }
      });
    }
    for (std::thread& w : workers) w.join();
    operations_ += started.load();
  }

  // One operation, waited for.
  void Step(Stack& s, std::mt19937_64& rng, const std::string& tag) {
    const int dice = static_cast<int>(rng() % 100);
    const char* citizen = kCitizens[rng() % 4];
    const absl::Duration wait = absl::Seconds(20);
    if (dice < 35) {  // grant
      Ledger::Grant g;
      const absl::Time now = absl::Now();
      tellonce::v1::Consent& c = *g.record.mutable_consent();
      c.set_consent_id(consent::NewConsentId(now));
      c.set_citizen_id(citizen);
      c.set_consumer("tax");
      c.add_attributes("person.address");
      c.add_attributes("person.name");
      c.set_purpose("TAX_DEDUCTION_CHECK");
      *c.mutable_valid_from() = ToProtoTime(now - absl::Minutes(1));
      *c.mutable_expires_at() = ToProtoTime(now + absl::Hours(24));
      g.one_time = rng() % 2 == 0;
      c.set_mode(g.one_time ? tellonce::v1::ONE_TIME : tellonce::v1::UNTIL_EXPIRY);
      c.set_portal("portal");
      *c.mutable_captured_at() = ToProtoTime(now);
      c.set_status(tellonce::v1::ACTIVE);
      tellonce::v1::ConsentEvent* e = c.add_events();
      e->set_kind(tellonce::v1::ConsentEvent::GRANTED);
      *e->mutable_at() = ToProtoTime(now);
      e->set_actor("portal");
      c.set_request_id(absl::StrCat("r-", tag));
      g.record.set_request_fingerprint(absl::StrCat("f-", tag));
      const std::string id = c.consent_id();
      tellonce::v1::StoredConsent record = g.record;
      {
        absl::MutexLock lock(&ledger_.mu);
        ledger_.grants[id] = std::move(g);
      }
      auto done = std::make_shared<std::promise<bool>>();
      s.store->Grant(std::move(record), [this, id, done](auto r) {
        if (r.ok()) {
          absl::MutexLock lock(&ledger_.mu);
          ledger_.grants[id].acked = true;
        }
        done->set_value(true);
      });
      Await(done, wait);
    } else if (dice < 60) {  // revoke (35..47) or spend (48..59) an acknowledged consent
      const bool spend = dice >= 48;
      std::string id, owner;
      {
        absl::MutexLock lock(&ledger_.mu);
        std::vector<std::string> candidates;
        for (auto& [cid, g] : ledger_.grants) {
          if (g.acked && !g.revoke_tried && !g.spend_tried && (!spend || g.one_time)) {
            candidates.push_back(cid);
          }
        }
        if (candidates.empty()) return;
        id = candidates[rng() % candidates.size()];
        Ledger::Grant& g = ledger_.grants[id];
        (spend ? g.spend_tried : g.revoke_tried) = true;
        owner = g.record.consent().citizen_id();
      }
      auto done = std::make_shared<std::promise<bool>>();
      auto record = [this, id, spend, done](absl::StatusOr<tellonce::v1::Consent> r) {
        if (r.ok()) {
          absl::MutexLock lock(&ledger_.mu);
          (spend ? ledger_.grants[id].spend_acked : ledger_.grants[id].revoke_acked) = true;
        }
        done->set_value(true);
      };
      if (spend) {
        s.store->MarkUsed(id, "tax", absl::Now(), std::move(record));
      } else {
        tellonce::v1::ConsentEvent event;
        event.set_actor("portal");
        event.set_reason("changed my mind");
        s.store->Revoke(id, owner, event, absl::Now(), std::move(record));
      }
      Await(done, wait);
    } else if (dice < 80) {  // access events, as an exchange records them
      std::vector<tellonce::v1::AccessEvent> events;
      Ledger::Append a;
      const int n = 1 + static_cast<int>(rng() % 3);
      for (int i = 0; i < n; ++i) {
        tellonce::v1::AccessEvent& e = events.emplace_back();
        *e.mutable_at() = ToProtoTime(absl::Now());
        e.set_exchange_id(absl::StrCat("x-", tag, "-", i));
        e.set_consumer("tax");
        e.set_provider("registry");
        e.set_citizen_id(citizen);
        e.add_attributes("person.name");
        e.set_outcome(tellonce::v1::AccessEvent::ALLOWED);
        a.exchange_ids.push_back(e.exchange_id());
      }
      size_t slot;
      {
        absl::MutexLock lock(&ledger_.mu);
        slot = ledger_.appends.size();
        ledger_.appends.push_back(std::move(a));
      }
      auto done = std::make_shared<std::promise<bool>>();
      s.log->Append(std::move(events), [this, slot, done](absl::Status appended) {
        if (appended.ok()) {
          absl::MutexLock lock(&ledger_.mu);
          ledger_.appends[slot].acked = true;
        }
        done->set_value(true);
      });
      Await(done, wait);
    } else if (dice < 93) {  // a change published by the registry
      tellonce::v1::PublishChangeRequest request;
      request.set_event_id(absl::StrCat("ev-", tag));
      request.set_citizen_id(citizen);
      request.set_event_type("ADDRESS_CHANGED");
      request.add_attributes("person.address");
      *request.mutable_occurred_at() = ToProtoTime(absl::Now());
      {
        absl::MutexLock lock(&ledger_.mu);
        ledger_.publishes[request.event_id()].request = request;
      }
      auto done = std::make_shared<std::promise<bool>>();
      s.publisher->Publish("registry", request,
                           [this, id = request.event_id(),
                            done](absl::StatusOr<tellonce::v1::PublishChangeResponse> r) {
                             if (r.ok()) {
                               absl::MutexLock lock(&ledger_.mu);
                               ledger_.publishes[id].acked = true;
                             }
                             done->set_value(true);
                           });
      Await(done, wait);
    } else {  // a fresh checkpoint handed out
      auto done = std::make_shared<std::promise<bool>>();
      s.tlog->FreshCheckpoint([this, done](absl::StatusOr<tellonce::v1::SignedCheckpoint> c) {
        if (c.ok()) {
          tellonce::v1::Checkpoint body;
          body.ParseFromString(c->body());
          absl::MutexLock lock(&ledger_.mu);
          if (!ledger_.checkpoint.has_value() || body.tree_size() >= ledger_.checkpoint_size) {
            ledger_.checkpoint = *c;
            ledger_.checkpoint_size = body.tree_size();
          }
        }
        done->set_value(true);
      });
      Await(done, wait);
    }
  }

  // Everything the class comment promises, on the reopened stack.
  void CheckRecovered(Stack& s) {
    absl::MutexLock lock(&ledger_.mu);
    const absl::Time now = absl::Now();

    // Consents: found exactly when indexed; acknowledged changes present.
    std::map<std::string, std::set<std::string>> listed;  // citizen -> ids
    for (const char* citizen : kCitizens) {
      std::string token;
      do {
        absl::StatusOr<consent::ConsentStore::Page> page =
            s.store->List(citizen, tellonce::v1::CONSENT_STATUS_UNSPECIFIED, 100, token, now);
        ASSERT_TRUE(page.ok()) << "citizen index of " << citizen << ": " << page.status();
        for (const tellonce::v1::Consent& c : page->consents)
          listed[citizen].insert(c.consent_id());
        token = page->next_page_token;
      } while (!token.empty());
    }
    std::map<std::string, std::set<std::string>> active;  // citizen -> ACTIVE ids
    int present = 0;
    for (auto& [id, g] : ledger_.grants) {
      const std::string& citizen = g.record.consent().citizen_id();
      absl::StatusOr<tellonce::v1::StoredConsent> got = s.store->Get(id, citizen, now);
      EXPECT_TRUE(got.ok() || !g.acked) << "acknowledged grant " << id << " lost: " << got.status();
      if (!got.ok()) {
        EXPECT_TRUE(absl::IsNotFound(got.status())) << id << ": " << got.status();
        EXPECT_FALSE(listed[citizen].count(id)) << id << " indexed but its record is gone";
        continue;
      }
      ++present;
      EXPECT_TRUE(listed[citizen].count(id)) << id << " stored without its citizen index entry";
      const tellonce::v1::Consent& c = got->consent();
      EXPECT_EQ(c.consumer(), "tax");
      if (g.revoke_acked) {
        EXPECT_EQ(c.status(), tellonce::v1::REVOKED) << "acknowledged revoke of " << id << " lost";
      }
      if (g.spend_acked) {
        EXPECT_EQ(c.status(), tellonce::v1::USED) << "acknowledged spend of " << id << " lost";
      }
      // Status and its event are one record: a REVOKED consent has its REVOKED event.
      if (c.status() == tellonce::v1::REVOKED || c.status() == tellonce::v1::USED) {
        EXPECT_GE(c.events_size(), 2) << id;
      }
      if (c.status() == tellonce::v1::ACTIVE) active[citizen].insert(id);
    }
    for (const char* citizen : kCitizens) {
      absl::StatusOr<std::vector<tellonce::v1::Consent>> found =
          s.store->FindActive(citizen, "tax", now);
      ASSERT_TRUE(found.ok()) << found.status();
      std::set<std::string> ids;
      for (const tellonce::v1::Consent& c : found.value()) ids.insert(c.consent_id());
      EXPECT_EQ(ids, active[citizen]) << "citizen+consumer index of " << citizen;
    }

    // Access log: no gap, acknowledged appends where they were acknowledged, every event
    // in its citizen's index.
    absl::StatusOr<uint64_t> size = s.log->Size();
    ASSERT_TRUE(size.ok()) << size.status();
    std::map<std::string, int> per_exchange;
    std::map<std::string, uint64_t> index_of;  // exchange id -> its (last) index
    std::map<std::string, int> per_citizen;
    for (uint64_t i = 0; i < *size; ++i) {
      absl::StatusOr<tellonce::v1::AccessEvent> e = s.log->Read(i);
      ASSERT_TRUE(e.ok()) << "access event " << i << " of " << *size << ": " << e.status();
      ++per_exchange[e->exchange_id()];
      index_of[e->exchange_id()] = i;
      ++per_citizen[e->citizen_id()];
    }
    // An append's events are all there or none, once each, at consecutive indexes; an
    // acknowledged one is there.
    for (const Ledger::Append& a : ledger_.appends) {
      const bool first_there = per_exchange[a.exchange_ids.front()] > 0;
      EXPECT_TRUE(first_there || !a.acked)
          << "acknowledged access event " << a.exchange_ids.front() << " lost";
      for (size_t k = 0; k < a.exchange_ids.size(); ++k) {
        const std::string& id = a.exchange_ids[k];
        EXPECT_EQ(per_exchange[id], first_there ? 1 : 0) << "access event " << id;
        if (first_there && per_exchange[id] == 1) {
          EXPECT_EQ(index_of[id], index_of[a.exchange_ids.front()] + k)
              << "access event " << id << " not next to the rest of its append";
        }
      }
    }
    for (const char* citizen : kCitizens) {
      int listed_events = 0;
      std::string token;
      do {
        absl::StatusOr<tellonce::v1::ListAccessEventsResponse> page = s.tlog->List(
            citizen, std::nullopt, absl::InfinitePast(), absl::InfiniteFuture(), 500, token);
        ASSERT_TRUE(page.ok()) << page.status();
        listed_events += page->events_size();
        token = page->next_page_token();
      } while (!token.empty());
      EXPECT_EQ(listed_events, per_citizen[citizen]) << "access index of " << citizen;
    }

    // Publications: deliveries, access event and idempotency record together.
    std::map<std::string, int> deliveries;  // event id -> stored deliveries
    std::string token;
    do {
      absl::StatusOr<tellonce::v1::ListDeliveriesResponse> page =
          s.outbox->List("", tellonce::v1::Delivery::STATE_UNSPECIFIED, 500, token);
      ASSERT_TRUE(page.ok()) << page.status();
      for (const tellonce::v1::Delivery& d : page->deliveries()) ++deliveries[d.event().event_id()];
      token = page->next_page_token();
    } while (!token.empty());
    for (auto& [id, p] : ledger_.publishes) {
      const bool logged = per_exchange[id] > 0;
      EXPECT_TRUE(logged || !p.acked) << "acknowledged publication " << id << " lost";
      EXPECT_LE(per_exchange[id], 1) << id;  // one subscriber (tax)
      EXPECT_TRUE(logged || deliveries[id] == 0) << id << ": deliveries without access event";
      auto replay = std::make_shared<std::promise<absl::StatusOr<bool>>>();
      s.publisher->Publish("registry", p.request, [replay](auto r) {
        replay->set_value(r.ok() ? absl::StatusOr<bool>(r->replayed())
                                 : absl::StatusOr<bool>(r.status()));
      });
      std::optional<absl::StatusOr<bool>> replayed = Await(replay, absl::Seconds(20));
      ASSERT_TRUE(replayed.has_value() && replayed->ok());
      EXPECT_EQ(**replayed, logged) << id << ": idempotency record and access event disagree";
      p.acked = true;  // stored now either way
    }

    // Grants retried with the same request id: a replay exactly when stored.
    for (auto& [id, g] : ledger_.grants) {
      const bool stored = listed[g.record.consent().citizen_id()].count(id) > 0;
      auto retry = std::make_shared<std::promise<absl::StatusOr<bool>>>();
      s.store->Grant(g.record, [retry](absl::StatusOr<consent::ConsentStore::GrantOutcome> r) {
        retry->set_value(r.ok() ? absl::StatusOr<bool>(r->replayed)
                                : absl::StatusOr<bool>(r.status()));
      });
      std::optional<absl::StatusOr<bool>> replayed = Await(retry, absl::Seconds(20));
      ASSERT_TRUE(replayed.has_value());
      ASSERT_TRUE(replayed->ok()) << id << ": " << replayed->status();
      EXPECT_EQ(**replayed, stored) << id << ": request id record and consent disagree";
      g.acked = true;
    }

    // Acknowledged spends stay spent.
    for (auto& [id, g] : ledger_.grants) {
      if (!g.spend_acked) continue;
      auto again = std::make_shared<std::promise<absl::Status>>();
      s.store->MarkUsed(id, "tax", now, [again](auto r) { again->set_value(r.status()); });
      std::optional<absl::Status> spent = Await(again, absl::Seconds(20));
      ASSERT_TRUE(spent.has_value());
      EXPECT_TRUE(absl::IsFailedPrecondition(*spent)) << "spent " << id << " again: " << *spent;
    }
    stats_.present_consents += present;
    stats_.events += *size;
  }

  // `tellonce audit verify --data-dir` against the last checkpoint handed out: run on the
  // closed data directory (its files are what the power cut left, recovered).
  void CheckAudit() {
    absl::MutexLock lock(&ledger_.mu);
    if (!ledger_.checkpoint.has_value()) return;
    absl::StatusOr<tellonce::v1::Checkpoint> body =
        cli::VerifyCheckpoint(*ledger_.checkpoint, keys_, kIssuer);
    ASSERT_TRUE(body.ok()) << body.status();
    absl::StatusOr<cli::TreeHead> head = cli::ToTreeHead(*body);
    ASSERT_TRUE(head.ok());
    absl::StatusOr<cli::LogCopy> copy = cli::ReadDataDirectory(path_);
    ASSERT_TRUE(copy.ok()) << copy.status();
    cli::LogVerdict verdict = cli::VerifyLog(*copy, *head, {});
    EXPECT_TRUE(verdict.ok) << verdict.Summary();
    ++stats_.audits;
  }

  TempDir dir_;
  std::string path_;
  std::shared_ptr<PowerLossFileSystem> fs_;
  std::unique_ptr<rocksdb::Env> env_;
  std::unique_ptr<consent::DirectoryHolder> directory_;
  std::unique_ptr<certs::SigningKey> key_;
  certs::VerifyingKeySet keys_;
  Ledger ledger_;
  int round_ = 0;
  int operations_ = 0;  // load operations started, all rounds
  struct {
    int present_consents = 0;
    uint64_t events = 0;
    int audits = 0;
  } stats_;
};

TEST_P(PowerLossTest, AcknowledgedWritesSurviveAndNothingIsHalfApplied) {
  const uint64_t seed = static_cast<uint64_t>(GetParam());
  std::mt19937_64 rng(seed);
  // Rounds 0 and 2: load, then a cut. Round 1: a cut while the database recovers from
  // round 0's (opening writes a new MANIFEST, WAL and OPTIONS file, renames CURRENT).
  for (round_ = 0; round_ < 3; ++round_) {
    Stack s;
    uint64_t cut_at = 0;
    if (round_ == 1) {
      cut_at = 1 + rng() % 40;
      fs_->PowerCutAtOperation(cut_at);
      if (Open(s, /*may_fail=*/true)) {
        // Recovered before the planned cut came: cut now.
        fs_->PowerCut();
      }
    } else {
      ASSERT_TRUE(Open(s));
      cut_at = 1 + rng() % 600;
      Load(s, 4, cut_at, seed);
    }
    s.Close();
    PowerLossFileSystem::Restored restored = fs_->RestoreDurableState();
    std::printf(
        "seed %d round %d: cut at file operation %llu; of %d files written, %d cut "
        "back (%llu bytes dropped), %d removed, %d renames undone\n",
        GetParam(), round_, static_cast<unsigned long long>(cut_at), restored.tracked,
        restored.truncated, static_cast<unsigned long long>(restored.bytes_dropped),
        restored.removed, restored.renames_undone);
    Stack recovered;
    ASSERT_TRUE(Open(recovered));
    CheckRecovered(recovered);
    if (HasFatalFailure()) return;
    // Let the tree catch up with the recovered log, so the audit sees every leaf hash.
    auto fresh = std::make_shared<std::promise<bool>>();
    recovered.tlog->FreshCheckpoint(
        [this, fresh](absl::StatusOr<tellonce::v1::SignedCheckpoint> c) {
          if (c.ok()) {
            tellonce::v1::Checkpoint body;
            body.ParseFromString(c->body());
            absl::MutexLock lock(&ledger_.mu);
            ledger_.checkpoint = *c;
            ledger_.checkpoint_size = body.tree_size();
          }
          fresh->set_value(c.ok());
        });
    std::optional<bool> signed_fresh = Await(fresh, absl::Seconds(20));
    EXPECT_TRUE(signed_fresh.has_value() && *signed_fresh);
    recovered.Close();
    CheckAudit();
  }
  std::printf("seed %d: %d operations; %d consents and %llu access events checked, %d audits\n",
              GetParam(), operations_, stats_.present_consents,
              static_cast<unsigned long long>(stats_.events), stats_.audits);
}

int Seeds() {
  const char* n = std::getenv("TELLONCE_POWER_LOSS_SEEDS");
  int seeds = 16;
  if (n != nullptr && absl::SimpleAtoi(n, &seeds) && seeds > 0) return seeds;
  return 16;
}

INSTANTIATE_TEST_SUITE_P(Seeds, PowerLossTest, ::testing::Range(1, 1 + Seeds()));

}  // namespace
}  // namespace tellonce
