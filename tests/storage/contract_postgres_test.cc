// The storage contract suite against the PostgreSQL backend: one throwaway cluster for
// the whole run (tests/testing/pg_cluster.h), one fresh database per test.

#include <map>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "storage/postgres/postgres_storage.h"
#include "tests/storage/contract.h"
#include "tests/testing/pg_cluster.h"

namespace tellonce::storage::testing {
namespace {

struct Cluster {
  absl::Mutex mu;
  std::unique_ptr<tellonce::testing::PgCluster> cluster;
  std::map<std::string, std::string> databases;  // store -> database
};

Cluster& Shared() {
  static Cluster* shared = new Cluster();
  return *shared;
}

// Stops the cluster when the test program ends normally (the cluster's watchdog covers
// the other ways to end).
struct StopAtExit {
  ~StopAtExit() {
    absl::MutexLock lock(&Shared().mu);
    Shared().cluster.reset();
  }
} stop_at_exit;

absl::StatusOr<std::unique_ptr<Storage>> OpenPostgres(const std::string& store) {
  std::string conninfo;
  {
    Cluster& c = Shared();
    absl::MutexLock lock(&c.mu);
    if (c.cluster == nullptr) {
      absl::StatusOr<std::unique_ptr<tellonce::testing::PgCluster>> started =
          tellonce::testing::PgCluster::Start({});
      if (!started.ok()) return started.status();
      c.cluster = *std::move(started);
    }
    std::string& db = c.databases[store];
    if (db.empty()) {
      absl::StatusOr<std::string> created = c.cluster->CreateDatabase();
      if (!created.ok()) return created.status();
      db = *created;
    }
    conninfo = c.cluster->ConnInfo(db);
  }
  postgres::PostgresOptions options;
  options.conninfo = conninfo;
  options.pool_size = 4;
  absl::StatusOr<std::unique_ptr<postgres::PostgresStorage>> opened =
      postgres::OpenPostgresStorage(options);
  if (!opened.ok()) return opened.status();
  return std::unique_ptr<Storage>(std::move(*opened));
}

void DropPostgres(const std::string& store) {
  Cluster& c = Shared();
  absl::MutexLock lock(&c.mu);
  auto it = c.databases.find(store);
  if (it == c.databases.end() || c.cluster == nullptr) return;
  (void)c.cluster->Psql("postgres", "DROP DATABASE " + it->second);
  c.databases.erase(it);
}

INSTANTIATE_TEST_SUITE_P(Postgres, StorageContractTest,
                         ::testing::Values(ContractBackend{
                             .name = "postgres", .open = OpenPostgres, .drop = DropPostgres}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace tellonce::storage::testing
