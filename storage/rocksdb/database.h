#ifndef TELLONCE_STORAGE_ROCKSDB_DATABASE_H_
#define TELLONCE_STORAGE_ROCKSDB_DATABASE_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rocksdb/compaction_filter.h"
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
    // Applied to the indexes family at compaction (not owned; must outlive the
    // database; thread-safe). Null: none.
    const rocksdb::CompactionFilter* index_compaction_filter = nullptr;
  };

  // Opens or creates. The directory is created with mode 0700; an existing one that
  // group or others may enter is set to 0700, and its files to 0600 (the database holds
  // citizen ids). Files RocksDB creates later get the process's umask (the broker runs
  // with 077). Errors name the path (e.g. a lock held by another process:
  // FAILED_PRECONDITION / INTERNAL with RocksDB's reason).
  static absl::StatusOr<std::unique_ptr<Database>> Open(const Options& options);

  // Opens an existing database for reading only, as `tellonce-broker --check` does on a
  // live system: no lock is taken and nothing in the directory is written (RocksDB's
  // info LOG is not opened; the WAL is replayed in memory only). Checks the schema
  // version like Open. NOT_FOUND when there is no database at the path. The view is the
  // state at open; writes made afterwards by a running broker are not seen. A running
  // broker deleting files during the open can make it fail (then UNAVAILABLE / INTERNAL:
  // try again).
  static absl::StatusOr<std::unique_ptr<Database>> OpenReadOnly(const Options& options);

  // Writes a consistent copy of the database, as of one moment, into `dir`, which must
  // not exist (its parent must): a RocksDB checkpoint, i.e. hard links of the immutable
  // table files where `dir` is on the same file system (copies otherwise) plus copies
  // of the manifest and the write-ahead log. Safe while writes go on: they are neither
  // blocked nor in the copy once it has started. The copy opens with Open as a
  // database of its own. Errors name `dir`. Thread-safe.
  absl::Status Backup(const std::string& dir) const;

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
