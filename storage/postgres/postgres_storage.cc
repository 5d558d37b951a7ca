// PgStorage: opening, group commit, the sequencer role and delivery claims.

#include "storage/postgres/postgres_storage.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ops/log.h"
#include "storage/postgres/internal.h"
#include "storage/postgres/schema.h"

namespace tellonce::storage::postgres {
namespace internal {
namespace {

constexpr pq::Statement kAcquireSequencer{"s_acquire", R"sql(
UPDATE sequencer SET
  epoch = CASE WHEN owner = $1 AND epoch = $2 THEN epoch ELSE epoch + 1 END,
  owner = $1,
  lease_until = clock_timestamp() + $3::bigint * interval '1 microsecond'
WHERE id = 1
  AND ((owner = $1 AND epoch = $2) OR owner IS NULL OR lease_until < clock_timestamp())
RETURNING epoch
)sql"};
constexpr pq::Statement kReleaseSequencer{"s_release", R"sql(
UPDATE sequencer SET owner = NULL, lease_until = NULL WHERE id = 1 AND owner = $1 AND epoch = $2
)sql"};
constexpr pq::Statement kClaim{"s_claim", R"sql(
INSERT INTO delivery_claims (subscriber, owner, epoch, lease_until)
VALUES ($1, $2, 1, clock_timestamp() + $3::bigint * interval '1 microsecond')
ON CONFLICT (subscriber) DO UPDATE SET
  epoch = CASE WHEN delivery_claims.owner = EXCLUDED.owner THEN delivery_claims.epoch
               ELSE delivery_claims.epoch + 1 END,
  owner = EXCLUDED.owner,
  lease_until = EXCLUDED.lease_until
WHERE delivery_claims.owner = EXCLUDED.owner OR delivery_claims.lease_until < clock_timestamp()
RETURNING epoch
)sql"};
constexpr pq::Statement kReleaseClaims{"s_release_claims",
                                       "DELETE FROM delivery_claims WHERE owner = $1"};

std::string NewReplicaId(std::string name) {
  if (name.empty()) {
    char host[256] = {};
    if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
    name = host;
  }
  absl::BitGen gen;
  return absl::StrFormat("%s:%d:%08x", name, getpid(), absl::Uniform<uint32_t>(gen));
}

absl::Status Exec(pq::Connection& conn, const char* sql) { return conn.Exec(sql, sql).status(); }

}  // namespace

PgStorage::PgStorage(PostgresOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<PgStorage>> PgStorage::Open(PostgresOptions options) {
  if (options.conninfo.empty()) {
    return absl::InvalidArgumentError("storage.postgres.conninfo: required");
  }
  if (options.pool_size < 2) {
    return absl::InvalidArgumentError("storage.postgres.pool_size: must be at least 2");
  }
  if (options.commit_threads < 1) {
    return absl::InvalidArgumentError("storage.postgres.commit_threads: must be at least 1");
  }
  if (options.sequencer_lease <= absl::ZeroDuration() ||
      options.claim_lease <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("storage.postgres: leases must be positive");
  }
  if (options.sweep_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("storage.postgres: sweep_interval must be positive");
  }
  options.max_group = std::max<size_t>(options.max_group, 1);
  options.max_attempts = std::max(options.max_attempts, 1);
  if (options.replica_id.empty()) options.replica_id = NewReplicaId(options.replica_name);

  std::unique_ptr<PgStorage> s(new PgStorage(std::move(options)));
  const PostgresOptions& o = s->options_;
  pq::ConnectionPool::Options pool;
  pool.connection.conninfo = o.conninfo;
  pool.connection.connect_timeout_seconds = o.connect_timeout_seconds;
  pool.connection.application_name = o.application_name;
  // A process that stops between the statements of a transaction (paused, hung, cut
  // off without a reset) would keep its row locks, and with them the sequencer row,
  // for ever: PostgreSQL ends such a session after half a lease, so another replica can
  // take over in time. Work functions never wait between statements.
  const int64_t idle_ms = std::max<int64_t>(absl::ToInt64Milliseconds(o.sequencer_lease) / 2, 200);
  const std::string session = absl::StrCat("-c idle_in_transaction_session_timeout=", idle_ms);
  pool.connection.session_options = session;
  pool.size = o.pool_size;
  s->reads_ = std::make_unique<pq::ConnectionPool>(pool);
  pool.size = o.commit_threads;
  s->commits_ = std::make_unique<pq::ConnectionPool>(pool);
  pool.size = 2;
  pool.connection.session_options = absl::StrCat(session, " -c synchronous_commit=off");
  s->unsynced_ = std::make_unique<pq::ConnectionPool>(pool);

  absl::Status migrated = s->reads_->With(true, [&](pq::Connection& conn) {
    std::vector<int> applied;
    absl::Status status = Migrate(conn, o.apply_migrations, &applied);
    if (status.ok() && !applied.empty()) {
      ops::LogInfo(absl::StrCat("postgres: schema migrated to version ", applied.back()));
    }
    return status;
  });
  if (!migrated.ok()) return migrated;

  s->consent_rows_ = NewConsentRows(s.get());
  s->access_events_ = NewAccessEventLog(s.get());
  s->tree_ = NewTreeStore(s.get());
  s->deliveries_ = NewDeliveryStore(s.get());
  for (int i = 0; i < o.commit_threads; ++i) {
    s->threads_.emplace_back([raw = s.get(), i] { raw->CommitLoop(i); });
  }
  s->threads_.emplace_back([raw = s.get()] { raw->SweepLoop(); });
  return s;
}

PgStorage::~PgStorage() {
  Close();
  Release();
}

void PgStorage::Close() {
  absl::MutexLock close(&close_mu_);
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();  // each returns once the queue is empty
  }
}

void PgStorage::Submit(Work work, Done done) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      queue_.push_back(Pending{std::move(work), std::move(done)});
      return;
    }
  }
  done(absl::UnavailableError("storage is shutting down"));
}

