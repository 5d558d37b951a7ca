#ifndef TELLONCE_STORAGE_ROCKSDB_DATABASE_H_
#define TELLONCE_STORAGE_ROCKSDB_DATABASE_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rocksdb/db.h"

namespace tellonce::storage::rocks {

// Column families of the broker's one RocksDB database, by purpose.
enum class Family {
  kConsents = 0,  // consent id -> StoredConsent
  kIndexes = 1,   // secondary indexes (by citizen, by citizen+consumer, by request id)
  kAccessLog = 2,  // access events (used by the exchange flow)
  kOutbox = 3,     // notification deliveries
  kMeta = 4,       // schema version and other metadata
};
inline constexpr int kFamilyCount = 5;

// Converts a RocksDB status to the one error type used inside tellonce. The only place
// where that conversion happens.
absl::Status FromRocks(const rocksdb::Status& status);

// The broker's RocksDB database: opened once, with every column family above, bloom
// filters and a bounded block cache. Thread-safe (RocksDB is); closes cleanly (flushes
// nothing unsynced that was acknowledged, since acknowledged writes are synced) in the
// destructor.
class Database {
 public:
  struct Options {
    // Directory of the database; created when absent.
    std::string path;
    // Block cache capacity in MiB. Default 64.
    size_t block_cache_mb = 64;
    // The environment RocksDB writes through; null: the default (the real file
    // system). Tests pass one that simulates power loss.
    rocksdb::Env* env = nullptr;
  };

  // Opens or creates. Errors name the path (e.g. a lock held by another process:
  // FAILED_PRECONDITION / INTERNAL with RocksDB's reason).
  static absl::StatusOr<std::unique_ptr<Database>> Open(const Options& options);

  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  rocksdb::DB* db() const { return db_.get(); }

  // OK while RocksDB reports no background error (a failed flush or compaction, a full
  // disk); otherwise FAILED_PRECONDITION saying how many. Cheap; thread-safe.
  absl::Status Health() const;
  rocksdb::ColumnFamilyHandle* family(Family f) const { return families_[static_cast<int>(f)]; }

 private:
  Database() = default;
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* families_[kFamilyCount] = {};
};

}  // namespace tellonce::storage::rocks

#endif  // TELLONCE_STORAGE_ROCKSDB_DATABASE_H_
