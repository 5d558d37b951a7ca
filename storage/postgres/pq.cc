#include "storage/postgres/pq.h"

#include <arpa/inet.h>

#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace tellonce::storage::pq {
namespace {

void PutBigEndian(std::string& out, uint64_t value, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

uint64_t GetBigEndian(const char* data, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value = (value << 8) | static_cast<unsigned char>(data[i]);
  return value;
}

constexpr int64_t kInfinityMicros = INT64_MAX;
constexpr int64_t kMinusInfinityMicros = INT64_MIN;

int64_t ToPostgresMicros(absl::Time t) {
  if (t == absl::InfiniteFuture()) return kInfinityMicros;
  if (t == absl::InfinitePast()) return kMinusInfinityMicros;
  return absl::ToUnixMicros(t) - kPostgresEpochMicros;
}

absl::Time FromPostgresMicros(int64_t micros) {
  if (micros == kInfinityMicros) return absl::InfiniteFuture();
  if (micros == kMinusInfinityMicros) return absl::InfinitePast();
  return absl::FromUnixMicros(micros + kPostgresEpochMicros);
}

// PostgreSQL's binary array format, one dimension: ndim, has-null flag, element type,
// then (size, lower bound) per dimension, then each element as length + bytes.
std::string EncodeArray(Oid element, const std::vector<std::string>& elements) {
  std::string out;
  PutBigEndian(out, 1, 4);
  PutBigEndian(out, 0, 4);
  PutBigEndian(out, element, 4);
  PutBigEndian(out, elements.size(), 4);
  PutBigEndian(out, 1, 4);
  for (const std::string& e : elements) {
    PutBigEndian(out, static_cast<uint32_t>(e.size()), 4);
    out += e;
  }
  return out;
}

std::string FirstLine(absl::string_view text) {
  text = absl::StripTrailingAsciiWhitespace(text);
  const size_t newline = text.find('\n');
  if (newline != absl::string_view::npos) text = text.substr(0, newline);
  return std::string(absl::StripAsciiWhitespace(text));
}

}  // namespace

std::string SqlState(const PGresult* result) {
  if (result == nullptr) return "";
  const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  return state == nullptr ? "" : state;
}

absl::Status ErrorFromResult(const PGresult* result, PGconn* connection, absl::string_view what) {
  const std::string state = SqlState(result);
  std::string message;
  if (result != nullptr) {
    const char* primary = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
    if (primary != nullptr) message = primary;
  }
  if (message.empty() && connection != nullptr) message = FirstLine(PQerrorMessage(connection));
  if (message.empty()) message = "no result";
  const bool lost = connection != nullptr && PQstatus(connection) == CONNECTION_BAD;
  if (state.empty() || lost) {
    return absl::UnavailableError(
        absl::StrCat("postgres: connection lost while ", what, ": ", message));
  }
  const std::string text =
      absl::StrCat("postgres: ", what, ": ", message, " (SQLSTATE ", state, ")");
  if (absl::StartsWith(state, "08") || absl::StartsWith(state, "53") || state == "57P01" ||
      state == "57P02" || state == "57P03") {
    return absl::UnavailableError(text);
  }
  if (state == "40001" || state == "40P01" || state == "55P03") return absl::AbortedError(text);
  if (state == "23505") return absl::AlreadyExistsError(text);
  // Data exceptions: a value PostgreSQL cannot store (a NUL or invalid UTF-8 in text, a
  // number out of range).
  if (absl::StartsWith(state, "22")) return absl::InvalidArgumentError(text);
  if (state == "57014") return absl::DeadlineExceededError(text);
  if (state == "42P01") {
    return absl::FailedPreconditionError(
        absl::StrCat(text, "; is the schema installed? (tellonce-broker --migrate)"));
  }
  return absl::InternalError(text);
}

// --- Result ------------------------------------------------------------------------------

Result& Result::operator=(Result&& other) noexcept {
  if (this != &other) {
    PQclear(result_);
    result_ = other.result_;
    other.result_ = nullptr;
  }
  return *this;
}

int64_t Result::affected() const {
  if (result_ == nullptr) return 0;
  const char* n = PQcmdTuples(result_);
  if (n == nullptr || *n == '\0') return 0;
  return std::strtoll(n, nullptr, 10);
}

std::string_view Result::Bytes(int row, int col) const {
  if (IsNull(row, col)) return {};
  return std::string_view(PQgetvalue(result_, row, col),
                          static_cast<size_t>(PQgetlength(result_, row, col)));
}

int64_t Result::Int(int row, int col) const {
  std::string_view b = Bytes(row, col);
  switch (b.size()) {
    case 2:
      return static_cast<int16_t>(GetBigEndian(b.data(), 2));
    case 4:
      return static_cast<int32_t>(GetBigEndian(b.data(), 4));
    case 8:
      return static_cast<int64_t>(GetBigEndian(b.data(), 8));
    default:
      return 0;
  }
}

bool Result::Bool(int row, int col) const {
  std::string_view b = Bytes(row, col);
  return b.size() == 1 && b[0] != 0;
}

absl::Time Result::Time(int row, int col) const {
  std::string_view b = Bytes(row, col);
  if (b.size() != 8) return absl::InfinitePast();
  return FromPostgresMicros(static_cast<int64_t>(GetBigEndian(b.data(), 8)));
}

std::vector<std::string> Result::StringArray(int row, int col) const {
  std::vector<std::string> out;
  std::string_view b = Bytes(row, col);
  if (b.size() < 12) return out;
  const int ndim = static_cast<int>(GetBigEndian(b.data(), 4));
  if (ndim == 0) return out;
  if (ndim != 1 || b.size() < 20) return out;
  const uint32_t count = static_cast<uint32_t>(GetBigEndian(b.data() + 12, 4));
  size_t at = 20;
  for (uint32_t i = 0; i < count && at + 4 <= b.size(); ++i) {
    const int32_t len = static_cast<int32_t>(GetBigEndian(b.data() + at, 4));
    at += 4;
    if (len < 0) {
      out.emplace_back();
      continue;
    }
    if (at + static_cast<size_t>(len) > b.size()) break;
    out.emplace_back(b.substr(at, static_cast<size_t>(len)));
    at += static_cast<size_t>(len);
  }
  return out;
}

// --- Params ------------------------------------------------------------------------------

void Params::Add(Oid type, std::string bytes, bool null) {
  types_.push_back(type);
  formats_.push_back(1);
  if (null) {
    pointers_.push_back(nullptr);
    lengths_.push_back(0);
    return;
  }
  storage_.push_back(std::move(bytes));
  const std::string& stored = storage_.back();
  pointers_.push_back(stored.data());
  lengths_.push_back(static_cast<int>(stored.size()));
}

Params& Params::Null(Oid type) {
  Add(type, "", true);
  return *this;
}
Params& Params::Text(std::string_view value) {
  Add(kText, std::string(value));
  return *this;
}
Params& Params::Bytes(std::string_view value) {
  Add(kBytea, std::string(value));
  return *this;
}
Params& Params::Int2(int16_t value) {
  std::string b;
  PutBigEndian(b, static_cast<uint16_t>(value), 2);
  Add(kInt2, std::move(b));
  return *this;
}
Params& Params::Int4(int32_t value) {
  std::string b;
  PutBigEndian(b, static_cast<uint32_t>(value), 4);
  Add(kInt4, std::move(b));
  return *this;
}
Params& Params::Int8(int64_t value) {
  std::string b;
  PutBigEndian(b, static_cast<uint64_t>(value), 8);
  Add(kInt8, std::move(b));
  return *this;
}
Params& Params::Bool(bool value) {
  Add(kBool, std::string(1, value ? '\1' : '\0'));
  return *this;
}
Params& Params::Time(absl::Time value) {
  std::string b;
  PutBigEndian(b, static_cast<uint64_t>(ToPostgresMicros(value)), 8);
  Add(kTimestamptz, std::move(b));
  return *this;
}
Params& Params::TextArray(const std::vector<std::string>& values) {
  Add(kTextArray, EncodeArray(kText, values));
  return *this;
}
Params& Params::ByteaArray(const std::vector<std::string>& values) {
  Add(kByteaArray, EncodeArray(kBytea, values));
  return *this;
}
Params& Params::Int2Array(const std::vector<int16_t>& values) {
  std::vector<std::string> e;
  e.reserve(values.size());
  for (int16_t v : values) PutBigEndian(e.emplace_back(), static_cast<uint16_t>(v), 2);
  Add(kInt2Array, EncodeArray(kInt2, e));
  return *this;
}
Params& Params::Int4Array(const std::vector<int32_t>& values) {
  std::vector<std::string> e;
  e.reserve(values.size());
  for (int32_t v : values) PutBigEndian(e.emplace_back(), static_cast<uint32_t>(v), 4);
  Add(kInt4Array, EncodeArray(kInt4, e));
  return *this;
}
Params& Params::Int8Array(const std::vector<int64_t>& values) {
  std::vector<std::string> e;
  e.reserve(values.size());
  for (int64_t v : values) PutBigEndian(e.emplace_back(), static_cast<uint64_t>(v), 8);
  Add(kInt8Array, EncodeArray(kInt8, e));
  return *this;
}
Params& Params::TimeArray(const std::vector<absl::Time>& values) {
  std::vector<std::string> e;
  e.reserve(values.size());
  for (absl::Time v : values) {
    PutBigEndian(e.emplace_back(), static_cast<uint64_t>(ToPostgresMicros(v)), 8);
  }
  Add(kTimestamptzArray, EncodeArray(kTimestamptz, e));
  return *this;
}

// --- Connection --------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(const Options& options) {
  // Defaults first; the caller's connection string (expanded from "dbname") overrides them.
  const std::string timeout = absl::StrCat(std::max(options.connect_timeout_seconds, 2));
  std::vector<const char*> keys = {"connect_timeout", "application_name",    "keepalives",
                                   "keepalives_idle", "keepalives_interval", "keepalives_count"};
  std::vector<const char*> values = {
      timeout.c_str(), options.application_name.c_str(), "1", "10", "5", "3"};
  if (!options.session_options.empty()) {
    keys.push_back("options");
    values.push_back(options.session_options.c_str());
  }
  keys.push_back("dbname");
  values.push_back(options.conninfo.c_str());
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PGconn* conn = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
  if (conn == nullptr) return absl::ResourceExhaustedError("postgres: out of memory connecting");
  if (PQstatus(conn) != CONNECTION_OK) {
    absl::Status status = absl::UnavailableError(
        absl::StrCat("postgres: cannot connect: ", FirstLine(PQerrorMessage(conn))));
    PQfinish(conn);
    return status;
  }
  // Server notices (e.g. "terminating connection due to immediate shutdown") would go
  // to stderr; the error that follows them says the same through a Status.
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  return std::unique_ptr<Connection>(new Connection(conn));
}

