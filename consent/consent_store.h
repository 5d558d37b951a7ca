#ifndef TELLONCE_CONSENT_CONSENT_STORE_H_
#define TELLONCE_CONSENT_CONSENT_STORE_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/storage.h"
#include "tellonce/v1/consent.pb.h"
#include "tellonce/v1/storage.pb.h"

namespace tellonce::consent {

// What a consent store does: durable consent records with their events and receipts,
// and the indexes to find them by citizen and by citizen+consumer. Mutations complete
// asynchronously once durable; reads are synchronous and see only durable data.
// Implementations are thread-safe. Statuses returned are effective at `now`: an ACTIVE
// consent whose expires_at has passed is reported EXPIRED, with an EXPIRED event at
// expires_at, and is never reported ACTIVE.
class ConsentStore {
 public:
  virtual ~ConsentStore() = default;

  struct GrantOutcome {
    tellonce::v1::Consent consent;
    tellonce::v1::ConsentReceipt receipt;
    // True when (portal, request_id) had been used: the first result is returned and
    // nothing new is stored.
    bool replayed = false;
  };
  using GrantDone = absl::AnyInvocable<void(absl::StatusOr<GrantOutcome>)>;
  using ConsentDone = absl::AnyInvocable<void(absl::StatusOr<tellonce::v1::Consent>)>;

  // Stores a validated record (consent id assigned, status ACTIVE, one GRANTED event,
  // receipt signed) together with its index entries in one write. When the record's
  // (consent.portal, consent.request_id) was used before: the stored outcome with
  // replayed=true if request_fingerprint matches, else INVALID_ARGUMENT
  // "request_id: already used for a different consent". Nothing is stored then.
  virtual void Grant(tellonce::v1::StoredConsent record, GrantDone done) = 0;

  // Revokes at `now`, appending `event` as the REVOKED event (its actor, reason and
  // the citizen's authentication evidence; the store sets its kind and time).
  // NOT_FOUND when the id is unknown or belongs to another citizen. Not ACTIVE (already
  // REVOKED, EXPIRED or USED): FAILED_PRECONDITION "consent is REVOKED" (or EXPIRED,
  // USED), unchanged.
  virtual void Revoke(const std::string& consent_id, const std::string& citizen_id,
                      tellonce::v1::ConsentEvent event, absl::Time now, ConsentDone done) = 0;

  // Spends a ONE_TIME consent: ACTIVE (effective at `now`, and valid_from <= now) ->
  // USED with a USED event. FAILED_PRECONDITION when it is not ACTIVE at `now` or not
  // ONE_TIME; NOT_FOUND when unknown. Of two concurrent calls exactly one succeeds.
  virtual void MarkUsed(const std::string& consent_id, const std::string& actor, absl::Time now,
                        ConsentDone done) = 0;

  // NOT_FOUND when unknown or `citizen_id` differs.
  virtual absl::StatusOr<tellonce::v1::StoredConsent> Get(const std::string& consent_id,
                                                          const std::string& citizen_id,
                                                          absl::Time now) = 0;

  struct Page {
    std::vector<tellonce::v1::Consent> consents;
    // Empty when there is nothing more.
    std::string next_page_token;
  };
  // A citizen's consents, oldest first, filtered by effective status unless `status`
  // is CONSENT_STATUS_UNSPECIFIED. `page_token` is a previous next_page_token or empty.
  virtual absl::StatusOr<Page> List(const std::string& citizen_id,
                                    tellonce::v1::ConsentStatus status, int page_size,
                                    const std::string& page_token, absl::Time now) = 0;

  // The consents of `citizen_id` for `consumer` that are ACTIVE at `now` (and already
  // valid: valid_from <= now), oldest first. A short prefix scan on the index (at most
  // kMaxActiveScanned entries; ConsentStoreOptions::max_active_per_consumer). Each
  // consent has what an access decision reads: consent_id, citizen_id, consumer,
  // attributes, purpose, valid_from, expires_at, mode and status; other fields (events,
  // portal, request_id, captured_at) may be missing: Get has the whole record.
  virtual absl::StatusOr<std::vector<tellonce::v1::Consent>> FindActive(
      const std::string& citizen_id, const std::string& consumer, absl::Time now) = 0;
};

struct ConsentStoreOptions {
  // Most consents stored ACTIVE and not expired for one (citizen, consumer): a grant
  // beyond it fails with RESOURCE_EXHAUSTED, so an access decision (FindActive) scans a
  // bounded prefix however many consents a portal records. Expired entries met on the
  // way are dropped from the index. Default 100; 0 turns the cap off.
  int max_active_per_consumer = 100;
};

// Index entries FindActive reads at most for one (citizen, consumer); consents beyond
// them (only in data written before the cap, or with a larger one) are not considered,
// and the decision falls back to mandates or NO_BASIS.
inline constexpr int kMaxActiveScanned = 1024;

// The consent store over a storage backend (storage/storage.h), which must outlive it.
// The rules (idempotent grants, the cap, what may be revoked or spent, expiry) live
// here; the backend only keeps records and indexes.
std::unique_ptr<ConsentStore> NewConsentStore(storage::Storage* storage,
                                              ConsentStoreOptions options = {});

// A new consent id: 26 Crockford base32 characters, a 48-bit millisecond timestamp
// then 80 random bits, so ids sort by creation time.
std::string NewConsentId(absl::Time now);

// The consent's status as seen at `now` (ACTIVE past expires_at -> EXPIRED).
tellonce::v1::ConsentStatus EffectiveStatus(const tellonce::v1::Consent& consent, absl::Time now);

// Rewrites `consent` to how it is reported at `now`: if ACTIVE and expired, status
// EXPIRED and an EXPIRED event at expires_at (actor "broker") appended.
void ApplyExpiry(tellonce::v1::Consent* consent, absl::Time now);

}  // namespace tellonce::consent

#endif  // TELLONCE_CONSENT_CONSENT_STORE_H_