Storage::CommitCounts PgStorage::commit_counts() const {
  CommitCounts c;
  c.operations = operations_.load(std::memory_order_relaxed);
  c.groups = groups_.load(std::memory_order_relaxed);
  c.writes = writes_.load(std::memory_order_relaxed);
  return c;
}

constexpr int kSweepBatch = 10000;
constexpr pq::Statement kSweepExpired{"s_sweep_expired", R"sql(
UPDATE consents SET expiry_seen = true
WHERE consent_id IN (SELECT consent_id FROM consents
                     WHERE status = 'ACTIVE' AND NOT expiry_seen AND expires_at <= $1
                     LIMIT $2)
)sql"};

absl::StatusOr<int64_t> PgStorage::SweepExpiredConsents(absl::Time now) {
  int64_t swept = 0;
  while (true) {
    int64_t batch = 0;
    absl::Status s = unsynced_->With(true, [&](pq::Connection& conn) -> absl::Status {
      pq::Params params;
      params.Time(now).Int4(kSweepBatch);
      absl::StatusOr<pq::Result> result =
          conn.Run(kSweepExpired, params, "marking expired consents");
      if (!result.ok()) return result.status();
      batch = result->affected();
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    swept += batch;
    if (batch < kSweepBatch) return swept;
    absl::MutexLock lock(&mu_);
    if (stopping_) return swept;
  }
}

void PgStorage::SweepLoop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.sweep_interval);
      if (stopping_) return;
    }
    absl::StatusOr<int64_t> swept = SweepExpiredConsents(absl::Now());
    if (!swept.ok()) {
      ops::LogWarning("postgres: marking expired consents failed; trying again later",
                      {{"error", swept.status().ToString()}});
    } else if (*swept > 0) {
      ops::LogInfo("postgres: expired consents left the active index",
                   {{"consents", absl::StrCat(*swept)}});
    }
  }
}