Connection::~Connection() { PQfinish(conn_); }

bool Connection::ok() const { return PQstatus(conn_) == CONNECTION_OK; }

bool Connection::in_transaction() const {
  const PGTransactionStatusType status = PQtransactionStatus(conn_);
  return status == PQTRANS_INTRANS || status == PQTRANS_INERROR || status == PQTRANS_ACTIVE;
}

absl::StatusOr<Result> Connection::Check(PGresult* raw, absl::string_view what) {
  Result result(raw);
  const ExecStatusType status = raw == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(raw);
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;
  return ErrorFromResult(raw, conn_, what);
}

absl::StatusOr<Result> Connection::Exec(absl::string_view sql, absl::string_view what) {
  const std::string text(sql);
  return Check(PQexec(conn_, text.c_str()), what);
}

absl::StatusOr<Result> Connection::Exec(const std::string& sql, const Params& params,
                                        absl::string_view what) {
  return Check(PQexecParams(conn_, sql.c_str(), params.size(), params.types(), params.values(),
                            params.lengths(), params.formats(), /*resultFormat=*/1),
               what);
}

absl::StatusOr<Result> Connection::Run(const Statement& statement, const Params& params,
                                       absl::string_view what) {
  if (!prepared_.contains(statement.name)) {
    absl::StatusOr<Result> prepared =
        Check(PQprepare(conn_, statement.name, statement.sql, params.size(), params.types()),
              absl::StrCat(what, " (preparing ", statement.name, ")"));
    if (!prepared.ok()) return prepared.status();
    prepared_.insert(statement.name);
  }
  return Check(PQexecPrepared(conn_, statement.name, params.size(), params.values(),
                              params.lengths(), params.formats(), /*resultFormat=*/1),
               what);
}

