#ifndef TELLONCE_STORAGE_STORAGE_H_
#define TELLONCE_STORAGE_STORAGE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "certs/merkle.h"
#include "tellonce/v1/exchange.pb.h"
#include "tellonce/v1/notification.pb.h"
#include "tellonce/v1/storage.pb.h"
#include "tellonce/v1/transparency.pb.h"

// Design: everything the broker keeps, behind domain-level interfaces, with one
// transaction (Transaction, run through Storage::Submit) spanning consents, access
// events, publish idempotency records and deliveries. The interfaces speak in protos,
// ids and indexes, never in keys: a backend maps each store onto its own layout (column
// families and key prefixes for RocksDB, tables a DBA can query for PostgreSQL).
//
// What is stored:
//   consents       StoredConsent by consent id; found by citizen (ids ascending, which
//                  is creation order), by (citizen, consumer) among those stored ACTIVE,
//                  and by (portal, request id) for idempotent grants
//   access events  AccessEvent by index: 0, 1, ... without gaps; found by citizen
//   published      (provider, event id) -> request fingerprint, for idempotent publishes
//   tree           the RFC 6962 tree over the access events' stored bytes: its size, the
//                  hash of every complete subtree, and signed checkpoints by tree size
//   deliveries     Delivery by sequence number (its delivery id); found per subscriber
//                  among the PENDING ones, in sequence order
//
// Every call is thread-safe. Reads see only durable data, except reads through a
// Transaction, which also see the transaction's own writes. Errors: NOT_FOUND where a
// method says so, DATA_LOSS for a stored record that does not parse or an index that
// points nowhere, UNAVAILABLE when the backend cannot be reached (the caller may retry),
// other codes as the backend reports them, always with a message a person can act on.
//
// A second backend implements these interfaces and passes the contract suite
// (tests/storage/contract_test.cc); nothing in consent/ or broker/ changes.
namespace tellonce::storage {

using tellonce::v1::AccessEvent;
using tellonce::v1::Consent;
using tellonce::v1::Delivery;
using tellonce::v1::SignedCheckpoint;
using tellonce::v1::StoredConsent;

// One unit of work. Runs inside Storage::Submit; its writes become durable together with
// the rest of the work, or not at all.
//
// Contract for work functions: a backend may run a work function more than once (after
// a serialization conflict with another process, before anything was acknowledged), so
// a work function assigns its results rather than accumulating them, and has no effect
// outside the transaction other than through its completion.
class Transaction {
 public:
  virtual ~Transaction() = default;

  // --- Consents ------------------------------------------------------------------------

  // The stored record; NOT_FOUND when absent. Read for update: a concurrent transaction
  // that changes the same consent commits before this one reads it or after this one
  // commits (the RocksDB store runs work functions one at a time; a shared database
  // locks the row). That is what makes a ONE_TIME spend and a revoke race-free.
  virtual absl::StatusOr<StoredConsent> GetConsent(const std::string& consent_id) = 0;

  // The consent id recorded for (portal, request_id) by an earlier grant; NOT_FOUND when
  // the request id is new.
  virtual absl::StatusOr<std::string> ConsentIdForRequest(const std::string& portal,
                                                          const std::string& request_id) = 0;

  // The consents of (citizen, consumer) stored ACTIVE, oldest first, at most `limit`,
  // with the decision fields (see ConsentRows::Active). Whether they have expired is the
  // caller's business; DropExpired forgets those it found expired.
  virtual absl::StatusOr<std::vector<Consent>> ActiveConsents(const std::string& citizen_id,
                                                              const std::string& consumer,
                                                              int limit) = 0;
  // Stops returning `consent` (stored ACTIVE, past its expiry) from ActiveConsents and
  // ConsentRows::Active. The record itself is unchanged. A backend whose queries filter
  // by expiry may do nothing.
  virtual absl::Status DropExpired(const Consent& consent) = 0;

  // Stores a new record, found afterwards by citizen, by (portal, request id), and while
  // ACTIVE by (citizen, consumer). ALREADY_EXISTS when the consent id or the (portal,
  // request id) is taken.
  virtual absl::Status InsertConsent(const StoredConsent& record) = 0;

  // Replaces the record of record.consent().consent_id() (which must exist; the caller
  // read it with GetConsent in this transaction). A record no longer ACTIVE stops being
  // found by (citizen, consumer). Citizen, consumer, portal and request id never change.
  virtual absl::Status UpdateConsent(const StoredConsent& record) = 0;

  // --- Access events ---------------------------------------------------------------------

  // Appends `events` in order. Who assigns their indexes: the backend, gaplessly, in the
  // order transactions commit, and events of one transaction get consecutive indexes.
  // The RocksDB store assigns them here (its one commit thread orders all
  // transactions); a shared database may queue them and let the sequencer (see
  // TreeStore) number them shortly after the commit. Either way they are durable when
  // the transaction's completion runs, and AccessEventLog::Size counts them once
  // numbered.
  virtual absl::Status AppendAccessEvents(const std::vector<AccessEvent>& events) = 0;

  // --- Publish idempotency ---------------------------------------------------------------

