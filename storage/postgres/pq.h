#ifndef TELLONCE_STORAGE_POSTGRES_PQ_H_
#define TELLONCE_STORAGE_POSTGRES_PQ_H_

// A small RAII layer over libpq: connections, results, binary parameters and results,
// prepared statements, a connection pool, and the one place where a PostgreSQL error
// becomes an absl::Status.
//
// Everything travels in PostgreSQL's binary format (parameters and results), so bytes
// (bytea) need no escaping and integers no parsing. Types used: bool, int2, int4, int8,
// text, bytea, timestamptz, and one-dimensional arrays of those.
//
// Errors (ErrorFromResult): a lost or refused connection, and the SQLSTATE classes 08
// (connection exception), 53 (insufficient resources) and 57P01-57P03 (shutdown,
// cannot connect now) -> UNAVAILABLE; 40001 (serialization failure) and 40P01 (deadlock
// detected) -> ABORTED, which a caller retries; 23505 (unique violation) ->
// ALREADY_EXISTS; class 22 (data exception: a NUL or invalid UTF-8 in text, a number
// out of range) -> INVALID_ARGUMENT; 57014 (statement timeout or cancel) -> DEADLINE_EXCEEDED;
// 55P03 (lock not available) -> ABORTED; 42P01 (undefined table) -> FAILED_PRECONDITION (the schema
// is missing); anything else -> INTERNAL. The message names what was being done and carries
// PostgreSQL's primary message and SQLSTATE, never its DETAIL line (which may quote row values,
// such as a citizen id).

#include <libpq-fe.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tellonce::storage::pq {

// Type OIDs (pg_type.oid) of the types used here.
enum TypeOid : Oid {
  kBool = 16,
  kBytea = 17,
  kInt8 = 20,
  kInt2 = 21,
  kInt4 = 23,
  kText = 25,
  kTimestamptz = 1184,
  kBoolArray = 1000,
  kInt2Array = 1005,
  kInt4Array = 1007,
  kTextArray = 1009,
  kByteaArray = 1001,
  kInt8Array = 1016,
  kTimestamptzArray = 1185,
};

// The SQLSTATE of a failed result ("" when there is none, e.g. the connection broke).
std::string SqlState(const PGresult* result);

// The status for a failed command (see the file comment). `what` names the operation
// ("reading a consent"); `connection` may be null.
absl::Status ErrorFromResult(const PGresult* result, PGconn* connection, absl::string_view what);

// An owned PGresult.
class Result {
 public:
  Result() = default;
  explicit Result(PGresult* result) : result_(result) {}
  Result(Result&& other) noexcept : result_(other.result_) { other.result_ = nullptr; }
  Result& operator=(Result&& other) noexcept;
  ~Result() { PQclear(result_); }

  PGresult* get() const { return result_; }
  int rows() const { return result_ == nullptr ? 0 : PQntuples(result_); }
  int columns() const { return result_ == nullptr ? 0 : PQnfields(result_); }
  // Rows changed by INSERT/UPDATE/DELETE (0 when not such a command).
  int64_t affected() const;

  bool IsNull(int row, int col) const { return PQgetisnull(result_, row, col) == 1; }
  // The raw binary value (empty for NULL).
  std::string_view Bytes(int row, int col) const;
  std::string String(int row, int col) const { return std::string(Bytes(row, col)); }
  // An int2, int4 or int8 column (0 for NULL).
  int64_t Int(int row, int col) const;
  bool Bool(int row, int col) const;
  // A timestamptz column (InfinitePast for NULL and -infinity, InfiniteFuture for
  // infinity).
  absl::Time Time(int row, int col) const;
  // A one-dimensional text[] (or bytea[]) column; NULL elements become "".
  std::vector<std::string> StringArray(int row, int col) const;

 private:
  PGresult* result_ = nullptr;
};

// Parameters of one statement, all in binary format with their type OIDs. Values are
// copied in; the object owns them.
class Params {
 public:
  Params& Null(Oid type);
  Params& Text(std::string_view value);
  Params& Bytes(std::string_view value);
  Params& Int2(int16_t value);
  Params& Int4(int32_t value);
  Params& Int8(int64_t value);
  Params& Bool(bool value);
  // InfinitePast / InfiniteFuture become -infinity / infinity.
  Params& Time(absl::Time value);
  // One-dimensional arrays.
  Params& TextArray(const std::vector<std::string>& values);
  Params& ByteaArray(const std::vector<std::string>& values);
  Params& Int2Array(const std::vector<int16_t>& values);
  Params& Int4Array(const std::vector<int32_t>& values);
  Params& Int8Array(const std::vector<int64_t>& values);
  Params& TimeArray(const std::vector<absl::Time>& values);

  int size() const { return static_cast<int>(types_.size()); }
  const Oid* types() const { return types_.data(); }
  const char* const* values() const { return pointers_.data(); }
  const int* lengths() const { return lengths_.data(); }
  const int* formats() const { return formats_.data(); }

 private:
  void Add(Oid type, std::string bytes, bool null = false);
  std::deque<std::string> storage_;  // stable addresses
  std::vector<Oid> types_;
  std::vector<const char*> pointers_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
};