// --- ConnectionPool ----------------------------------------------------------------------

ConnectionPool::ConnectionPool(Options options) : options_(std::move(options)) {}

ConnectionPool::~ConnectionPool() {
  absl::MutexLock lock(&mu_);
  idle_.clear();
}

ConnectionPool::Lease::~Lease() {
  if (conn_ != nullptr) pool_->Release(std::move(conn_), generation_);
}

absl::StatusOr<ConnectionPool::Lease> ConnectionPool::Acquire() {
  uint64_t generation;
  {
    absl::MutexLock lock(&mu_);
    auto available = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !idle_.empty() || open_ < options_.size;
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&available), options_.acquire_timeout)) {
      return absl::UnavailableError(absl::StrCat("postgres: all ", options_.size,
                                                 " connections stayed busy for ",
                                                 absl::FormatDuration(options_.acquire_timeout)));
    }
    if (!idle_.empty()) {
      std::unique_ptr<Connection> conn = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(conn), generation_);
    }
    if (failing_.has_value() && absl::Now() < retry_at_) return *failing_;
    ++open_;
    generation = generation_;
  }
  absl::StatusOr<std::unique_ptr<Connection>> conn = Connection::Open(options_.connection);
  absl::MutexLock lock(&mu_);
  if (!conn.ok()) {
    --open_;
    failing_ = conn.status();
    changed_ = absl::Now();
    retry_at_ = absl::Now() + options_.retry_after_failure;
    return conn.status();
  }
  if (failing_.has_value()) {
    failing_.reset();
    changed_ = absl::Now();
  }
  return Lease(this, *std::move(conn), generation);
}

