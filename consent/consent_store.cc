// The consent store: the rules of consents (idempotent grants, the cap on active
// consents, what may be revoked or spent, expiry on read) over a storage backend, which
// keeps records and their indexes (storage/storage.h). A record and its index entries
// change in one transaction.

#include "consent/consent_store.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "consent/validation.h"
#include "google/protobuf/timestamp.pb.h"
#include "proto/time.h"

namespace tellonce::consent {
namespace {

using tellonce::v1::Consent;
using tellonce::v1::ConsentEvent;
using tellonce::v1::ConsentStatus;
using tellonce::v1::StoredConsent;

absl::Status NotFound() { return absl::NotFoundError("consent_id: no such consent"); }

absl::Status NotActive(ConsentStatus status) {
  return absl::FailedPreconditionError(
      absl::StrCat("consent is ", tellonce::v1::ConsentStatus_Name(status)));
}

void AppendEvent(Consent* consent, ConsentEvent::Kind kind, absl::Time at, const std::string& actor,
                 const std::string& reason) {
  ConsentEvent* event = consent->add_events();
  event->set_kind(kind);
  *event->mutable_at() = ToProtoTime(at);
  event->set_actor(actor);
  event->set_reason(reason);
}

class StorageConsentStore final : public ConsentStore {
 public:
  StorageConsentStore(storage::Storage* storage, ConsentStoreOptions options)
      : storage_(storage), options_(options) {}

  void Grant(StoredConsent record, GrantDone done) override;
  void Revoke(const std::string& consent_id, const std::string& citizen_id,
              tellonce::v1::ConsentEvent event, absl::Time now, ConsentDone done) override;
  void MarkUsed(const std::string& consent_id, const std::string& actor, absl::Time now,
                ConsentDone done) override;
  absl::StatusOr<StoredConsent> Get(const std::string& consent_id, const std::string& citizen_id,
                                    absl::Time now) override;
  absl::StatusOr<Page> List(const std::string& citizen_id, ConsentStatus status, int page_size,
                            const std::string& page_token, absl::Time now) override;
  absl::StatusOr<std::vector<Consent>> FindActive(const std::string& citizen_id,
                                                  const std::string& consumer,
                                                  absl::Time now) override;

 private:
  // Runs `change` on the stored record in a transaction and completes with the consent
  // as reported at `now`. `change` returns an error to leave the record alone, or sets
  // *modified when it changed the record (which is then written back).
  using Change = absl::AnyInvocable<absl::Status(StoredConsent&, bool* modified)>;
  void Mutate(const std::string& consent_id, absl::Time now, Change change, ConsentDone done);

