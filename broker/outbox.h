#ifndef TELLONCE_BROKER_OUTBOX_H_
#define TELLONCE_BROKER_OUTBOX_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "broker/connector_pool.h"
#include "broker/dispatch_options.h"
#include "consent/registry.h"
#include "grpcpp/client_context.h"
#include "storage/storage.h"
#include "tellonce/v1/notification.pb.h"

namespace tellonce::broker {

// Several processes over one database: whether this process dispatches a subscriber's
// deliveries now (storage::postgres::PostgresStorage::ClaimSubscriber, a lease in the
// database).
using ClaimSubscriber = std::function<absl::StatusOr<bool>(const std::string& subscriber)>;
// With a ClaimSubscriber: how often claims are renewed (or taken over) and each claimed
// subscriber's pending deliveries are read again from storage (others may have stored
// some).
inline constexpr absl::Duration kClaimPoll = absl::Milliseconds(500);

// Design: the notification outbox and its dispatcher. Deliveries are stored by the
// publisher (NewDeliveries, in the publisher's transaction, atomically with the access
// events that record them) and handed over with Enqueue once durable. One dispatcher thread
// sends them to each subscriber's connector (ConnectorService.DeliverChange over the
// pooled mutual TLS channel): in publication order per (subscriber, citizen), up to
// `window` in flight per subscriber, so a slow or broken subscriber holds up only its
// own deliveries. A failure schedules a retry with exponential back-off and jitter; too
// many failures, or too old, and the delivery is parked as DEAD until an operator
// re-queues it. An acknowledged delivery is deleted. Retry bookkeeping and deletions are
// not synced: losing them after a crash means a delivery is sent again, which
// at-least-once delivery allows. An operator's re-queue (Retry) is synced. Thread-safe.
//
// Memory does not grow with the backlog: per subscriber, only the oldest
// `memory_window` pending deliveries are held (always a prefix of that subscriber's
// pending deliveries in sequence order, so the oldest delivery of each citizen is
// among them and order per (subscriber, citizen) holds). Once a subscriber's window is
// full, further deliveries are only counted; when the window has drained to half, the
// dispatcher reads the next ones back (storage::DeliveryStore::Pending). Counts of
// pending and dead deliveries are kept in memory, so metrics never scan the database.
// With one process this dispatcher claims every delivery (the storage contract's
// single-process answer). With several over one database (a ClaimSubscriber) it
// dispatches only the subscribers it holds a claim for, reads their pending deliveries
// from storage only (also those it stored itself: what it holds stays a prefix, by
// sequence, of what is pending, so order per (subscriber, citizen) holds), again every
// kClaimPoll (wherever they were published), and drops
// from memory those whose claim another process holds; a dead process's subscribers
// are taken over when its claims expire, and their unacknowledged deliveries are sent
// again (at least once). The depth counts then describe what this process holds.
class Outbox {
 public:
  // Loads the PENDING deliveries and starts the dispatcher thread. None of the pointers
  // is owned; all must outlive the Outbox. `claim`: null when this process dispatches
  // every delivery (one process over its database).
  static absl::StatusOr<std::unique_ptr<Outbox>> Start(storage::DeliveryStore* store,
                                                       const consent::DirectoryHolder* directory,
                                                       ConnectorPool* connectors,
                                                       DispatchOptions options,
                                                       ClaimSubscriber claim = nullptr);
  // Stops the dispatcher and waits for calls in flight (cancelled) to finish.
  ~Outbox();

  // One PENDING delivery per subscriber of `event`, not yet stored: the publisher stores
  // them (storage::Transaction::AddDeliveries, which numbers them) atomically with the
  // access events that record them, and passes them to Enqueue once durable.
  static std::vector<tellonce::v1::Delivery> NewDeliveries(
      const tellonce::v1::ChangeEvent& event,
      const std::vector<std::pair<std::string, tellonce::v1::Basis>>& subscribers,
      absl::Time now);
  // Hands durable deliveries to the dispatcher. Never blocks for long.
  void Enqueue(std::vector<tellonce::v1::Delivery> deliveries) ABSL_LOCKS_EXCLUDED(mu_);

  // Stored deliveries, oldest first, filtered by subscriber (when non-empty) and state
  // (when not STATE_UNSPECIFIED). `page_token` is a previous next_page_token.
  absl::StatusOr<tellonce::v1::ListDeliveriesResponse> List(
      const std::string& subscriber, tellonce::v1::Delivery::State state, int page_size,
      const std::string& page_token);

