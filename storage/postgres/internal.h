#ifndef TELLONCE_STORAGE_POSTGRES_INTERNAL_H_
#define TELLONCE_STORAGE_POSTGRES_INTERNAL_H_

// The PostgreSQL backend's classes, shared by its .cc files; not for use outside
// storage/postgres/ (use postgres_storage.h).

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "storage/postgres/postgres_storage.h"
#include "storage/postgres/pq.h"

namespace tellonce::storage::postgres::internal {

class PgStorage;
using Numbering = PostgresOptions::Numbering;

// Columns of access events, as the arrays one multi-row INSERT takes.
struct EventColumns {
  std::vector<absl::Time> at;
  std::vector<std::string> citizen_id, consumer, provider, exchange_id, attributes, purpose, basis,
      outcome, code, notified_event_type, event;
  void Add(const AccessEvent& event);
  size_t size() const { return event.size(); }
  // The twelve arrays in column order (at ... event).
  void AppendTo(pq::Params& params) const;
};

// The deterministic serialization of an event: the bytes stored and hashed.
std::string EventBytes(const AccessEvent& event);

// One group's SQL transaction, seen by one work function at a time.
class PgTransaction final : public Transaction {
 public:
  PgTransaction(PgStorage* storage, pq::Connection* conn) : storage_(storage), conn_(conn) {}

  // Per work: reset before it runs; then what it did.
  void BeginWork();
  bool wrote() const { return wrote_; }
  // The first failed statement of the work (the SQL transaction is then in error).
  const absl::Status& statement_error() const { return statement_error_; }
  // A statement failed in a way that concerns the whole group (ABORTED, UNAVAILABLE).
  const absl::Status& group_error() const { return group_error_; }
  // A unique key this work had just found free was taken by a concurrent transaction:
  // run the group again so the work sees the other's row.
  bool rerun() const { return rerun_; }
  // Keeps or drops the access events the current work appended.
  void KeepWork();
  void DiscardWork();

  // Writes the events of every kept work (before COMMIT).
  absl::Status FlushEvents(Numbering numbering);
  bool has_writes() const { return any_write_ || group_events_.size() > 0; }
  bool has_events() const { return group_events_.size() > 0; }

  // Transaction:
  absl::StatusOr<StoredConsent> GetConsent(const std::string& consent_id) override;
  absl::StatusOr<std::string> ConsentIdForRequest(const std::string& portal,
                                                  const std::string& request_id) override;
  absl::StatusOr<std::vector<Consent>> ActiveConsents(const std::string& citizen_id,
                                                      const std::string& consumer,
                                                      int limit) override;
  absl::Status DropExpired(const Consent& consent) override;
  absl::Status InsertConsent(const StoredConsent& record) override;
  absl::Status UpdateConsent(const StoredConsent& record) override;
  absl::Status AppendAccessEvents(const std::vector<AccessEvent>& events) override;
  absl::StatusOr<std::string> PublishedFingerprint(const std::string& provider,
                                                   const std::string& event_id) override;
  absl::Status RecordPublished(const std::string& provider, const std::string& event_id,
                               const std::string& fingerprint) override;
  absl::StatusOr<std::vector<Delivery>> AddDeliveries(std::vector<Delivery> deliveries) override;

 private:
  // Runs a statement of this transaction, recording failures.
  absl::StatusOr<pq::Result> Run(const pq::Statement& statement, const pq::Params& params,
                                 absl::string_view what, bool write);

  PgStorage* storage_;
  pq::Connection* conn_;
  bool wrote_ = false;
  bool any_write_ = false;
  bool rerun_ = false;
  absl::Status statement_error_;
  absl::Status group_error_;
  // Keys the current work looked up and found free.
  std::set<std::pair<std::string, std::string>> free_requests_;
  std::set<std::pair<std::string, std::string>> free_published_;
  EventColumns work_events_;
  EventColumns group_events_;
};

class PgStorage final : public PostgresStorage {
 public:
  static absl::StatusOr<std::unique_ptr<PgStorage>> Open(PostgresOptions options);
  ~PgStorage() override;

  void Submit(Work work, Done done) override ABSL_LOCKS_EXCLUDED(mu_);
  void Close() override ABSL_LOCKS_EXCLUDED(mu_);
  void SetAppendListener(std::function<void()> listener) override {
    append_listener_ = std::move(listener);
  }
  absl::StatusOr<int64_t> SweepExpiredConsents(absl::Time now) override;
  ConsentRows& consents() override { return *consent_rows_; }
  AccessEventLog& access_events() override { return *access_events_; }
  TreeStore& tree() override { return *tree_; }
  DeliveryStore& deliveries() override { return *deliveries_; }
  absl::Status Health() override;
  absl::Status Backup(const std::string& dir) override;
  CommitCounts commit_counts() const override;