absl::Status PgStorage::Backup(const std::string& dir) {
  // FAILED_PRECONDITION, not UNIMPLEMENTED: the services' handlers never answer
  // UNIMPLEMENTED (ops/malformed_request.h would report it as a request that does not
  // parse).
  return absl::FailedPreconditionError(absl::StrCat(
      dir,
      ": the broker does not copy a PostgreSQL database; back it up with PostgreSQL's "
      "tools (pg_basebackup and WAL archiving for point-in-time recovery); each replica's "
      "signed_checkpoint_file stays on its host and is not restored with the database "
      "(docs/backup-postgres.md)"));
}

absl::Status PgStorage::Health() {
  // The pool that heard from the database last knows best.
  std::pair<absl::Time, absl::Status> latest = reads_->LastOutcome();
  for (const pq::ConnectionPool* pool : {commits_.get(), unsynced_.get()}) {
    std::pair<absl::Time, absl::Status> outcome = pool->LastOutcome();
    if (outcome.first > latest.first) latest = std::move(outcome);
  }
  return latest.second;
}

void PgStorage::CommitLoop(int thread) {
  std::vector<Pending> group;
  std::vector<absl::Status> results;
  size_t last_group = 0;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;
      if (options_.gather > absl::ZeroDuration() && last_group > 1) {
        auto full = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stopping_ || queue_.size() >= options_.max_group;
        };
        mu_.AwaitWithTimeout(absl::Condition(&full), options_.gather);
      }
      const size_t n = std::min(queue_.size(), options_.max_group);
      for (size_t i = 0; i < n; ++i) {
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      last_group = n;
    }
    operations_.fetch_add(group.size(), std::memory_order_relaxed);
    RunGroup(group, results);
    for (size_t i = 0; i < group.size(); ++i) group[i].done(std::move(results[i]));
    group.clear();
  }
}

void PgStorage::RunGroup(std::vector<Pending>& group, std::vector<absl::Status>& results) {
  const size_t n = group.size();
  results.assign(n, absl::OkStatus());
  std::vector<bool> settled(n, false);
  auto fill = [&](const absl::Status& status) {
    for (size_t i = 0; i < n; ++i) {
      if (!settled[i]) results[i] = status;
    }
  };
  bool savepoints = false;
  int attempts = 0;
  int reconnects = 0;
  for (;;) {
    absl::StatusOr<pq::ConnectionPool::Lease> lease = commits_->Acquire();
    if (!lease.ok()) {
      fill(lease.status());
      return;
    }
    GroupResult r = TryGroup(**lease, group, results, settled, savepoints);
    switch (r.outcome) {
      case Outcome::kCommitted:
        return;
      case Outcome::kWorkFailed:
        // Undone with the whole transaction; the others run again, each inside a
        // savepoint from now on.
        settled[r.work] = true;
        results[r.work] = r.status;
        savepoints = true;
        continue;
      case Outcome::kRetry:
        if (++attempts < options_.max_attempts) continue;
        fill(absl::AbortedError(absl::StrCat("postgres: gave up after ", attempts,
                                             " conflicting attempts: ", r.status.message())));
        return;
      case Outcome::kLost:
        commits_->ReportLost(r.status);
        if (++reconnects < 2) continue;
        fill(r.status);
        return;
      case Outcome::kUnknown:
        commits_->ReportLost(r.status);
        fill(absl::UnavailableError(absl::StrCat(
            "postgres: the connection broke during COMMIT, so whether it committed is unknown "
            "(a retry with the same request id is safe): ",
            r.status.message())));
        return;
      case Outcome::kFailed:
        fill(r.status);
        return;
    }
  }
}