  // The fingerprint recorded for (provider, event_id); NOT_FOUND when new.
  virtual absl::StatusOr<std::string> PublishedFingerprint(const std::string& provider,
                                                           const std::string& event_id) = 0;
  // ALREADY_EXISTS when (provider, event_id) is recorded.
  virtual absl::Status RecordPublished(const std::string& provider, const std::string& event_id,
                                       const std::string& fingerprint) = 0;

  // --- Deliveries ------------------------------------------------------------------------

  // Stores `deliveries` (state PENDING) with new sequence numbers, increasing in commit
  // order, and returns them with delivery_id set to the sequence in decimal.
  virtual absl::StatusOr<std::vector<Delivery>> AddDeliveries(
      std::vector<Delivery> deliveries) = 0;
};

// Reads of durable consents.
class ConsentRows {
 public:
  virtual ~ConsentRows() = default;
  // NOT_FOUND when absent.
  virtual absl::StatusOr<StoredConsent> Get(const std::string& consent_id) = 0;
  // The citizen's consents by consent id ascending, from just after `after_id` (empty:
  // from the first), as of one consistent point in time, until `visit` returns false.
  virtual absl::Status ScanCitizen(const std::string& citizen_id, const std::string& after_id,
                                   const std::function<bool(StoredConsent&)>& visit) = 0;
  // The consents of (citizen, consumer) stored ACTIVE, oldest first, at most `limit`.
  // Each has the fields an access decision reads: consent_id, citizen_id, consumer,
  // attributes, purpose, valid_from, expires_at, mode, status; others may be missing.
  // Expired ones may be among them. This is the access decision's one read: a backend
  // keeps it to one short index scan.
  virtual absl::StatusOr<std::vector<Consent>> Active(const std::string& citizen_id,
                                                      const std::string& consumer,
                                                      int limit) = 0;
};

// Reads of the durable, numbered access events.
class AccessEventLog {
 public:
  virtual ~AccessEventLog() = default;
  // Events numbered so far (indexes 0 .. Size()-1).
  virtual absl::StatusOr<uint64_t> Size() = 0;
  // The stored bytes of event `index` (its deterministic serialization, which the tree
  // hashes); NOT_FOUND past the end.
  virtual absl::StatusOr<std::string> ReadBytes(uint64_t index) = 0;
  // Events [start, end) in order, until `visit` returns false. DATA_LOSS naming the
  // index when one in the range is missing.
  virtual absl::Status Scan(uint64_t start, uint64_t end,
                            const std::function<bool(uint64_t index, std::string_view bytes)>&
                                visit) = 0;
  // The citizen's events by index ascending, from just after `after` (nullopt: from the
  // first), until `visit` returns false.
  virtual absl::Status ScanCitizen(const std::string& citizen_id, std::optional<uint64_t> after,
                                   const std::function<bool(uint64_t index, std::string_view bytes)>&
                                       visit) = 0;
};

// The Merkle tree over the access events and its signed checkpoints.
//
// Who may extend the tree and sign checkpoints: the sequencer, one process at a time.
// AcquireSequencer says whether this process is it now. The RocksDB store: always (one
// process holds the database's lock). A shared database elects one through the
// database itself, and a process that lost the role without knowing (paused, cut off)
// cannot write a conflicting tree: ExtendTree is fenced on the stored size, and a
// checkpoint is stored only for a size the stored tree has reached.
class TreeStore {
 public:
  virtual ~TreeStore() = default;
  // True when this process is the sequencer (see above); it then numbers queued events
  // (Sequence) and extends the tree. Cheap enough to call once per hashing pass.
  virtual absl::StatusOr<bool> AcquireSequencer() = 0;
  // Numbers queued access events (sequencer only); returns AccessEventLog::Size().
  // The RocksDB store numbers them at commit and only reports the size.
  virtual absl::StatusOr<uint64_t> Sequence() = 0;
  // Leaves in the stored tree.
  virtual absl::StatusOr<uint64_t> TreeSize() = 0;
  // The hash of the complete subtree at (level, index); DATA_LOSS when missing.
  virtual absl::StatusOr<certs::Hash> ReadNode(int level, uint64_t index) = 0;
  // Stores `nodes`, the subtrees completed by growing the tree from `old_size` to
  // `new_size` leaves, and the new size. ABORTED, with nothing stored, when the stored
  // size is not `old_size` (another writer moved it). Need not be synced: the tree is
  // a function of the events and is recomputed after a crash.
  virtual absl::Status ExtendTree(uint64_t old_size, uint64_t new_size,
                                  const std::vector<certs::TreeBuilder::Node>& nodes) = 0;
  // Stores `checkpoint` (of a tree of `tree_size` leaves) durably before returning.
  // FAILED_PRECONDITION when the stored tree is smaller than `tree_size`; ALREADY_EXISTS
  // when a different checkpoint is stored for that size.
  virtual absl::Status PutCheckpoint(uint64_t tree_size, const SignedCheckpoint& checkpoint) = 0;
  // Stored checkpoints of trees of at least `from_size` leaves, by size, until `visit`
  // returns false.
  virtual absl::Status ScanCheckpoints(
      uint64_t from_size,
      const std::function<bool(uint64_t tree_size, SignedCheckpoint& checkpoint)>& visit) = 0;
};

// The delivery outbox.
//
// Who claims a delivery: one dispatcher at a time per subscriber. The RocksDB store has
// one process, whose dispatcher owns every delivery. Several processes over one
// database claim subscribers (or partitions of them) through the database and take over
// a dead process's claims after a timeout; the methods below are then called only for
// claimed subscribers. Order per (subscriber, citizen) is sequence order.
class DeliveryStore {
 public:
  virtual ~DeliveryStore() = default;
  // Every stored delivery (PENDING or DEAD) by sequence, from `from_sequence`, until
  // `visit` returns false.
  virtual absl::Status Scan(uint64_t from_sequence,
                            const std::function<bool(Delivery& delivery)>& visit) = 0;
  // The subscriber's PENDING deliveries with sequence in [from, upper), ascending, at
  // most `limit`.
  virtual absl::StatusOr<std::vector<Delivery>> Pending(const std::string& subscriber,
                                                        uint64_t from, uint64_t upper,
                                                        size_t limit) = 0;
  // NOT_FOUND when absent (delivered, or never stored).
  virtual absl::StatusOr<Delivery> Get(uint64_t sequence) = 0;
  // Records a failed attempt (attempts, next_attempt_at, last_error) or parking as DEAD.
  // Not synced: losing it after a crash means one more attempt.
  virtual absl::Status Update(const Delivery& delivery) = 0;
  // Forgets an acknowledged delivery. Not synced: losing it means it is sent again,
  // which at-least-once delivery allows.
  virtual absl::Status Remove(const Delivery& delivery) = 0;
  // Stores `deliveries` (re-queued: PENDING again) in one durable write.
  virtual absl::Status Requeue(const std::vector<Delivery>& deliveries) = 0;
};

// A backend: the stores, and the transactions that write them.
class Storage {
 public:
  using Work = absl::AnyInvocable<absl::Status(Transaction&)>;
  // OK once the work's writes are durable; the work's own error (nothing it wrote is
  // kept); or the commit's error (nothing it wrote is kept either).
  using Done = absl::AnyInvocable<void(absl::Status)>;

