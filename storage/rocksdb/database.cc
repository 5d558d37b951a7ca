#include "storage/rocksdb/database.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "rocksdb/cache.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/options.h"
#include "rocksdb/slice_transform.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/checkpoint.h"

namespace tellonce::storage::rocks {
namespace {

// Column family names, indexed by Family. kMeta is RocksDB's "default" family, which
// always exists, so a database opened by an older build still has it.
constexpr const char* kFamilyNames[kFamilyCount] = {
    "consents",    // kConsents
    "indexes",     // kIndexes
    "access_log",  // kAccessLog
    "outbox",      // kOutbox
    "default",     // kMeta (rocksdb::kDefaultColumnFamilyName)
};

// Key in kMeta holding the storage schema version as decimal text. Bump kSchemaVersion
// when a stored format changes incompatibly; a build refuses a database written by a
// newer schema rather than misreading it.
constexpr char kSchemaVersionKey[] = "schema_version";
constexpr int64_t kSchemaVersion = 1;

// Prefix extractor for kIndexes: everything up to and including the second NUL, i.e.
// "<tag>\0<first component>\0" ("c\0<citizen>\0", "a\0<citizen>\0", "r\0<portal>\0").
// All scans of the consent store stay within one such prefix and set
// iterate_upper_bound, so prefix bloom filters can skip files without the citizen.
// The name is recorded in SST files: changing the rule requires a new name.
class IndexPrefix final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "tellonce.IndexPrefix.v1"; }

  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice(key.data(), PrefixLength(key));
  }
  bool InDomain(const rocksdb::Slice& key) const override { return PrefixLength(key) > 0; }

 private:
  // Length through the second NUL, or 0 when the key has fewer than two.
  static size_t PrefixLength(const rocksdb::Slice& key) {
    int nuls = 0;
    for (size_t i = 0; i < key.size(); ++i) {
      if (key[i] == '\0' && ++nuls == 2) return i + 1;
    }
    return 0;
  }
};

// Insert hints for the access log family, whose keys arrive in order within each kind:
// events "e" + index, checkpoints "c" + size, tree nodes "n" + level + index. The hint
// (the last insert position per prefix) turns most memtable inserts from a search of
// the whole skip list into a step from the previous key.
class AccessLogHintPrefix final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "tellonce.AccessLogHintPrefix.v1"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice(key.data(), key[0] == 'n' ? 2 : 1);
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return !key.empty() && (key[0] != 'n' || key.size() >= 2);
  }
};

rocksdb::ColumnFamilyOptions FamilyOptions(Family family,
                                           const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions options;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.whole_key_filtering = true;
  // Index and filter blocks live in the block cache too, so block_cache_mb bounds the
  // read-side memory. They are partitioned into small blocks: a whole-file filter of a
  // large SST (megabytes) would not fit a cache shard, would never stay cached, and
  // every lookup would read and checksum it again. The top level and level 0 stay
  // pinned because every read consults them.
  table.cache_index_and_filter_blocks = true;
  table.cache_index_and_filter_blocks_with_high_priority = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  table.pin_top_level_index_and_filter = true;
  table.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
  table.partition_filters = true;
  table.metadata_block_size = 4096;
  if (family == Family::kIndexes) {
    // Access decisions read single entries at random citizens, from a family larger
    // than the block cache, so most lookups miss the cache and read, checksum and
    // decompress a whole data block for one entry. Smaller blocks halve that work per
    // miss (the index grows to about 3 MB per million consents), and LZ4 decompresses
    // faster than the default Snappy at a similar size on disk. Compression is recorded
    // per block, so files written with Snappy and 4 KiB blocks stay readable.
    table.block_size = 2048;
    options.compression = rocksdb::kLZ4Compression;
    options.prefix_extractor = std::make_shared<IndexPrefix>();
    options.memtable_prefix_bloom_size_ratio = 0.05;
    options.memtable_whole_key_filtering = true;
  }
  if (family == Family::kAccessLog) {
    options.memtable_insert_with_hint_prefix_extractor = std::make_shared<AccessLogHintPrefix>();
  }
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return options;
}