  storage::Storage* storage_;
  const ConsentStoreOptions options_;
};

// Counts the consents of the (citizen, consumer) of `consent` stored ACTIVE and not
// expired at its capture time, stopping at `cap`; drops the expired ones met on the way
// from the index (they can no longer be used).
absl::StatusOr<int> CountActive(storage::Transaction& tx, const Consent& consent, int cap) {
  const absl::Time now = FromProtoTime(consent.captured_at());
  absl::StatusOr<std::vector<Consent>> stored =
      tx.ActiveConsents(consent.citizen_id(), consent.consumer(), kMaxActiveScanned);
  if (!stored.ok()) return stored.status();
  int active = 0;
  for (const Consent& entry : *stored) {
    if (entry.has_expires_at() && EffectiveStatus(entry, now) == tellonce::v1::EXPIRED) {
      if (absl::Status dropped = tx.DropExpired(entry); !dropped.ok()) return dropped;
    } else if (++active >= cap) {
      break;
    }
  }
  return active;
}

void StorageConsentStore::Grant(StoredConsent record, GrantDone done) {
  const Consent& consent = record.consent();
  for (auto [value, field] :
       {std::pair{&consent.consent_id(), "consent_id"},
        std::pair{&consent.citizen_id(), "citizen_id"}, std::pair{&consent.consumer(), "consumer"},
        std::pair{&consent.portal(), "portal"}, std::pair{&consent.request_id(), "request_id"}}) {
    if (value->empty()) {
      done(absl::InvalidArgumentError(absl::StrCat(field, ": required")));
      return;
    }
    if (value->find('\0') != std::string::npos) {
      done(absl::InvalidArgumentError(absl::StrCat(field, ": must not contain NUL")));
      return;
    }
  }

  struct State {
    StoredConsent record;
    absl::StatusOr<GrantOutcome> outcome;
  };
  auto state = std::make_shared<State>();
  state->record = std::move(record);

  storage_->Submit(
      [state, cap = options_.max_active_per_consumer](storage::Transaction& tx) -> absl::Status {
        const StoredConsent& record = state->record;
        const Consent& consent = record.consent();
        absl::StatusOr<std::string> existing_id =
            tx.ConsentIdForRequest(consent.portal(), consent.request_id());
        if (existing_id.ok()) {
          // A retry, or a different grant reusing the request id.
          absl::StatusOr<StoredConsent> existing = tx.GetConsent(*existing_id);
          if (!existing.ok()) {
            return absl::IsNotFound(existing.status())
                       ? absl::DataLossError(
                             absl::StrCat("request index points to missing consent ", *existing_id))
                       : existing.status();
          }
          if (existing->request_fingerprint() != record.request_fingerprint()) {
            return absl::InvalidArgumentError("request_id: already used for a different consent");
          }
          GrantOutcome outcome;
          outcome.consent = std::move(*existing->mutable_consent());
          // Grant carries no clock: the retry's capture time is its "now".
          ApplyExpiry(&outcome.consent, FromProtoTime(consent.captured_at()));
          outcome.receipt = std::move(*existing->mutable_receipt());
          outcome.replayed = true;
          state->outcome = std::move(outcome);
          return absl::OkStatus();
        }
        if (!absl::IsNotFound(existing_id.status())) return existing_id.status();

        absl::StatusOr<StoredConsent> clash = tx.GetConsent(consent.consent_id());
        if (clash.ok()) {
          return absl::AlreadyExistsError(
              absl::StrCat("consent_id: ", consent.consent_id(), " already exists"));
        }
        if (!absl::IsNotFound(clash.status())) return clash.status();

        if (cap > 0 && consent.status() == tellonce::v1::ACTIVE) {
          absl::StatusOr<int> active = CountActive(tx, consent, cap);
          if (!active.ok()) return active.status();
          if (*active >= cap) {
            return absl::ResourceExhaustedError(absl::StrCat(
                "consent: the citizen already has ", cap, " active consents for consumer ",
                consent.consumer(), " (the most allowed); revoke one first"));
          }
        }
        if (absl::Status stored = tx.InsertConsent(record); !stored.ok()) return stored;
        GrantOutcome outcome;
        outcome.consent = consent;
        outcome.receipt = record.receipt();
        state->outcome = std::move(outcome);
        return absl::OkStatus();
      },
      [state, done = std::move(done)](absl::Status status) mutable {
        if (!status.ok()) {
          done(std::move(status));
        } else {
          done(std::move(state->outcome));
        }
      });
}

void StorageConsentStore::Mutate(const std::string& consent_id, absl::Time now, Change change,
                                 ConsentDone done) {
  if (consent_id.empty() || consent_id.find('\0') != std::string::npos) {
    done(NotFound());
    return;
  }
  auto result = std::make_shared<Consent>();
  auto shared_change = std::make_shared<Change>(std::move(change));
  storage_->Submit(
      [consent_id, now, shared_change, result](storage::Transaction& tx) -> absl::Status {
        absl::StatusOr<StoredConsent> record = tx.GetConsent(consent_id);
        if (absl::IsNotFound(record.status())) return NotFound();
        if (!record.ok()) return record.status();
        bool modified = false;
        if (absl::Status status = (*shared_change)(*record, &modified); !status.ok()) {
          return status;
        }
        if (modified) {
          if (absl::Status stored = tx.UpdateConsent(*record); !stored.ok()) return stored;
        }
        *result = std::move(*record->mutable_consent());
        ApplyExpiry(result.get(), now);
        return absl::OkStatus();
      },
      [result, done = std::move(done)](absl::Status status) mutable {
        if (!status.ok()) {
          done(std::move(status));
        } else {
          done(std::move(*result));
        }
      });
}

void StorageConsentStore::Revoke(const std::string& consent_id, const std::string& citizen_id,
                                 ConsentEvent event, absl::Time now, ConsentDone done) {
  event.set_kind(ConsentEvent::REVOKED);
  *event.mutable_at() = ToProtoTime(now);
  Mutate(
      consent_id, now,
      [citizen_id, event = std::move(event), now](StoredConsent& record,
                                                  bool* modified) -> absl::Status {
        Consent& consent = *record.mutable_consent();
        if (consent.citizen_id() != citizen_id) return NotFound();
        const ConsentStatus effective = EffectiveStatus(consent, now);
        // Revoking twice is FAILED_PRECONDITION too, as consent.proto promises: the
        // caller learns that its revocation did not happen now.
        if (effective != tellonce::v1::ACTIVE) return NotActive(effective);
        consent.set_status(tellonce::v1::REVOKED);
        *consent.add_events() = event;
        *modified = true;
        return absl::OkStatus();
      },
      std::move(done));
}

void StorageConsentStore::MarkUsed(const std::string& consent_id, const std::string& actor,
                                   absl::Time now, ConsentDone done) {
  Mutate(
      consent_id, now,
      [actor, now](StoredConsent& record, bool* modified) -> absl::Status {
        Consent& consent = *record.mutable_consent();
        const ConsentStatus effective = EffectiveStatus(consent, now);
        if (effective != tellonce::v1::ACTIVE) return NotActive(effective);
        if (consent.mode() != tellonce::v1::ONE_TIME) {
          return absl::FailedPreconditionError("consent is not ONE_TIME");
        }
        if (consent.has_valid_from() && FromProtoTime(consent.valid_from()) > now) {
          return absl::FailedPreconditionError("consent is not yet valid");
        }
        consent.set_status(tellonce::v1::USED);
        AppendEvent(&consent, ConsentEvent::USED, now, actor, "");
        *modified = true;
        return absl::OkStatus();
      },
      std::move(done));
}

absl::StatusOr<StoredConsent> StorageConsentStore::Get(const std::string& consent_id,
                                                       const std::string& citizen_id,
                                                       absl::Time now) {
  if (consent_id.empty() || consent_id.find('\0') != std::string::npos) return NotFound();
  absl::StatusOr<StoredConsent> record = storage_->consents().Get(consent_id);
  if (absl::IsNotFound(record.status())) return NotFound();
  if (!record.ok()) return record.status();
  if (record->consent().citizen_id() != citizen_id) return NotFound();
  ApplyExpiry(record->mutable_consent(), now);
  return record;
}

absl::StatusOr<ConsentStore::Page> StorageConsentStore::List(const std::string& citizen_id,
                                                             ConsentStatus status, int page_size,
                                                             const std::string& page_token,
                                                             absl::Time now) {
  if (page_size <= 0) page_size = kDefaultPageSize;
  Page page;
  absl::Status scanned =
      storage_->consents().ScanCitizen(citizen_id, page_token, [&](StoredConsent& record) {
        Consent* consent = record.mutable_consent();
        ApplyExpiry(consent, now);
        if (status != tellonce::v1::CONSENT_STATUS_UNSPECIFIED && consent->status() != status) {
          return true;
        }
        if (static_cast<int>(page.consents.size()) == page_size) {
          // One match beyond the page: there is more.
          page.next_page_token = page.consents.back().consent_id();
          return false;
        }
        page.consents.push_back(std::move(*consent));
        return true;
      });
  if (!scanned.ok()) return scanned;
  return page;
}

absl::StatusOr<std::vector<Consent>> StorageConsentStore::FindActive(const std::string& citizen_id,
                                                                     const std::string& consumer,
                                                                     absl::Time now) {
  absl::StatusOr<std::vector<Consent>> stored =
      storage_->consents().Active(citizen_id, consumer, kMaxActiveScanned);
  if (!stored.ok()) return stored.status();
  std::vector<Consent> active;
  for (Consent& consent : *stored) {
    if (EffectiveStatus(consent, now) != tellonce::v1::ACTIVE) continue;
    if (consent.has_valid_from() && FromProtoTime(consent.valid_from()) > now) continue;
    active.push_back(std::move(consent));
  }
  return active;
}

// 48-bit millisecond time then 80 random bits, Crockford base32, 26 characters.
// Within one process, ids made in the same millisecond increment the random part, so
// they also sort in creation order (ULID "monotonic" mode).
class ConsentIdGenerator {
 public:
  std::string Next(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_) {
    int64_t ms = absl::ToUnixMillis(now);
    ms = std::clamp<int64_t>(ms, 0, (int64_t{1} << 48) - 1);
    uint64_t time = static_cast<uint64_t>(ms);
    uint16_t hi;  // top 16 of the 80 random bits
    uint64_t lo;  // low 64
    {
      absl::MutexLock lock(&mu_);
      if (time == last_time_ && !(last_hi_ == 0xFFFF && last_lo_ == ~uint64_t{0})) {
        lo = last_lo_ + 1;
        hi = static_cast<uint16_t>(last_hi_ + (lo == 0 ? 1 : 0));
      } else {
        unsigned char bytes[10];
        if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
          // OpenSSL's generator failed (should not happen): fall back to abseil's,
          // which is seeded from the OS.
          for (unsigned char& b : bytes) b = absl::Uniform<unsigned char>(bitgen_);
        }
        hi = static_cast<uint16_t>((bytes[0] << 8) | bytes[1]);
        lo = 0;
        for (int i = 2; i < 10; ++i) lo = (lo << 8) | bytes[i];
      }
      last_time_ = time;
      last_hi_ = hi;
      last_lo_ = lo;
    }
    static constexpr char kAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    std::string id(26, '0');
    // Characters 0..9: the 48-bit time as 50 bits (two leading zero bits).
    for (int i = 9; i >= 0; --i) {
      id[i] = kAlphabet[time & 31];
      time >>= 5;
    }
    // Characters 10..25: the 80 random bits, 16 x 5.
    for (int i = 25; i >= 10; --i) {
      id[i] = kAlphabet[lo & 31];
      lo = (lo >> 5) | (static_cast<uint64_t>(hi & 31) << 59);
      hi >>= 5;
    }
    return id;
  }