  virtual ~Storage() = default;

  // Runs `work` in a transaction and calls `done` with the outcome. Work functions must
  // be quick and must not block (they may be batched with others: group commit, one
  // durable write for many); `done` must not block either. Thread-safe. After shutdown
  // has begun, completes with UNAVAILABLE.
  virtual void Submit(Work work, Done done) = 0;
  // Submit and wait. Not to be called from a completion.
  absl::Status Run(Work work);

  // Commits and completes everything submitted so far; later submissions complete with
  // UNAVAILABLE. Reads keep working until destruction. Idempotent; not to be called from
  // a completion. The destructor closes too.
  virtual void Close() = 0;

  // Called after each transaction that appended access events is durable, before its
  // completion, on the thread that completes it; must not block. Set before the first
  // Submit. The transparency log uses it to wake its hashing thread at once; other
  // processes sharing the database are not told, and find new events by polling.
  virtual void SetAppendListener(std::function<void()> listener) = 0;

  virtual ConsentRows& consents() = 0;
  virtual AccessEventLog& access_events() = 0;
  virtual TreeStore& tree() = 0;
  virtual DeliveryStore& deliveries() = 0;

  // OK while the backend reports no error that needs an operator (a failed background
  // write, a full disk, a lost connection); otherwise why. Cheap.
  virtual absl::Status Health() = 0;

  // Writes a consistent copy of everything stored, as of one moment, into `dir`, which
  // must not exist (its parent must), while work goes on. The RocksDB store: a RocksDB
  // checkpoint (hard links where `dir` is on the same file system), which opens as a
  // data directory of its own. A shared database is backed up with its own tools
  // (PostgreSQL: pg_basebackup, point-in-time recovery; docs/backup-postgres.md), and
  // this returns FAILED_PRECONDITION saying so. Errors name `dir`. Thread-safe.
  virtual absl::Status Backup(const std::string& dir) = 0;

  // Commit work done so far, for metrics and benchmarks.
  struct CommitCounts {
    uint64_t operations = 0;  // work functions run
    uint64_t groups = 0;      // transactions committed (group commit: several works each)
    uint64_t writes = 0;      // durable writes (WAL syncs, or database commits)
  };
  virtual CommitCounts commit_counts() const = 0;
};

// What an offline audit reads from a copy of the broker's data: everything stored about
// the access log as it is, including gaps and damage, which the audit then judges.
struct StoredLog {
  struct Event {
    uint64_t index = 0;
    std::string bytes;
  };
  struct Subtree {
    int level = 0;
    uint64_t index = 0;
    certs::Hash hash{};
  };
  // By index, as stored.
  std::vector<Event> events;
  std::vector<Subtree> subtrees;
  // By tree size.
  std::vector<SignedCheckpoint> checkpoints;
  // The number of events the copy claims to hold.
  uint64_t claimed_size = 0;
};

}  // namespace tellonce::storage

#endif  // TELLONCE_STORAGE_STORAGE_H_