absl::Status WithPath(const std::string& path, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(path, ": ", status.message()));
}

absl::Status ErrnoStatus(const std::string& path, const char* what) {
  const int error = errno;
  return absl::Status(absl::ErrnoToStatusCode(error),
                      absl::StrCat(path, ": ", what, ": ", std::strerror(error)));
}

// The data directory holds citizen ids: it is made 0700, and what an earlier build (or
// a copy made with another umask) left open to group or others is closed: folders
// 0700, files 0600.
absl::Status PrivateDirectory(const std::string& path) {
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoStatus(path, "cannot create the data directory");
  }
  auto tighten = [](const std::string& p, mode_t private_mode) -> absl::Status {
    struct stat st;
    if (lstat(p.c_str(), &st) != 0) return ErrnoStatus(p, "cannot examine");
    if (S_ISLNK(st.st_mode) || (st.st_mode & 077) == 0) return absl::OkStatus();
    if (chmod(p.c_str(), private_mode) != 0) return ErrnoStatus(p, "cannot make private");
    return absl::OkStatus();
  };
  if (absl::Status s = tighten(path, 0700); !s.ok()) return s;
  std::error_code error;
  for (std::filesystem::recursive_directory_iterator it(path, error), end; !error && it != end;
       it.increment(error)) {
    const bool folder = it->is_directory(error);
    if (absl::Status s = tighten(it->path().string(), folder ? 0700 : 0600); !s.ok()) return s;
  }
  if (error) return absl::InternalError(absl::StrCat(path, ": ", error.message()));
  return absl::OkStatus();
}

// RocksDB's info log, discarded: a read-only open must not create or rotate LOG files
// in a directory a running broker owns.
class DiscardLogger final : public rocksdb::Logger {
 public:
  using rocksdb::Logger::Logv;
  void Logv(const char*, va_list) override {}
};

// Reads and checks the schema version; writes it when absent and `writable`.
absl::Status CheckSchemaVersion(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* meta,
                                const std::string& path, bool writable);

}  // namespace

