#ifndef TELLONCE_TESTS_FUZZ_STORE_FIXTURE_H_
#define TELLONCE_TESTS_FUZZ_STORE_FIXTURE_H_

// A broker's storage on a real RocksDB in the scratch folder, filled once per process,
// for the harnesses whose entry points read stored state (page tokens, proofs, exports,
// listings): the access log of kEvents events about three citizens with its Merkle tree
// and a signed checkpoint, kConsents consents of one citizen, and kDeliveries deliveries
// parked as DEAD (so the outbox's dispatcher never calls a connector). Built from the
// public constructors of each store; never torn down (its threads run until exit).

#include <future>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/access_log.h"
#include "broker/connector_pool.h"
#include "broker/outbox.h"
#include "broker/transparency.h"
#include "consent/commit_queue.h"
#include "consent/consent_store.h"
#include "consent/database.h"
#include "consent/registry.h"
#include "proto/time.h"
#include "tests/fuzz/cli_driver.h"
#include "tests/fuzz/fuzz_support.h"

namespace tellonce::fuzz {

inline constexpr char kCitizenA[] = "37605030299";
inline constexpr char kCitizenB[] = "49403136526";
inline constexpr char kCitizenC[] = "38001085718";
inline constexpr int kEvents = 150;
inline constexpr int kConsents = 40;
inline constexpr int kDeliveries = 30;

struct Store {
  std::unique_ptr<consent::Database> db;
  std::unique_ptr<consent::CommitQueue> queue;
  std::unique_ptr<broker::AccessLog> log;
  std::unique_ptr<broker::TransparencyLog> tlog;
  std::unique_ptr<consent::ConsentStore> consents;
  std::unique_ptr<consent::DirectoryHolder> directory;
  std::unique_ptr<broker::ConnectorPool> pool;
  std::unique_ptr<broker::Outbox> outbox;
  // Event times: event i happened at kNow - (kEvents - i) minutes.
  static absl::Time EventTime(uint64_t i) { return kNow - absl::Minutes(kEvents - i); }
  static const char* CitizenOf(uint64_t i) {
    return i % 3 == 0 ? kCitizenA : (i % 3 == 1 ? kCitizenB : kCitizenC);
  }
  static const char* ConsumerOf(uint64_t i) { return i % 2 == 0 ? "tax" : "benefits"; }
};

inline void FailStore(const absl::Status& s) {
  std::fprintf(stderr, "store fixture: %s\n", s.ToString().c_str());
  std::abort();
}

inline Store& TheStore() {
  static Store* store = [] {
    auto* st = new Store;
    const std::string path = absl::StrCat(ScratchDir(), "/db");
    absl::StatusOr<std::unique_ptr<consent::Database>> db =
        consent::Database::Open({.path = path, .block_cache_mb = 8});
    if (!db.ok()) FailStore(db.status());
    st->db = *std::move(db);
    // Parked deliveries, written as an older broker would have left them.
    rocksdb::WriteBatch parked;
    for (int i = 0; i < kDeliveries; ++i) {
      tellonce::v1::Delivery d;
      d.set_delivery_id(absl::StrCat(i));
      d.set_subscriber(i % 2 == 0 ? "tax" : "benefits");
      d.set_state(tellonce::v1::Delivery::DEAD);
      d.mutable_event()->set_event_id(absl::StrCat("e", i));
      d.mutable_event()->set_citizen_id(Store::CitizenOf(i));
      *d.mutable_created_at() = ToProtoTime(kNow);
      parked.Put(st->db->family(consent::Family::kOutbox), broker::Outbox::Key(i),
                 d.SerializeAsString());
    }
    parked.Put(st->db->family(consent::Family::kMeta), "outbox.sequence",
               absl::StrCat(kDeliveries));
    if (absl::Status s = consent::FromRocks(st->db->db()->Write(rocksdb::WriteOptions(), &parked));
        !s.ok()) {
      FailStore(s);
    }
    st->queue = std::make_unique<consent::CommitQueue>(st->db.get());
    st->log = std::make_unique<broker::AccessLog>(st->db.get(), st->queue.get());
    absl::StatusOr<std::unique_ptr<broker::TransparencyLog>> tlog =
        broker::TransparencyLog::Start(st->db.get(), st->log.get(), BrokerSigningKey(),
                                       {.issuer = kBrokerId,
                                        .checkpoint_interval = absl::Hours(1),
                                        .fresh_interval = absl::ZeroDuration()});
    if (!tlog.ok()) FailStore(tlog.status());
    st->tlog = *std::move(tlog);
    st->log->set_listener([t = st->tlog.get()] { t->Notify(); });
    std::vector<tellonce::v1::AccessEvent> events;
    for (uint64_t i = 0; i < kEvents; ++i) {
      tellonce::v1::AccessEvent& e = events.emplace_back();
      e.set_exchange_id(absl::StrCat("x", i));
      e.set_consumer(Store::ConsumerOf(i));
      e.set_provider("registry");
      e.set_citizen_id(Store::CitizenOf(i));
      e.add_attributes("person.name");
      *e.mutable_at() = ToProtoTime(Store::EventTime(i));
    }
    std::promise<absl::StatusOr<uint64_t>> appended;
    st->log->Append(std::move(events), [&](absl::StatusOr<uint64_t> r) { appended.set_value(r); });
    if (absl::StatusOr<uint64_t> r = appended.get_future().get(); !r.ok()) FailStore(r.status());
    std::promise<absl::StatusOr<tellonce::v1::SignedCheckpoint>> signed_checkpoint;
    st->tlog->FreshCheckpoint(
        [&](absl::StatusOr<tellonce::v1::SignedCheckpoint> c) { signed_checkpoint.set_value(c); });
    if (auto c = signed_checkpoint.get_future().get(); !c.ok()) FailStore(c.status());

    st->consents = consent::NewRocksConsentStore(st->db.get(), st->queue.get());
    for (int i = 0; i < kConsents; ++i) {
      tellonce::v1::StoredConsent record;
      tellonce::v1::Consent& c = *record.mutable_consent();
      const absl::Time captured = kNow - absl::Hours(kConsents - i);
      c.set_consent_id(consent::NewConsentId(captured));
      c.set_citizen_id(kCitizenA);
      c.set_consumer(i % 2 == 0 ? "tax" : "benefits");
      c.add_attributes("person.name");
      c.set_purpose("TAX_DEDUCTION_CHECK");
      *c.mutable_valid_from() = ToProtoTime(captured);
      // A third of them expired by kNow, one in four revoked below.
      *c.mutable_expires_at() = ToProtoTime(captured + absl::Hours(i % 3 == 0 ? 1 : 24 * 365));
      c.set_mode(tellonce::v1::UNTIL_EXPIRY);
      c.set_portal("portal");
      *c.mutable_captured_at() = ToProtoTime(captured);
      c.set_status(tellonce::v1::ACTIVE);
      tellonce::v1::ConsentEvent* e = c.add_events();
      e->set_kind(tellonce::v1::ConsentEvent::GRANTED);
      *e->mutable_at() = ToProtoTime(captured);
      e->set_actor("portal");
      c.set_request_id(absl::StrCat("r", i));
      record.set_request_fingerprint(absl::StrCat("f", i));
      std::promise<absl::StatusOr<consent::ConsentStore::GrantOutcome>> granted;
      st->consents->Grant(std::move(record), [&](auto r) { granted.set_value(std::move(r)); });
      absl::StatusOr<consent::ConsentStore::GrantOutcome> outcome = granted.get_future().get();
      if (!outcome.ok()) FailStore(outcome.status());
      if (i % 4 == 1) {
        std::promise<absl::StatusOr<tellonce::v1::Consent>> revoked;
        tellonce::v1::ConsentEvent event;
        event.set_actor("portal");
        st->consents->Revoke(outcome->consent.consent_id(), kCitizenA, event, captured,
                             [&](auto r) { revoked.set_value(std::move(r)); });
        if (auto r = revoked.get_future().get(); !r.ok()) FailStore(r.status());
      }
    }

    st->directory = std::make_unique<consent::DirectoryHolder>(SampleDirectory());
    st->pool = std::make_unique<broker::ConnectorPool>(broker::ConnectorPool::Options{});
    absl::StatusOr<std::unique_ptr<broker::Outbox>> outbox =
        broker::Outbox::Start(st->db.get(), st->directory.get(), st->pool.get(), {});
    if (!outbox.ok()) FailStore(outbox.status());
    st->outbox = *std::move(outbox);
    return st;
  }();
  return *store;
}

}  // namespace tellonce::fuzz

#endif  // TELLONCE_TESTS_FUZZ_STORE_FIXTURE_H_