 private:
  absl::Mutex mu_;
  uint64_t last_time_ ABSL_GUARDED_BY(mu_) = ~uint64_t{0};
  uint16_t last_hi_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t last_lo_ ABSL_GUARDED_BY(mu_) = 0;
  absl::BitGen bitgen_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<ConsentStore> NewConsentStore(storage::Storage* storage,
                                              ConsentStoreOptions options) {
  return std::make_unique<StorageConsentStore>(storage, options);
}

std::string NewConsentId(absl::Time now) {
  static ConsentIdGenerator* generator = new ConsentIdGenerator();
  return generator->Next(now);
}

ConsentStatus EffectiveStatus(const Consent& consent, absl::Time now) {
  if (consent.status() == tellonce::v1::ACTIVE && consent.has_expires_at() &&
      now >= FromProtoTime(consent.expires_at())) {
    return tellonce::v1::EXPIRED;
  }
  return consent.status();
}

void ApplyExpiry(Consent* consent, absl::Time now) {
  if (consent->status() != tellonce::v1::ACTIVE ||
      EffectiveStatus(*consent, now) != tellonce::v1::EXPIRED) {
    return;
  }
  consent->set_status(tellonce::v1::EXPIRED);
  AppendEvent(consent, ConsentEvent::EXPIRED, FromProtoTime(consent->expires_at()), "broker", "");
}

}  // namespace tellonce::consent
