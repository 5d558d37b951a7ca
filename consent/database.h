#ifndef TELLONCE_CONSENT_DATABASE_H_
#define TELLONCE_CONSENT_DATABASE_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rocksdb/db.h"

namespace tellonce::consent {

// Column families of the broker's one RocksDB database, by purpose.
enum class Family {
  kConsents = 0,  // consent id -> StoredConsent
  kIndexes = 1,   // secondary indexes (by citizen, by citizen+consumer, by request id)
  kAccessLog = 2,  // access events (used by the exchange flow)
  kOutbox = 3,     // notification deliveries
  kMeta = 4,       // schema version and other metadata
};
inline constexpr int kFamilyCount = 5;

// The smallest key greater than every key that starts with `prefix`, for
// ReadOptions::iterate_upper_bound. `prefix` must be non-empty and must not end in 0xff
// (every prefix in the broker's key layouts ends in NUL or a letter).
std::string PrefixEnd(std::string prefix);

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
    // The environment (file system) RocksDB uses; not owned, must outlive the database.
    // Null (default): RocksDB's default. Tests pass one that simulates power loss.
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

}  // namespace tellonce::consent

#endif  // TELLONCE_CONSENT_DATABASE_H_
