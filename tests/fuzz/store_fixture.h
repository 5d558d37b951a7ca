#ifndef TELLONCE_TESTS_FUZZ_STORE_FIXTURE_H_
#define TELLONCE_TESTS_FUZZ_STORE_FIXTURE_H_

// A broker's storage (storage::OpenRocksStorage, a real RocksDB in the scratch folder),
// filled once per process through the storage interfaces and the broker's own stores,
// for the harnesses whose entry points read stored state (page tokens, proofs, exports,
// listings): the access log of kEvents events about three citizens with its Merkle tree
// and a signed checkpoint, kConsents consents of one citizen, and kDeliveries deliveries
// parked as DEAD (so the outbox's dispatcher never calls a connector). Built as
// broker.cc wires them; never torn down (its threads run until exit).

#include <future>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/access_log.h"
#include "broker/connector_pool.h"
#include "broker/outbox.h"
#include "broker/transparency.h"
#include "consent/consent_store.h"
#include "consent/registry.h"
#include "proto/time.h"
#include "storage/rocksdb/rocks_storage.h"
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
  std::unique_ptr<storage::Storage> storage;
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
    absl::StatusOr<std::unique_ptr<storage::Storage>> opened =
        storage::OpenRocksStorage({.path = path, .block_cache_mb = 8});
    if (!opened.ok()) FailStore(opened.status());
    st->storage = *std::move(opened);
    st->log = std::make_unique<broker::AccessLog>(st->storage.get());
    absl::StatusOr<std::unique_ptr<broker::TransparencyLog>> tlog =
        broker::TransparencyLog::Start(st->storage.get(), st->log.get(), BrokerSigningKey(),
                                       {.issuer = kBrokerId,
                                        .checkpoint_interval = absl::Hours(1),
                                        .fresh_interval = absl::ZeroDuration()});
    if (!tlog.ok()) FailStore(tlog.status());
    st->tlog = *std::move(tlog);
    st->storage->SetAppendListener([t = st->tlog.get()] { t->Notify(); });
    // Parked deliveries: stored PENDING, then parked as DEAD, as the dispatcher parks
    // those nobody takes (before the outbox starts, so it never sends them).
    std::vector<tellonce::v1::Delivery> parked;
    for (int i = 0; i < kDeliveries; ++i) {
      tellonce::v1::Delivery& d = parked.emplace_back();
      d.set_subscriber(i % 2 == 0 ? "tax" : "benefits");
      d.set_state(tellonce::v1::Delivery::PENDING);
      d.mutable_event()->set_event_id(absl::StrCat("e", i));
      d.mutable_event()->set_citizen_id(Store::CitizenOf(i));
      *d.mutable_created_at() = ToProtoTime(kNow);
    }
    absl::Status added = st->storage->Run([&](storage::Transaction& tx) -> absl::Status {
      absl::StatusOr<std::vector<tellonce::v1::Delivery>> stored = tx.AddDeliveries(parked);
      if (!stored.ok()) return stored.status();
      parked = *std::move(stored);
      return absl::OkStatus();
    });
    if (!added.ok()) FailStore(added);
    for (tellonce::v1::Delivery& d : parked) {
      d.set_state(tellonce::v1::Delivery::DEAD);
      if (absl::Status s = st->storage->deliveries().Update(d); !s.ok()) FailStore(s);
    }
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
    std::promise<absl::Status> appended;
    st->log->Append(std::move(events), [&](absl::Status r) { appended.set_value(r); });
    if (absl::Status r = appended.get_future().get(); !r.ok()) FailStore(r);
    std::promise<absl::StatusOr<tellonce::v1::SignedCheckpoint>> signed_checkpoint;
    st->tlog->FreshCheckpoint(
        [&](absl::StatusOr<tellonce::v1::SignedCheckpoint> c) { signed_checkpoint.set_value(c); });
    if (auto c = signed_checkpoint.get_future().get(); !c.ok()) FailStore(c.status());

    st->consents = consent::NewConsentStore(st->storage.get());
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
        broker::Outbox::Start(&st->storage->deliveries(), st->directory.get(), st->pool.get(), {});
    if (!outbox.ok()) FailStore(outbox.status());
    st->outbox = *std::move(outbox);
    return st;
  }();
  return *store;
}

}  // namespace tellonce::fuzz

#endif  // TELLONCE_TESTS_FUZZ_STORE_FIXTURE_H_
