#ifndef TELLONCE_STORAGE_POSTGRES_POSTGRES_STORAGE_H_
#define TELLONCE_STORAGE_POSTGRES_POSTGRES_STORAGE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/storage.h"

// Design: the storage interfaces (storage/storage.h) over one PostgreSQL 15 database
// that several broker processes ("replicas") share. Tables: storage/postgres/schema.cc.
//
// Transactions. Storage::Submit queues work; `commit_threads` threads each take up to
// `max_group` queued works and run them in ONE SQL transaction (READ COMMITTED) on a
// pooled connection, then COMMIT once: group commit, one WAL flush for many works.
// Access events are buffered and written by one multi-row INSERT just before COMMIT.
// A work that fails without having written anything (the common case: a refusal after
// reads) costs nothing to undo. A work that fails after writing, or whose statement
// failed, is undone by rolling the transaction back and running the group again
// without it, this time with a SAVEPOINT around each work (so a second such failure
// is undone alone): savepoints are not used by default because each one that writes
// takes a subtransaction id, and more than 64 of them in one transaction make every
// other session's snapshots slower (PostgreSQL's subxid cache overflows). A group
// that hits a serialization failure or deadlock (ABORTED) is run again, up to
// `max_attempts` times, which the Transaction contract allows.
//
// Across replicas: GetConsent reads with SELECT ... FOR UPDATE, so a ONE_TIME spend
// and a revoke on two replicas are ordered by the row lock; request ids and published
// event ids are unique keys (a concurrent duplicate makes the losing group run again
// and see the winner's row, so a retry gets the first result).
//
// Access events get their indexes in one of two ways (Numbering):
//   kSequencer (default): a transaction inserts its events into access_queue (one
//     batch id from a sequence per group, no lock). The sequencer (TreeStore) moves
//     queued events into access_events, numbering them after the last one, in (batch,
//     pos) order, in one transaction. Commits of different replicas never wait for
//     each other; an event is numbered (listed, provable) one sequencing pass after
//     its commit.
//   kAtCommit: the group's transaction increments a counter row just before COMMIT and
//     writes numbered events directly. Numbered at commit, but the counter's row lock
//     is held through each COMMIT's WAL flush, so commits of all replicas (and commit
//     threads) take turns.
//
// The sequencer: a row (`sequencer`) holds the owner, a lease deadline on the
// database's clock, and an epoch that grows at each change of owner. AcquireSequencer
// takes the row when it is free or its lease has passed, and renews it (at most every
// lease/3). Sequence, ExtendTree and PutCheckpoint each check, in the database and in
// their own transaction, that the stored epoch is still this process's: a process that
// was paused past its lease and woke up after another took over gets ABORTED and
// writes nothing. ExtendTree is also fenced on the stored tree size. A process stopped
// in the middle of a transaction would keep its row locks (the sequencer row among
// them) and block every takeover, so each session has idle_in_transaction_session_timeout
// at half the lease: PostgreSQL ends a transaction left waiting for its client that long.
//
// Deliveries: sequence numbers come from a counter row (increasing in commit order).
// ClaimSubscriber leases a subscriber's deliveries to one replica (delivery_claims).
//
// Thread-safe.
namespace tellonce::storage::postgres {

struct PostgresOptions {
  // libpq connection string or URI, e.g. "host=/run/postgresql dbname=tellonce".
  // Required.
  std::string conninfo;
  // Connections for reads and transactions. Default 8.
  int pool_size = 8;
  // Transactions committing at once (each on its own pooled connection). Default 2.
  int commit_threads = 2;
  // Most works in one transaction. Default 512.
  size_t max_group = 512;
  // How long a commit thread waits for more works after a group of several, so one
  // COMMIT covers more of them. Default 0.
  absl::Duration gather = absl::ZeroDuration();
  // Runs of a group after serialization failures or deadlocks before its works fail
  // with ABORTED. Default 5.
  int max_attempts = 5;

  enum class Numbering { kSequencer, kAtCommit };
  // See the design comment. Default kSequencer.
  Numbering numbering = Numbering::kSequencer;
  // How long the sequencer holds its role without renewing it; another replica takes
  // over within this long (plus its polling interval) after the sequencer dies.
  // Default 3 s.
  absl::Duration sequencer_lease = absl::Seconds(3);
  // How long a replica holds a subscriber's deliveries without renewing. Default 10 s.
  absl::Duration claim_lease = absl::Seconds(10);

  // This process's id in the sequencer and claim rows: "<replica_name>:<pid>:<random>",
  // unique per process start (two processes never share one, even with the same
  // name). replica_name defaults to the host name. Tests may set replica_id whole.
  std::string replica_name;
  std::string replica_id;
  // Apply missing migrations at open (true), or only check the version (false).
  // Default true.
  bool apply_migrations = true;
  // Seconds to wait for a connection (libpq connect_timeout; at least 2). Default 2.
  int connect_timeout_seconds = 2;
  // How often this replica marks ACTIVE consents past their expiry (expiry_seen), so
  // that they leave the consents_active index even when no decision meets them again.
  // Every replica sweeps; the UPDATE is idempotent. Default 1 h.
  absl::Duration sweep_interval = absl::Hours(1);
  // Shown in pg_stat_activity. Default "tellonce-broker".
  std::string application_name = "tellonce-broker";
};

// The PostgreSQL backend: the Storage interfaces plus what only a shared database
// needs.
class PostgresStorage : public Storage {
 public:
  // Leases `subscriber`'s deliveries to this process: true when it holds them now
  // (taken because free or expired, or renewed), false when another live replica does.
  virtual absl::StatusOr<bool> ClaimSubscriber(const std::string& subscriber) = 0;
  // Gives up the sequencer role and every claim (at shutdown), so others take over at
  // once instead of after the lease.
  virtual void Release() = 0;
  // This process's replica id.
  virtual const std::string& replica_id() const = 0;
  // Marks the ACTIVE consents whose expires_at is at or before `now` as expiry_seen, in
  // batches; returns how many. What the sweep thread runs every sweep_interval.
  virtual absl::StatusOr<int64_t> SweepExpiredConsents(absl::Time now) = 0;
};

// Connects, checks (or applies) the schema, and starts the commit threads. Errors:
// INVALID_ARGUMENT for bad options; UNAVAILABLE when the database cannot be reached;
// FAILED_PRECONDITION for a schema this build cannot use (see Migrate).
absl::StatusOr<std::unique_ptr<PostgresStorage>> OpenPostgresStorage(PostgresOptions options);

// Applies the missing migrations to the database at `conninfo`; returns the versions
// applied (empty when it was up to date). For `tellonce-broker --migrate`.
absl::StatusOr<std::vector<int>> MigratePostgres(const std::string& conninfo);

// The schema version of the database at `conninfo` (0: no tellonce schema yet) and the
// one this build reads and writes, for `tellonce-broker --check`: reads only.
struct SchemaVersions {
  int database = 0;
  int build = 0;
};
absl::StatusOr<SchemaVersions> ReadPostgresSchemaVersions(const std::string& conninfo);

}  // namespace tellonce::storage::postgres

#endif  // TELLONCE_STORAGE_POSTGRES_POSTGRES_STORAGE_H_
