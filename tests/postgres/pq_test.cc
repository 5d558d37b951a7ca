// The libpq wrapper and the migrations, against a real throwaway PostgreSQL cluster.

#include "storage/postgres/pq.h"

#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/postgres/schema.h"
#include "tests/testing/pg_cluster.h"

namespace tellonce::storage {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class PqTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<testing::PgCluster>> c = testing::PgCluster::Start({});
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = c->release();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    if (!cluster_->running()) {
      ASSERT_TRUE(cluster_->Restart().ok());
    }
    absl::StatusOr<std::string> db = cluster_->CreateDatabase();
    ASSERT_TRUE(db.ok()) << db.status();
    dbname_ = *db;
  }
  std::string conninfo() const { return cluster_->ConnInfo(dbname_); }
  std::unique_ptr<pq::Connection> Connect() {
    pq::Connection::Options options;
    options.conninfo = conninfo();
    absl::StatusOr<std::unique_ptr<pq::Connection>> conn = pq::Connection::Open(options);
    EXPECT_TRUE(conn.ok()) << conn.status();
    return conn.ok() ? *std::move(conn) : nullptr;
  }

  static testing::PgCluster* cluster_;
  std::string dbname_;
};

testing::PgCluster* PqTest::cluster_ = nullptr;

TEST_F(PqTest, BinaryParametersAndResultsRoundTrip) {
  std::unique_ptr<pq::Connection> conn = Connect();
  ASSERT_NE(conn, nullptr);
  const std::string bytes("a\0b\xff", 4);
  const absl::Time t = absl::FromUnixMicros(1764500000123456);
  pq::Params params;
  params.Text("citizen 'x' \"y\"")
      .Bytes(bytes)
      .Int2(-7)
      .Int4(123456789)
      .Int8(-9000000000123)
      .Bool(true)
      .Time(t)
      .Time(absl::InfiniteFuture())
      .TextArray({"a", "", "b,c", "d\"e"})
      .Int8Array({1, -2, 3})
      .Null(pq::kText);
  const pq::Statement statement{
      "roundtrip",
      "SELECT $1::text, $2::bytea, $3::int2, $4::int4, $5::int8, $6::bool, $7::timestamptz, "
      "$8::timestamptz, $9::text[], array_length($10::int8[], 1), $11::text IS NULL, "
      "$7::timestamptz = '2025-11-30 10:53:20.123456+00'"};
  for (int run = 0; run < 2; ++run) {  // prepared once, run twice
    absl::StatusOr<pq::Result> r = conn->Run(statement, params, "round trip");
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->rows(), 1);
    EXPECT_EQ(r->String(0, 0), "citizen 'x' \"y\"");
    EXPECT_EQ(r->String(0, 1), bytes);
    EXPECT_EQ(r->Int(0, 2), -7);
    EXPECT_EQ(r->Int(0, 3), 123456789);
    EXPECT_EQ(r->Int(0, 4), -9000000000123);
    EXPECT_TRUE(r->Bool(0, 5));
    EXPECT_EQ(r->Time(0, 6), t);
    EXPECT_EQ(r->Time(0, 7), absl::InfiniteFuture());
    EXPECT_THAT(r->StringArray(0, 8), ::testing::ElementsAre("a", "", "b,c", "d\"e"));
    EXPECT_EQ(r->Int(0, 9), 3);
    EXPECT_TRUE(r->Bool(0, 10));
    EXPECT_TRUE(r->Bool(0, 11)) << "the binary timestamp is not the instant PostgreSQL reads";
  }
}