void ConnectionPool::Release(std::unique_ptr<Connection> conn, uint64_t generation) {
  std::unique_ptr<Connection> drop;
  {
    absl::MutexLock lock(&mu_);
    if (!conn->ok() || conn->in_transaction() || generation != generation_) {
      drop = std::move(conn);
      --open_;
    } else {
      idle_.push_back(std::move(conn));
    }
  }
  // Closed outside the lock (PQfinish may send a terminate message).
}

void ConnectionPool::ReportLost(const absl::Status& status) {
  std::vector<std::unique_ptr<Connection>> drop;
  absl::MutexLock lock(&mu_);
  ++generation_;
  open_ -= static_cast<int>(idle_.size());
  drop.swap(idle_);
  failing_ = status;
  changed_ = absl::Now();
  // Let the next acquire try at once: the server may be back already.
  retry_at_ = absl::InfinitePast();
}

absl::Status ConnectionPool::Health() const {
  absl::MutexLock lock(&mu_);
  return failing_.has_value() ? *failing_ : absl::OkStatus();
}

std::pair<absl::Time, absl::Status> ConnectionPool::LastOutcome() const {
  absl::MutexLock lock(&mu_);
  return {changed_, failing_.has_value() ? *failing_ : absl::OkStatus()};
}

void ConnectionPool::ReportOk() {
  absl::MutexLock lock(&mu_);
  if (failing_.has_value()) {
    failing_.reset();
    changed_ = absl::Now();
  }
}

absl::Status ConnectionPool::With(bool idempotent,
                                  const std::function<absl::Status(Connection&)>& body) {
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<Lease> lease = Acquire();
    if (!lease.ok()) return lease.status();
    absl::Status status = body(**lease);
    if (status.ok()) {
      ReportOk();
      return status;
    }
    if (!(*lease)->ok()) {
      ReportLost(status);
      if (idempotent && attempt == 0) continue;
    } else if ((*lease)->in_transaction()) {
      // Leave no transaction open on a pooled connection.
      (void)(*lease)->Exec("ROLLBACK", "rolling back");
    }
    return status;
  }
}

}  // namespace tellonce::storage::pq