// A named statement, prepared on each connection the first time it runs there.
// `sql` uses $1, $2, ...; parameter types come from the Params given at first use.
struct Statement {
  const char* name;
  const char* sql;
};

// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01 UTC).
inline constexpr int64_t kPostgresEpochMicros = 946684800LL * 1000000;

// One connection. Not thread-safe: one user at a time (the pool hands it out).
class Connection {
 public:
  struct Options {
    // A libpq connection string ("host=/run/postgresql dbname=tellonce") or URI. Its
    // settings override the defaults below.
    std::string conninfo;
    // Seconds libpq waits for a connection before giving up. Default 2 (so a call fails
    // fast when the database is unreachable). libpq's minimum is 2.
    int connect_timeout_seconds = 2;
    // Shown in pg_stat_activity. Default "tellonce".
    std::string application_name = "tellonce";
    // Sent as the session's `options` (e.g. "-c synchronous_commit=off"). Default none.
    std::string session_options;
  };

  // Connects; UNAVAILABLE naming the failure (libpq's message) when it cannot.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const Options& options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs `sql` (no parameters; several statements allowed) and returns its last result.
  absl::StatusOr<Result> Exec(absl::string_view sql, absl::string_view what);
  // Runs `sql` with parameters, unprepared, binary results.
  absl::StatusOr<Result> Exec(const std::string& sql, const Params& params, absl::string_view what);
  // Runs a prepared statement (preparing it first on this connection), binary results.
  absl::StatusOr<Result> Run(const Statement& statement, const Params& params,
                             absl::string_view what);

  // False once the connection is known to be broken (then the pool drops it).
  bool ok() const;
  // Whether a transaction is open (or failed) on the connection.
  bool in_transaction() const;
  PGconn* raw() const { return conn_; }

 private:
  explicit Connection(PGconn* conn) : conn_(conn) {}
  absl::StatusOr<Result> Check(PGresult* result, absl::string_view what);
  PGconn* conn_;
  absl::flat_hash_set<std::string> prepared_;
};

// Design: a fixed number of connections (Options::size), opened on demand and reused.
// Acquire hands one out (waiting while all are busy); the Lease gives it back when it
// goes out of scope, unless it broke (a lost connection is closed, and so are all idle
// ones opened before the loss, since a restarted server broke them all too). When the
// database cannot be reached, Acquire fails with UNAVAILABLE at once and, for
// `retry_after_failure`, without trying again, so callers fail fast instead of queueing
// behind connection attempts; the first acquire after that tries again, and the pool
// recovers by itself. Thread-safe.
class ConnectionPool {
 public:
  struct Options {
    Connection::Options connection;
    // Most connections open at once. Default 8.
    int size = 8;
    // How long Acquire waits for a busy pool. Default 5 s.
    absl::Duration acquire_timeout = absl::Seconds(5);
    // After a failed connection attempt, acquires fail at once with the same error for
    // this long. Default 200 ms.
    absl::Duration retry_after_failure = absl::Milliseconds(200);
  };

  class Lease {
   public:
    Lease(ConnectionPool* pool, std::unique_ptr<Connection> conn, uint64_t generation)
        : pool_(pool), conn_(std::move(conn)), generation_(generation) {}
    Lease(Lease&&) = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    Connection* operator->() const { return conn_.get(); }
    Connection& operator*() const { return *conn_; }

   private:
    ConnectionPool* pool_;
    std::unique_ptr<Connection> conn_;
    uint64_t generation_;
  };

  explicit ConnectionPool(Options options);
  ~ConnectionPool();

  // A connection; UNAVAILABLE when the database cannot be reached or every connection
  // stayed busy for acquire_timeout.
  absl::StatusOr<Lease> Acquire() ABSL_LOCKS_EXCLUDED(mu_);

  // Runs `body` on a pooled connection. When the connection turns out to be broken
  // (e.g. the server restarted since it was opened) and `idempotent` is true, runs it
  // once more on a fresh connection.
  absl::Status With(bool idempotent, const std::function<absl::Status(Connection&)>& body);

  // OK, or UNAVAILABLE with the last connection error while connections fail.
  absl::Status Health() const ABSL_LOCKS_EXCLUDED(mu_);
  // Health, and when it last changed (for combining several pools: the latest wins).
  std::pair<absl::Time, absl::Status> LastOutcome() const ABSL_LOCKS_EXCLUDED(mu_);
  // Records that a statement on a leased connection worked (Health becomes OK).
  void ReportOk() ABSL_LOCKS_EXCLUDED(mu_);
  // Records a lost connection (a statement failed with UNAVAILABLE): idle connections
  // opened before now are dropped, and Health reports it until a connection works.
  void ReportLost(const absl::Status& status) ABSL_LOCKS_EXCLUDED(mu_);

  int size() const { return options_.size; }

 private:
  void Release(std::unique_ptr<Connection> conn, uint64_t generation) ABSL_LOCKS_EXCLUDED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;  // idle + leased + being opened
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<absl::Status> failing_ ABSL_GUARDED_BY(mu_);
  absl::Time changed_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time retry_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace tellonce::storage::pq

#endif  // TELLONCE_STORAGE_POSTGRES_PQ_H_