  // Re-queues DEAD deliveries (the ids given, or all of `subscriber`, or all) with a
  // fresh attempt count, in one synced write; returns how many. NOT_FOUND for an id
  // that is not stored; FAILED_PRECONDITION for one that is not DEAD; the storage error
  // when the write fails (then nothing is re-queued).
  absl::StatusOr<int> Retry(const std::vector<std::string>& delivery_ids,
                            const std::string& subscriber) ABSL_LOCKS_EXCLUDED(mu_);

  // Deliveries waiting (not DEAD), whether held in memory or only stored; for tests and
  // metrics.
  size_t pending() ABSL_LOCKS_EXCLUDED(mu_);
  // Deliveries held in memory (at most memory_window per subscriber); for tests.
  size_t in_memory() ABSL_LOCKS_EXCLUDED(mu_);
  // Deliveries parked as DEAD (counted at Start, then kept up to date).
  size_t dead() ABSL_LOCKS_EXCLUDED(mu_);

  // Deliveries owed (PENDING) and parked (DEAD) for one subscriber.
  struct Depth {
    std::string subscriber;
    size_t pending = 0;
    size_t dead = 0;
  };
  // Every subscriber that has or had deliveries since start, by id. For metrics and
  // the admin status; takes the lock once.
  std::vector<Depth> Depths() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  Outbox(storage::DeliveryStore* store, const consent::DirectoryHolder* directory,
         ConnectorPool* connectors, DispatchOptions options)
      : store_(store), directory_(directory), connectors_(connectors), options_(options) {}

  struct Subscriber {
    // Sequence -> delivery, PENDING only: the oldest `memory_window` of them.
    std::map<uint64_t, tellonce::v1::Delivery> pending;
    // PENDING deliveries in all, in memory or only stored.
    size_t owed = 0;
    // Whether some PENDING deliveries are only stored; the first of them is at or after
    // `resume_from`.
    bool spilled = false;
    uint64_t resume_from = 0;
    // Bumped whenever a delivery is left in storage, so a refill that read the index
    // before it knows it may have missed it.
    uint64_t spill_generation = 0;
    // A refill is reading the index (outside the lock).
    bool refilling = false;
    absl::flat_hash_set<std::string> citizens_in_flight;
    int in_flight = 0;
    // DEAD deliveries stored (counted at start, kept up to date since).
    size_t dead = 0;
    // With a ClaimSubscriber: whether this process holds the subscriber's claim.
    bool claimed = false;
  };

  // What the dispatcher reads back for one subscriber whose window has drained.
  struct Refill {
    std::string subscriber;
    uint64_t from = 0;
    // Sequences below it were all handed to Enqueue (or loaded at Start).
    uint64_t upper = 0;
    size_t want = 0;
    uint64_t generation = 0;
    // Filled by ReadBack.
    std::vector<tellonce::v1::Delivery> loaded;
    uint64_t next = 0;
    bool exhausted = false;
  };

  void Run() ABSL_LOCKS_EXCLUDED(mu_);
  // Renews or takes the claims (claim_), outside the lock.
  void Reclaim() ABSL_LOCKS_EXCLUDED(mu_);
  // Reads `refill.want` PENDING deliveries from the index into refill.loaded; drops
  // index entries whose delivery is gone. Without the lock.
  void ReadBack(Refill& refill) ABSL_LOCKS_EXCLUDED(mu_);
  void Merge(Refill refill) ABSL_LOCKS_EXCLUDED(mu_);
  // Adds one PENDING delivery to its subscriber: into the window, or counted as stored.
  void Admit(tellonce::v1::Delivery delivery) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Send(tellonce::v1::Delivery delivery);
  void Finished(tellonce::v1::Delivery delivery, const grpc::Status& status)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Drops the DEAD deliveries (of claimed subscribers) published before now minus
  // options_.dead_retention; without the lock but for the counts.
  void SweepDead(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  void Write(const tellonce::v1::Delivery& delivery);
  void Erase(const tellonce::v1::Delivery& delivery);
  absl::Duration Backoff(int attempts) ABSL_LOCKS_EXCLUDED(mu_);

  storage::DeliveryStore* store_;
  const consent::DirectoryHolder* directory_;
  ConnectorPool* connectors_;
  DispatchOptions options_;
  ClaimSubscriber claim_;

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  int calls_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  // Contexts of the DeliverChange calls in flight, to cancel them on shutdown.
  absl::flat_hash_set<grpc::ClientContext*> contexts_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Subscriber> subscribers_ ABSL_GUARDED_BY(mu_);
  // One past the highest sequence handed to Enqueue or loaded at Start: a refill reads
  // no further, so it never takes a delivery whose Enqueue is still to come.
  uint64_t enqueued_upto_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t random_state_ ABSL_GUARDED_BY(mu_) = 0x9e3779b97f4a7c15ull;
  std::thread thread_;
};

}  // namespace tellonce::broker

#endif  // TELLONCE_BROKER_OUTBOX_H_