PgStorage::GroupResult PgStorage::TryGroup(pq::Connection& conn, std::vector<Pending>& group,
                                           std::vector<absl::Status>& results,
                                           const std::vector<bool>& settled, bool savepoints) {
  auto classify = [&conn](absl::Status status) -> GroupResult {
    if (!conn.ok() || absl::IsUnavailable(status)) return {Outcome::kLost, std::move(status)};
    if (absl::IsAborted(status)) return {Outcome::kRetry, std::move(status)};
    return {Outcome::kFailed, std::move(status)};
  };
  auto abandon = [&](absl::Status status) -> GroupResult {
    if (conn.ok()) (void)Exec(conn, "ROLLBACK");
    return classify(std::move(status));
  };
  if (absl::Status begun = Exec(conn, "BEGIN"); !begun.ok()) return classify(begun);

  PgTransaction tx(this, &conn);
  for (size_t i = 0; i < group.size(); ++i) {
    if (settled[i]) continue;
    tx.BeginWork();
    if (savepoints) {
      if (absl::Status s = Exec(conn, "SAVEPOINT work"); !s.ok()) return abandon(s);
    }
    absl::Status status = group[i].work(tx);
    if (!tx.group_error().ok()) return abandon(tx.group_error());
    if (tx.rerun()) return abandon(absl::AbortedError("a unique key was taken concurrently"));
    if (status.ok() && tx.statement_error().ok()) {
      tx.KeepWork();
      results[i] = absl::OkStatus();
      if (savepoints) {
        if (absl::Status s = Exec(conn, "RELEASE SAVEPOINT work"); !s.ok()) return abandon(s);
      }
      continue;
    }
    if (status.ok()) status = tx.statement_error();  // the work ignored a failed statement
    tx.DiscardWork();
    results[i] = status;
    const bool dirty = tx.wrote() || !tx.statement_error().ok();
    if (savepoints) {
      const char* undo = dirty ? "ROLLBACK TO SAVEPOINT work" : "RELEASE SAVEPOINT work";
      if (absl::Status s = Exec(conn, undo); !s.ok()) return abandon(s);
      if (dirty) {
        if (absl::Status s = Exec(conn, "RELEASE SAVEPOINT work"); !s.ok()) return abandon(s);
      }
      continue;
    }
    if (dirty) {
      // The work's own error, whatever its code: undo everything, and run the group
      // again without it.
      if (conn.ok()) (void)Exec(conn, "ROLLBACK");
      if (!conn.ok()) return {Outcome::kLost, status};
      return {Outcome::kWorkFailed, status, i};
    }
  }
  if (absl::Status flushed = tx.FlushEvents(options_.numbering); !flushed.ok()) {
    return abandon(flushed);
  }
  const bool wrote = tx.has_writes();
  if (absl::Status committed = Exec(conn, "COMMIT"); !committed.ok()) {
    if (!conn.ok()) return {Outcome::kUnknown, committed};
    return classify(committed);
  }
  commits_->ReportOk();
  groups_.fetch_add(1, std::memory_order_relaxed);
  if (wrote) writes_.fetch_add(1, std::memory_order_relaxed);
  if (tx.has_events() && append_listener_) append_listener_();
  return {Outcome::kCommitted, absl::OkStatus()};
}

// --- The sequencer role ------------------------------------------------------------------

