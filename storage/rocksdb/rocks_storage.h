#ifndef TELLONCE_STORAGE_ROCKSDB_ROCKS_STORAGE_H_
#define TELLONCE_STORAGE_ROCKSDB_ROCKS_STORAGE_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ops/metrics.h"
#include "storage/storage.h"

namespace rocksdb {
class Env;
}

namespace tellonce::storage {

// The embedded backend: one RocksDB database in a directory, for one broker process
// (RocksDB's LOCK file keeps a second one out). Column families by purpose, a record
// and its index entries in one WriteBatch, WAL synced before a transaction is
// acknowledged, and group commit: one commit thread runs the work functions one at a
// time, in submission order, and writes each group with one synced WAL write, so a
// read-modify-write needs no other lock. Key layout: storage/rocksdb/layout.h.
//
// Its answers to the single-process contracts of storage.h: access events are numbered
// by the commit thread as their transaction is staged; this process is always the
// sequencer; its dispatcher owns every delivery.
struct RocksStorageOptions {
  // Directory of the database; created (0700) when absent.
  std::string path;
  // Block cache capacity in MiB. Default 64.
  size_t block_cache_mb = 64;
  // Largest number of work functions committed as one group. Default 1024.
  size_t max_group = 1024;
  // Sync the WAL before acknowledging. Default true; false only for bulk loads in
  // benchmarks and tests that say so.
  bool sync = true;
  // How long the commit thread may wait for more work before a write when the previous
  // group had more than one (see CommitQueue::Options::gather). Default 0.
  absl::Duration gather = absl::ZeroDuration();
  // Run completions on a thread of their own (see CommitQueue::Options). Default false.
  bool completion_thread = false;
  // Metrics, when not null (not owned; must outlive the storage).
  ops::Histogram* group_operations = nullptr;
  ops::Histogram* write_seconds = nullptr;
  // The environment RocksDB writes through; null: the real file system. Tests pass one
  // that simulates power loss.
  rocksdb::Env* env = nullptr;
};

// Opens or creates. Errors name the path (a lock held by another process:
// FAILED_PRECONDITION; a schema written by a newer build: FAILED_PRECONDITION).
absl::StatusOr<std::unique_ptr<Storage>> OpenRocksStorage(const RocksStorageOptions& options);

// Opens an existing data directory for reading only, as `tellonce-broker --check` does
// beside a running broker: no lock is taken and nothing in the directory is written
// (Database::OpenReadOnly). The view is the state at open. Every Submit completes with
// UNAVAILABLE. NOT_FOUND when there is no database at `path`.
absl::StatusOr<std::unique_ptr<Storage>> OpenRocksStorageReadOnly(const std::string& path);

// Reads the access log of a copy of a RocksDB data directory for an offline audit,
// opened read-only (nothing is written to it, not even RocksDB's info log). Errors name
// the path: NOT_FOUND when it is not a broker data directory, DATA_LOSS for unreadable
// records.
absl::StatusOr<StoredLog> ReadRocksLogCopy(const std::string& path);

}  // namespace tellonce::storage

#endif  // TELLONCE_STORAGE_ROCKSDB_ROCKS_STORAGE_H_