  absl::StatusOr<bool> ClaimSubscriber(const std::string& subscriber) override
      ABSL_LOCKS_EXCLUDED(claims_mu_);
  void Release() override;
  const std::string& replica_id() const override { return options_.replica_id; }

  const PostgresOptions& options() const { return options_; }
  pq::ConnectionPool& reads() { return *reads_; }
  // Connections whose commits do not wait for the WAL flush (synchronous_commit off):
  // for writes the contracts allow to lose in a crash.
  pq::ConnectionPool& unsynced() { return *unsynced_; }

  // The sequencer role (TreeStore::AcquireSequencer).
  absl::StatusOr<bool> AcquireSequencer() ABSL_LOCKS_EXCLUDED(sequencer_mu_);
  // The epoch this process holds the role with; 0 when it does not. When `acquire`
  // and it never held the role, tries to take it first.
  absl::StatusOr<int64_t> SequencerEpoch(bool acquire) ABSL_LOCKS_EXCLUDED(sequencer_mu_);
  // Forgets the role after the database said the epoch is stale.
  void LostSequencer(int64_t epoch) ABSL_LOCKS_EXCLUDED(sequencer_mu_);

 private:
  explicit PgStorage(PostgresOptions options);
  struct Pending {
    Work work;
    Done done;
  };
  void CommitLoop(int thread) ABSL_LOCKS_EXCLUDED(mu_);
  void RunGroup(std::vector<Pending>& group, std::vector<absl::Status>& results);

  enum class Outcome { kCommitted, kWorkFailed, kRetry, kLost, kUnknown, kFailed };
  struct GroupResult {
    Outcome outcome;
    absl::Status status;
    size_t work = 0;
  };
  GroupResult TryGroup(pq::Connection& conn, std::vector<Pending>& group,
                       std::vector<absl::Status>& results, const std::vector<bool>& settled,
                       bool savepoints);

  PostgresOptions options_;
  std::unique_ptr<pq::ConnectionPool> reads_;
  std::unique_ptr<pq::ConnectionPool> commits_;
  std::unique_ptr<pq::ConnectionPool> unsynced_;
  std::unique_ptr<ConsentRows> consent_rows_;
  std::unique_ptr<AccessEventLog> access_events_;
  std::unique_ptr<TreeStore> tree_;
  std::unique_ptr<DeliveryStore> deliveries_;

  absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
  // Runs SweepExpiredConsents every options_.sweep_interval until stopping_.
  void SweepLoop() ABSL_LOCKS_EXCLUDED(mu_);
  absl::Mutex close_mu_;  // one Close at a time joins the threads
  std::function<void()> append_listener_;

  std::atomic<uint64_t> operations_{0};
  std::atomic<uint64_t> groups_{0};
  std::atomic<uint64_t> writes_{0};

  absl::Mutex sequencer_mu_;
  int64_t epoch_ ABSL_GUARDED_BY(sequencer_mu_) = 0;
  // When this process last renewed the lease (its own clock, taken before asking).
  absl::Time renewed_at_ ABSL_GUARDED_BY(sequencer_mu_) = absl::InfinitePast();

  absl::Mutex claims_mu_;
  // Subscriber -> when this process last renewed its claim (own clock).
  absl::flat_hash_map<std::string, absl::Time> claims_ ABSL_GUARDED_BY(claims_mu_);
};

// The stores, over the storage's pools.
std::unique_ptr<ConsentRows> NewConsentRows(PgStorage* storage);
std::unique_ptr<AccessEventLog> NewAccessEventLog(PgStorage* storage);
std::unique_ptr<TreeStore> NewTreeStore(PgStorage* storage);
std::unique_ptr<DeliveryStore> NewDeliveryStore(PgStorage* storage);

// The consents of (citizen $1, consumer $2) stored ACTIVE and not seen expired, oldest
// first, at most $3: the access decision's one read.
extern const pq::Statement kActiveConsents;

// Parses a stored record; DATA_LOSS naming `what` when it does not parse.
absl::Status ParseStored(std::string_view bytes, google::protobuf::MessageLite* message,
                         absl::string_view what);

// Columns of deliveries for a multi-row INSERT (sequence .. record).
void AppendDeliveryColumns(const std::vector<Delivery>& deliveries, pq::Params& params);
// "INSERT INTO deliveries ... SELECT * FROM unnest($1..$12)"; `upsert` replaces rows.
const char* DeliveryInsertSql(bool upsert);

}  // namespace tellonce::storage::postgres::internal

#endif  // TELLONCE_STORAGE_POSTGRES_INTERNAL_H_