TEST_F(PqTest, ErrorsMapToStatusCodesWithSqlState) {
  std::unique_ptr<pq::Connection> conn = Connect();
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(conn->Exec("CREATE TABLE t (k text PRIMARY KEY)", "creating").ok());
  pq::Params secret;
  secret.Text("38001085718");
  const pq::Statement insert{"insert", "INSERT INTO t VALUES ($1)"};
  ASSERT_TRUE(conn->Run(insert, secret, "inserting").ok());

  absl::StatusOr<pq::Result> duplicate = conn->Run(insert, secret, "inserting again");
  EXPECT_EQ(duplicate.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(duplicate.status().message(), HasSubstr("23505"));
  EXPECT_THAT(duplicate.status().message(), HasSubstr("inserting again"));
  // PostgreSQL's DETAIL line quotes the key; it must not reach the message.
  EXPECT_THAT(duplicate.status().message(), Not(HasSubstr("38001085718")));

  absl::StatusOr<pq::Result> missing = conn->Exec("SELECT * FROM nowhere", "reading");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(missing.status().message(), HasSubstr("42P01"));

  absl::StatusOr<pq::Result> syntax = conn->Exec("SELEC 1", "reading");
  EXPECT_EQ(syntax.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(syntax.status().message(), HasSubstr("42601"));

  ASSERT_TRUE(conn->Exec("SET statement_timeout = '50ms'", "setting").ok());
  absl::StatusOr<pq::Result> slow = conn->Exec("SELECT pg_sleep(5)", "sleeping");
  EXPECT_EQ(slow.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(conn->ok()) << "a statement timeout leaves the connection usable";
}

TEST_F(PqTest, SerializationFailureAndDeadlockAreAborted) {
  std::unique_ptr<pq::Connection> a = Connect();
  std::unique_ptr<pq::Connection> b = Connect();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(a->Exec("CREATE TABLE r (k int PRIMARY KEY, v int); INSERT INTO r VALUES (1, 0), "
                      "(2, 0)",
                      "creating")
                  .ok());
  // Serialization failure: both read in REPEATABLE READ, b updates after a committed.
  ASSERT_TRUE(a->Exec("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT * FROM r", "a").ok());
  ASSERT_TRUE(b->Exec("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT * FROM r", "b").ok());
  ASSERT_TRUE(a->Exec("UPDATE r SET v = 1 WHERE k = 1; COMMIT", "a").ok());
  absl::StatusOr<pq::Result> conflict = b->Exec("UPDATE r SET v = 2 WHERE k = 1", "b");
  EXPECT_EQ(conflict.status().code(), absl::StatusCode::kAborted) << conflict.status();
  EXPECT_THAT(conflict.status().message(), HasSubstr("40001"));
  ASSERT_TRUE(b->Exec("ROLLBACK", "b").ok());

  // Deadlock: a locks 1 then 2, b locks 2 then 1.
  ASSERT_TRUE(
      a->Exec("SET deadlock_timeout = '100ms'; BEGIN; UPDATE r SET v = 3 WHERE k = 1", "a").ok());
  ASSERT_TRUE(
      b->Exec("SET deadlock_timeout = '100ms'; BEGIN; UPDATE r SET v = 3 WHERE k = 2", "b").ok());
  absl::StatusOr<pq::Result> a_second;
  std::thread t([&] { a_second = a->Exec("UPDATE r SET v = 4 WHERE k = 2", "a"); });
  absl::SleepFor(absl::Milliseconds(50));
  absl::StatusOr<pq::Result> b_second = b->Exec("UPDATE r SET v = 4 WHERE k = 1", "b");
  t.join();
  // Exactly one of them is the deadlock's victim.
  const bool a_lost = absl::IsAborted(a_second.status());
  const bool b_lost = absl::IsAborted(b_second.status());
  EXPECT_NE(a_lost, b_lost) << a_second.status() << " / " << b_second.status();
  EXPECT_THAT(std::string((a_lost ? a_second : b_second).status().message()), HasSubstr("40P01"));
}

TEST_F(PqTest, UnreachableDatabaseIsUnavailableQuickly) {
  pq::Connection::Options options;
  options.conninfo = "host=/nonexistent-socket-dir port=5432 user=postgres dbname=x";
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<pq::Connection>> conn = pq::Connection::Open(options);
  EXPECT_EQ(conn.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(conn.status().message(), HasSubstr("cannot connect"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));

  // A closed TCP port on loopback: refused at once as well.
  options.conninfo = "host=127.0.0.1 port=1 user=postgres dbname=x";
  EXPECT_EQ(pq::Connection::Open(options).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(PqTest, PoolIsBoundedBySize) {
  pq::ConnectionPool::Options options;
  options.connection.conninfo = conninfo();
  options.size = 2;
  options.acquire_timeout = absl::Milliseconds(200);
  pq::ConnectionPool pool(options);
  absl::StatusOr<pq::ConnectionPool::Lease> one = pool.Acquire();
  absl::StatusOr<pq::ConnectionPool::Lease> two = pool.Acquire();
  ASSERT_TRUE(one.ok() && two.ok());
  const absl::Time start = absl::Now();
  absl::StatusOr<pq::ConnectionPool::Lease> three = pool.Acquire();
  EXPECT_EQ(three.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(three.status().message(), HasSubstr("busy"));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(150));
  // Both connections are distinct server sessions.
  absl::StatusOr<pq::Result> p1 = (*one)->Exec("SELECT pg_backend_pid()", pq::Params(), "pid");
  absl::StatusOr<pq::Result> p2 = (*two)->Exec("SELECT pg_backend_pid()", pq::Params(), "pid");
  ASSERT_TRUE(p1.ok() && p2.ok());
  EXPECT_NE(p1->Int(0, 0), p2->Int(0, 0));
}

TEST_F(PqTest, PoolFailsFastWhileDatabaseIsDownAndRecovers) {
  pq::ConnectionPool::Options options;
  options.connection.conninfo = conninfo();
  options.size = 2;
  pq::ConnectionPool pool(options);
  auto select = [](pq::Connection& c) { return c.Exec("SELECT 1", "selecting").status(); };
  ASSERT_TRUE(pool.With(true, select).ok());
  ASSERT_TRUE(pool.Health().ok());

  ASSERT_TRUE(cluster_->Stop(/*immediate=*/true).ok());
  for (int i = 0; i < 3; ++i) {
    const absl::Time start = absl::Now();
    absl::Status down = pool.With(true, select);
    EXPECT_EQ(down.code(), absl::StatusCode::kUnavailable) << down;
    EXPECT_LT(absl::Now() - start, absl::Milliseconds(500)) << "not fast: " << down;
  }
  EXPECT_EQ(pool.Health().code(), absl::StatusCode::kUnavailable);

  ASSERT_TRUE(cluster_->Restart().ok());
  absl::Status back;
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  do {
    back = pool.With(true, select);
    if (!back.ok()) absl::SleepFor(absl::Milliseconds(100));
  } while (!back.ok() && absl::Now() < deadline);
  EXPECT_TRUE(back.ok()) << back;
  EXPECT_TRUE(pool.Health().ok());
}

// --- Migrations --------------------------------------------------------------------------

TEST_F(PqTest, FreshDatabaseMigratesToTheLatestVersion) {
  std::unique_ptr<pq::Connection> conn = Connect();
  ASSERT_NE(conn, nullptr);
  absl::StatusOr<int> before = postgres::SchemaVersion(*conn);
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(*before, 0);
  std::vector<int> applied;
  ASSERT_TRUE(postgres::Migrate(*conn, true, &applied).ok());
  EXPECT_EQ(applied.size(), postgres::Migrations().size());
  absl::StatusOr<int> after = postgres::SchemaVersion(*conn);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(*after, postgres::LatestSchemaVersion());
  // Up to date: nothing more to apply.
  applied.clear();
  ASSERT_TRUE(postgres::Migrate(*conn, true, &applied).ok());
  EXPECT_TRUE(applied.empty());
  // The tables a DBA looks for are there.
  absl::StatusOr<std::string> tables = cluster_->Psql(
      dbname_,
      "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables "
      "WHERE table_schema = 'public'");
  ASSERT_TRUE(tables.ok()) << tables.status();
  for (const char* t : {"access_events", "checkpoints", "consent_events", "consents", "deliveries",
                        "published", "sequencer", "tree_nodes"}) {
    EXPECT_THAT(*tables, HasSubstr(t));
  }
}

TEST_F(PqTest, ConcurrentMigrationsApplyEachVersionOnce) {
  std::vector<std::thread> threads;
  std::vector<absl::Status> results(4);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      pq::Connection::Options options;
      options.conninfo = conninfo();
      absl::StatusOr<std::unique_ptr<pq::Connection>> conn = pq::Connection::Open(options);
      results[i] = conn.ok() ? postgres::Migrate(**conn, true) : conn.status();
    });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : results) EXPECT_TRUE(s.ok()) << s;
  absl::StatusOr<std::string> rows =
      cluster_->Psql(dbname_, "SELECT count(*) FROM tellonce_schema");
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(std::stoi(*rows), static_cast<int>(postgres::Migrations().size()));
}

TEST_F(PqTest, CheckOnlyRefusesAnOldSchemaAndEveryBuildRefusesANewerOne) {
  std::unique_ptr<pq::Connection> conn = Connect();
  ASSERT_NE(conn, nullptr);
  absl::Status old = postgres::Migrate(*conn, /*apply=*/false);
  EXPECT_EQ(old.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(old.message(), HasSubstr("--migrate"));

  ASSERT_TRUE(postgres::Migrate(*conn, true).ok());
  ASSERT_TRUE(cluster_->Psql(dbname_, "INSERT INTO tellonce_schema VALUES (999, 'future')").ok());
  for (bool apply : {false, true}) {
    absl::Status newer = postgres::Migrate(*conn, apply);
    EXPECT_EQ(newer.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(newer.message(), HasSubstr("newer than this broker knows"));
    EXPECT_THAT(newer.message(), HasSubstr("999"));
  }
}

}  // namespace
}  // namespace tellonce::storage