absl::StatusOr<bool> PgStorage::AcquireSequencer() {
  absl::MutexLock lock(&sequencer_mu_);
  const absl::Time now = absl::Now();
  if (epoch_ != 0 && now - renewed_at_ < options_.sequencer_lease / 3) return true;
  pq::Params params;
  params.Text(options_.replica_id)
      .Int8(epoch_)
      .Int8(absl::ToInt64Microseconds(options_.sequencer_lease));
  int64_t epoch = 0;
  absl::Status status = reads_->With(true, [&](pq::Connection& conn) -> absl::Status {
    absl::StatusOr<pq::Result> r = conn.Run(kAcquireSequencer, params, "taking the sequencer role");
    if (!r.ok()) return r.status();
    epoch = r->rows() == 1 ? r->Int(0, 0) : 0;
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  if (epoch == 0) {
    if (epoch_ != 0) {
      ops::LogWarning(absl::StrCat("postgres: lost the sequencer role (epoch ", epoch_,
                                   "): another replica holds it"));
    }
    epoch_ = 0;
    return false;
  }
  if (epoch != epoch_) {
    ops::LogInfo(absl::StrCat("postgres: this replica (", options_.replica_id,
                              ") is the sequencer, epoch ", epoch));
  }
  epoch_ = epoch;
  renewed_at_ = now;
  return true;
}

absl::StatusOr<int64_t> PgStorage::SequencerEpoch(bool acquire) {
  {
    absl::MutexLock lock(&sequencer_mu_);
    if (epoch_ != 0 || !acquire) return epoch_;
  }
  absl::StatusOr<bool> held = AcquireSequencer();
  if (!held.ok()) return held.status();
  absl::MutexLock lock(&sequencer_mu_);
  return epoch_;
}

void PgStorage::LostSequencer(int64_t epoch) {
  absl::MutexLock lock(&sequencer_mu_);
  if (epoch_ == epoch && epoch != 0) {
    ops::LogWarning(absl::StrCat("postgres: the sequencer epoch ", epoch,
                                 " is stale: another replica took over; this write was refused"));
    epoch_ = 0;
  }
}

absl::StatusOr<bool> PgStorage::ClaimSubscriber(const std::string& subscriber) {
  absl::MutexLock lock(&claims_mu_);
  const absl::Time now = absl::Now();
  auto it = claims_.find(subscriber);
  if (it != claims_.end() && now - it->second < options_.claim_lease / 3) return true;
  pq::Params params;
  params.Text(subscriber)
      .Text(options_.replica_id)
      .Int8(absl::ToInt64Microseconds(options_.claim_lease));
  bool held = false;
  absl::Status status = reads_->With(true, [&](pq::Connection& conn) -> absl::Status {
    absl::StatusOr<pq::Result> r = conn.Run(kClaim, params, "claiming a subscriber's deliveries");
    if (!r.ok()) return r.status();
    held = r->rows() == 1;
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  if (held) {
    claims_[subscriber] = now;
  } else {
    claims_.erase(subscriber);
  }
  return held;
}

void PgStorage::Release() {
  int64_t epoch;
  {
    absl::MutexLock lock(&sequencer_mu_);
    epoch = epoch_;
    epoch_ = 0;
  }
  bool had_claims;
  {
    absl::MutexLock lock(&claims_mu_);
    had_claims = !claims_.empty();
    claims_.clear();
  }
  if (epoch == 0 && !had_claims) return;
  (void)reads_->With(false, [&](pq::Connection& conn) -> absl::Status {
    if (epoch != 0) {
      pq::Params params;
      params.Text(options_.replica_id).Int8(epoch);
      if (auto r = conn.Run(kReleaseSequencer, params, "giving up the sequencer role"); !r.ok()) {
        return r.status();
      }
    }
    if (had_claims) {
      pq::Params params;
      params.Text(options_.replica_id);
      return conn.Run(kReleaseClaims, params, "giving up delivery claims").status();
    }
    return absl::OkStatus();
  });
}

}  // namespace internal

absl::StatusOr<std::unique_ptr<PostgresStorage>> OpenPostgresStorage(PostgresOptions options) {
  absl::StatusOr<std::unique_ptr<internal::PgStorage>> s =
      internal::PgStorage::Open(std::move(options));
  if (!s.ok()) return s.status();
  return std::unique_ptr<PostgresStorage>(std::move(*s));
}

absl::StatusOr<std::vector<int>> MigratePostgres(const std::string& conninfo) {
  pq::Connection::Options options;
  options.conninfo = conninfo;
  options.application_name = "tellonce-broker --migrate";
  absl::StatusOr<std::unique_ptr<pq::Connection>> conn = pq::Connection::Open(options);
  if (!conn.ok()) return conn.status();
  std::vector<int> applied;
  if (absl::Status s = Migrate(**conn, /*apply=*/true, &applied); !s.ok()) return s;
  return applied;
}

absl::StatusOr<SchemaVersions> ReadPostgresSchemaVersions(const std::string& conninfo) {
  pq::Connection::Options options;
  options.conninfo = conninfo;
  options.application_name = "tellonce-broker --check";
  absl::StatusOr<std::unique_ptr<pq::Connection>> conn = pq::Connection::Open(options);
  if (!conn.ok()) return conn.status();
  absl::StatusOr<int> version = SchemaVersion(**conn);
  if (!version.ok()) return version.status();
  return SchemaVersions{.database = *version, .build = LatestSchemaVersion()};
}

}  // namespace tellonce::storage::postgres