absl::Status FromRocks(const rocksdb::Status& status) {
  if (status.ok()) return absl::OkStatus();
  const std::string message = absl::StrCat("rocksdb: ", status.ToString());
  switch (status.code()) {
    case rocksdb::Status::kNotFound:
      return absl::NotFoundError(message);
    case rocksdb::Status::kCorruption:
      return absl::DataLossError(message);
    case rocksdb::Status::kInvalidArgument:
      return absl::InvalidArgumentError(message);
    case rocksdb::Status::kNotSupported:
      return absl::UnimplementedError(message);
    case rocksdb::Status::kBusy:
    case rocksdb::Status::kTryAgain:
    case rocksdb::Status::kTimedOut:
    case rocksdb::Status::kIncomplete:
    case rocksdb::Status::kShutdownInProgress:
      return absl::UnavailableError(message);
    case rocksdb::Status::kAborted:
      return absl::AbortedError(message);
    case rocksdb::Status::kIOError:
      // The LOCK file is held (by another process, or by this one through another
      // Database instance). RocksDB reports it as an IOError naming the lock file.
      if (absl::StrContains(message, "While lock file") ||
          absl::StrContains(message, "lock hold by current process")) {
        return absl::FailedPreconditionError(
            absl::StrCat("data directory is in use by another process (", message, ")"));
      }
      if (status.subcode() == rocksdb::Status::kNoSpace ||
          status.subcode() == rocksdb::Status::kSpaceLimit) {
        return absl::ResourceExhaustedError(message);
      }
      return absl::InternalError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::StatusOr<std::unique_ptr<Database>> Database::Open(const Options& options) {
  if (options.path.empty()) return absl::InvalidArgumentError("storage path: must be set");
  if (absl::Status s = PrivateDirectory(options.path); !s.ok()) return s;

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  if (options.env != nullptr) db_options.env = options.env;
  db_options.bytes_per_sync = 1 << 20;
  // RocksDB's info LOG: at most 5 files of 16 MiB (LOG and LOG.old.*).
  db_options.keep_log_file_num = 5;
  db_options.max_log_file_size = 16 << 20;
  // A family with little traffic (metadata) keeps every later WAL file alive until it
  // is flushed; past this size RocksDB flushes such families, which bounds both disk
  // use and recovery time after a crash.
  db_options.max_total_wal_size = 256 << 20;

  auto cache = rocksdb::NewLRUCache(std::max<size_t>(options.block_cache_mb, 1) << 20);

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (int i = 0; i < kFamilyCount; ++i) {
    descriptors.emplace_back(kFamilyNames[i], FamilyOptions(static_cast<Family>(i), cache));
  }
  descriptors[static_cast<int>(Family::kIndexes)].options.compaction_filter =
      options.index_compaction_filter;
  // Families we do not know (created by a newer build) must be opened too, or RocksDB
  // refuses the database before we can report the schema version.
  std::vector<std::string> existing;
  if (rocksdb::DB::ListColumnFamilies(db_options, options.path, &existing).ok()) {
    for (const std::string& name : existing) {
      bool known = std::any_of(descriptors.begin(), descriptors.begin() + kFamilyCount,
                               [&](const auto& d) { return d.name == name; });
      if (!known) descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
    }
  }

  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status opened = rocksdb::DB::Open(db_options, options.path, descriptors, &handles, &raw);
  if (!opened.ok()) return WithPath(options.path, FromRocks(opened));

  std::unique_ptr<Database> database(new Database());
  database->db_.reset(raw);
  for (int i = 0; i < kFamilyCount; ++i) database->families_[i] = handles[i];
  for (size_t i = kFamilyCount; i < handles.size(); ++i) {
    raw->DestroyColumnFamilyHandle(handles[i]);  // the family stays; we just don't use it
  }

  if (absl::Status s = CheckSchemaVersion(raw, database->family(Family::kMeta), options.path,
                                          /*writable=*/true);
      !s.ok()) {
    return s;
  }
  return database;
}

absl::StatusOr<std::unique_ptr<Database>> Database::OpenReadOnly(const Options& options) {
  if (options.path.empty()) return absl::InvalidArgumentError("storage path: must be set");
  rocksdb::DBOptions db_options;
  db_options.info_log = std::make_shared<DiscardLogger>();
  std::vector<std::string> existing;
  rocksdb::Status listed = rocksdb::DB::ListColumnFamilies(db_options, options.path, &existing);
  if (!listed.ok()) {
    if (!std::filesystem::exists(std::filesystem::path(options.path) / "CURRENT")) {
      return absl::NotFoundError(absl::StrCat(options.path, ": no database here"));
    }
    return WithPath(options.path, FromRocks(listed));
  }
  auto cache = rocksdb::NewLRUCache(std::max<size_t>(options.block_cache_mb, 1) << 20);
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (int i = 0; i < kFamilyCount; ++i) {
    descriptors.emplace_back(kFamilyNames[i], FamilyOptions(static_cast<Family>(i), cache));
  }
  for (const std::string& name : existing) {
    bool known = std::any_of(descriptors.begin(), descriptors.begin() + kFamilyCount,
                             [&](const auto& d) { return d.name == name; });
    if (!known) descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  }
  // A family this build has and the database lacks cannot be opened read-only; such a
  // database was written by an older build, and reads of that family find nothing.
  std::vector<rocksdb::ColumnFamilyDescriptor> present;
  std::vector<int> slot;
  for (size_t i = 0; i < descriptors.size(); ++i) {
    if (std::find(existing.begin(), existing.end(), descriptors[i].name) != existing.end()) {
      present.push_back(descriptors[i]);
      slot.push_back(static_cast<int>(i));
    }
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status opened =
      rocksdb::DB::OpenForReadOnly(db_options, options.path, present, &handles, &raw);
  if (!opened.ok()) return WithPath(options.path, FromRocks(opened));
  std::unique_ptr<Database> database(new Database());
  database->db_.reset(raw);
  for (size_t i = 0; i < handles.size(); ++i) {
    if (slot[i] < kFamilyCount) {
      database->families_[slot[i]] = handles[i];
    } else {
      raw->DestroyColumnFamilyHandle(handles[i]);
    }
  }
  for (int i = 0; i < kFamilyCount; ++i) {
    if (database->families_[i] == nullptr) {
      // Reads through the default family's handle find none of this family's keys
      // only if the key spaces differ; rather than guess, refuse.
      return absl::FailedPreconditionError(absl::StrCat(
          options.path, ": column family ", kFamilyNames[i], " is missing (written by an "
          "older build?); start the broker once to create it"));
    }
  }
  if (absl::Status s = CheckSchemaVersion(raw, database->family(Family::kMeta), options.path,
                                          /*writable=*/false);
      !s.ok()) {
    return s;
  }
  return database;
}

absl::Status Database::Backup(const std::string& dir) const {
  rocksdb::Checkpoint* raw = nullptr;
  rocksdb::Status s = rocksdb::Checkpoint::Create(db_.get(), &raw);
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  // Flushes the memtables first when the WAL holds more than 0 bytes' worth, so that the
  // copy is mostly hard links and replays little.
  if (s.ok()) s = checkpoint->CreateCheckpoint(dir, /*log_size_for_flush=*/0);
  if (!s.ok()) return WithPath(dir, FromRocks(s));
  return absl::OkStatus();
}

namespace {

absl::Status CheckSchemaVersion(rocksdb::DB* raw, rocksdb::ColumnFamilyHandle* meta,
                                const std::string& path, bool writable) {
  std::string version_text;
  rocksdb::Status read = raw->Get(rocksdb::ReadOptions(), meta, kSchemaVersionKey, &version_text);
  if (read.IsNotFound() && !writable) return absl::OkStatus();
  if (read.IsNotFound()) {
    rocksdb::WriteOptions write;
    write.sync = true;
    rocksdb::Status written =
        raw->Put(write, meta, kSchemaVersionKey, absl::StrCat(kSchemaVersion));
    // Flushed at once, so this one write does not pin the first WAL file.
    if (written.ok()) written = raw->Flush(rocksdb::FlushOptions(), meta);
    if (!written.ok()) return WithPath(path, FromRocks(written));
  } else if (!read.ok()) {
    return WithPath(path, FromRocks(read));
  } else {
    int64_t version = 0;
    if (!absl::SimpleAtoi(version_text, &version) || version < 1) {
      return absl::DataLossError(absl::StrCat(path, ": unreadable schema version in metadata"));
    }
    if (version > kSchemaVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, ": schema version ", version,
          " was written by a newer tellonce (this build reads up to ", kSchemaVersion, ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

Database::~Database() {
  if (db_ == nullptr) return;
  for (rocksdb::ColumnFamilyHandle*& handle : families_) {
    if (handle != nullptr) db_->DestroyColumnFamilyHandle(handle);
    handle = nullptr;
  }
  // Acknowledged writes were synced to the WAL; Close only releases files and the lock.
  db_->Close().PermitUncheckedError();
  db_.reset();
}

absl::Status Database::Health() const {
  uint64_t errors = 0;
  if (db_ != nullptr && db_->GetIntProperty("rocksdb.background-errors", &errors) && errors > 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("database: ", errors, " background errors (flush or compaction failed)"));
  }
  return absl::OkStatus();
}

}  // namespace tellonce::storage::rocks
