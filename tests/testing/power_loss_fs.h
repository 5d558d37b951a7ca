#ifndef TELLONCE_TESTS_TESTING_POWER_LOSS_FS_H_
#define TELLONCE_TESTS_TESTING_POWER_LOSS_FS_H_

// A RocksDB file system (public API: rocksdb::FileSystemWrapper over the default one)
// that simulates a power cut, as RocksDB's own crash tests do with their test-only
// FaultInjectionTestFS, which Debian's librocksdb-dev does not ship.
//
// While the power is on it passes everything through to the real files and remembers,
// per file written through it, how many bytes were synced (Sync/Fsync; RangeSync only
// starts write-back and counts for nothing), and which directory entries are new since
// their directory was last fsynced: files created, and renames. PowerCut() turns the
// power off: from then on every write, sync, create, rename and delete fails (the
// process is as good as dead, so nothing more becomes durable, and a write that was
// waiting for its sync is never acknowledged). Once the database is closed,
// RestoreDurableState() leaves on disk what a disk would hold after the cut:
//   - renames whose directory was not fsynced since are undone (the target gets back
//     the content it had, the source reappears);
//   - files created since their directory's last fsync are gone;
//   - every other file is cut back to its last synced length; with torn tails on, a
//     random part of the unsynced tail survives instead (the kernel may have written some
//     pages back), cut at an arbitrary byte.
// Then the power is on again and the same database can be reopened.
//
// Not modelled: deletions are final at once (a real disk may bring back a file whose
// deletion was not fsynced; RocksDB only deletes obsolete files); a synced file's data
// survives even when its directory entry's creation was synced after it; directories
// themselves are created durably; reads see the page cache, as they would.
//
// Thread-safe.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "rocksdb/env.h"
#include "rocksdb/file_system.h"

namespace tellonce::testing {

class PowerLossFileSystem : public rocksdb::FileSystemWrapper {
 public:
  explicit PowerLossFileSystem(uint64_t seed)
      : rocksdb::FileSystemWrapper(rocksdb::FileSystem::Default()), rng_(seed) {}

  static const char* kClassName() { return "PowerLossFileSystem"; }
  const char* Name() const override { return kClassName(); }

  // Keep a random part of each file's unsynced tail at RestoreDurableState. Default off.
  void set_torn_tails(bool on) {
    std::lock_guard<std::mutex> lock(mu_);
    torn_tails_ = on;
  }

  // Turns the power off (see the class comment).
  void PowerCut() {
    std::lock_guard<std::mutex> lock(mu_);
    power_on_ = false;
  }
  // Turns the power off just before the n-th write, sync, create, rename or delete from
  // now on (1: the next one), which then fails: between a write and its sync, between
  // a file's sync and its directory's, wherever that operation falls.
  void PowerCutAtOperation(uint64_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    cut_at_ = operations_ + n;
  }
  // Writes, syncs, creates, renames and deletes seen so far.
  uint64_t operations() const {
    std::lock_guard<std::mutex> lock(mu_);
    return operations_;
  }
  bool power_on() const {
    std::lock_guard<std::mutex> lock(mu_);
    return power_on_;
  }

  struct Restored {
    int truncated = 0;       // files cut back to their synced length (or a torn tail)
    int removed = 0;         // files whose creation was not durable
    int renames_undone = 0;  // renames whose directory was not fsynced
    uint64_t bytes_dropped = 0;
    int tracked = 0;  // files written through this file system since the last restore
  };
  // Leaves on disk what survives the cut; turns the power on again. Call only with no
  // database open on this file system.
  Restored RestoreDurableState() {
    std::lock_guard<std::mutex> lock(mu_);
    Restored r;
    r.tracked = static_cast<int>(files_.size());
    for (auto it = pending_renames_.rbegin(); it != pending_renames_.rend(); ++it) {
      std::error_code ec;
      std::filesystem::rename(it->target, it->source, ec);
      auto moved = files_.find(it->target);
      if (moved != files_.end()) {
        files_[it->source] = moved->second;
        files_[it->source].new_in_dir = it->source_was_new;
        files_.erase(moved);
      }
      if (it->old_target.has_value()) {
        std::ofstream(it->target, std::ios::binary | std::ios::trunc) << *it->old_target;
        files_[it->target] = {it->old_target->size(), it->old_target->size(), false};
      }
      ++r.renames_undone;
    }
    pending_renames_.clear();
    for (const auto& [path, state] : files_) {
      std::error_code ec;
      const uint64_t size = std::filesystem::file_size(path, ec);
      if (ec) continue;  // deleted meanwhile
      if (state.new_in_dir) {
        std::filesystem::remove(path, ec);
        ++r.removed;
        r.bytes_dropped += size;
        continue;
      }
      uint64_t keep = std::min(state.synced, size);
      if (torn_tails_ && size > keep) {
        keep += std::uniform_int_distribution<uint64_t>(0, size - keep)(rng_);
      }
      if (keep < size) {
        std::filesystem::resize_file(path, keep, ec);
        ++r.truncated;
        r.bytes_dropped += size - keep;
      }
    }
    files_.clear();
    power_on_ = true;
    cut_at_ = 0;
    return r;
  }

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!Tick()) return Off();
    const bool existed = std::filesystem::exists(f);
    rocksdb::IOStatus s = target()->NewWritableFile(f, options, result, dbg);
    if (!s.ok()) return s;
    // An existing file is truncated; its directory entry was durable already.
    FileState& state = files_[f];
    state = {0, 0, !existed || IsNew(f)};
    *result = std::make_unique<File>(this, f, 0, std::move(*result));
    return s;
  }

  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& options,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!Tick()) return Off();
    rocksdb::IOStatus s = target()->ReopenWritableFile(f, options, result, dbg);
    if (!s.ok()) return s;
    if (files_.find(f) == files_.end()) files_[f] = Tracked(f);
    std::error_code ec;
    const uint64_t size = std::filesystem::file_size(f, ec);
    *result = std::make_unique<File>(this, f, size, std::move(*result));
    return s;
  }

  rocksdb::IOStatus ReuseWritableFile(const std::string& f, const std::string& old,
                                      const rocksdb::FileOptions& options,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override {
    return rocksdb::IOStatus::NotSupported("PowerLossFileSystem: no file reuse");
  }

  rocksdb::IOStatus NewRandomRWFile(const std::string& f, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSRandomRWFile>* result,
                                    rocksdb::IODebugContext* dbg) override {
    return rocksdb::IOStatus::NotSupported("PowerLossFileSystem: no random-write files");
  }

  rocksdb::IOStatus NewDirectory(const std::string& name, const rocksdb::IOOptions& options,
                                 std::unique_ptr<rocksdb::FSDirectory>* result,
                                 rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->NewDirectory(name, options, result, dbg);
    if (!s.ok()) return s;
    *result = std::make_unique<Directory>(this, Normalize(name), std::move(*result));
    return s;
  }

  rocksdb::IOStatus RenameFile(const std::string& source, const std::string& target_path,
                               const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!Tick()) return Off();
    PendingRename pending;
    pending.source = source;
    pending.target = target_path;
    pending.source_was_new = IsNew(source);
    if (std::filesystem::exists(target_path)) pending.old_target = DurableContent(target_path);
    rocksdb::IOStatus s = target()->RenameFile(source, target_path, options, dbg);
    if (!s.ok()) return s;
    FileState moved = Tracked(source);
    files_.erase(source);
    moved.new_in_dir = true;  // the new name is durable once its directory is fsynced
    files_[target_path] = moved;
    pending_renames_.push_back(std::move(pending));
    return s;
  }

  rocksdb::IOStatus DeleteFile(const std::string& f, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!Tick()) return Off();
    rocksdb::IOStatus s = target()->DeleteFile(f, options, dbg);
    if (!s.ok()) return s;
    files_.erase(f);
    // Final at once (see the class comment): renames into it are no longer undone.
    pending_renames_.erase(
        std::remove_if(pending_renames_.begin(), pending_renames_.end(),
                       [&](const PendingRename& p) { return p.target == f || p.source == f; }),
        pending_renames_.end());
    return s;
  }

  rocksdb::IOStatus Truncate(const std::string& f, size_t size, const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!Tick()) return Off();
    rocksdb::IOStatus s = target()->Truncate(f, size, options, dbg);
    if (s.ok()) {
      auto it = files_.find(f);
      if (it != files_.end()) {
        it->second.written = size;
        it->second.synced = std::min<uint64_t>(it->second.synced, size);
      }
    }
    return s;
  }

  rocksdb::IOStatus LinkFile(const std::string& source, const std::string& target_path,
                             const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
    return rocksdb::IOStatus::NotSupported("PowerLossFileSystem: no hard links");
  }

 private:
  struct FileState {
    uint64_t written = 0;  // bytes appended (what the page cache holds)
    uint64_t synced = 0;   // bytes durable
    bool new_in_dir = false;
  };
  struct PendingRename {
    std::string source;
    std::string target;
    bool source_was_new = false;
    // The target's durable content before the rename, when it existed.
    std::optional<std::string> old_target;
  };

  static rocksdb::IOStatus Off() { return rocksdb::IOStatus::IOError("power is off"); }

  // Counts one mutating operation; false when the power is (now) off. Under mu_.
  bool Tick() {
    if (!power_on_) return false;
    if (++operations_ == cut_at_) power_on_ = false;
    return power_on_;
  }

  static std::string Normalize(std::string path) {
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    return path;
  }
  static std::string Parent(const std::string& path) {
    const size_t slash = path.rfind('/');
    return slash == std::string::npos ? "." : Normalize(path.substr(0, slash));
  }

  bool IsNew(const std::string& f) const {
    auto it = files_.find(f);
    return it != files_.end() && it->second.new_in_dir;
  }
  // The state of `f`; a file not written through here is durable as it is.
  FileState Tracked(const std::string& f) const {
    auto it = files_.find(f);
    if (it != files_.end()) return it->second;
    std::error_code ec;
    const uint64_t size = std::filesystem::file_size(f, ec);
    return {size, size, false};
  }
  std::string DurableContent(const std::string& f) const {
    std::ifstream in(f, std::ios::binary);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const FileState state = Tracked(f);
    if (state.synced < content.size()) content.resize(state.synced);
    return content;
  }

  // Appends and syncs of one file.
  // After a write that was let through (CheckOn): the bytes are in the page cache.
  rocksdb::IOStatus Appended(const std::string& f, uint64_t end) {
    std::lock_guard<std::mutex> lock(mu_);
    FileState& state = files_[f];
    state.written = std::max(state.written, end);
    return rocksdb::IOStatus::OK();
  }
  // Before a file's write or sync, or a directory's fsync: counts it.
  rocksdb::IOStatus CheckOn() {
    std::lock_guard<std::mutex> lock(mu_);
    return Tick() ? rocksdb::IOStatus::OK() : Off();
  }
  uint64_t Written(const std::string& f) {
    std::lock_guard<std::mutex> lock(mu_);
    return files_[f].written;
  }
  // `upto`: what was written when the sync began (later appends are not covered).
  // Recorded even when the power went off meanwhile: a sync that returned OK is durable
  // (its caller may already have acknowledged what it covers).
  void Synced(const std::string& f, uint64_t upto) {
    std::lock_guard<std::mutex> lock(mu_);
    FileState& state = files_[f];
    state.synced = std::max(state.synced, upto);
  }
  void DirectorySynced(const std::string& dir) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [path, state] : files_) {
      if (Parent(path) == dir) state.new_in_dir = false;
    }
    pending_renames_.erase(
        std::remove_if(pending_renames_.begin(), pending_renames_.end(),
                       [&](const PendingRename& p) { return Parent(p.target) == dir; }),
        pending_renames_.end());
  }

  class File : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(PowerLossFileSystem* fs, std::string path, uint64_t size,
         std::unique_ptr<rocksdb::FSWritableFile> f)
        : rocksdb::FSWritableFileOwnerWrapper(std::move(f)),
          fs_(fs),
          path_(std::move(path)),
          end_(size) {}

    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
      if (auto s = fs_->CheckOn(); !s.ok()) return s;
      rocksdb::IOStatus s = target()->Append(data, options, dbg);
      if (s.ok()) s = fs_->Appended(path_, (end_ += data.size()));
      return s;
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                             const rocksdb::DataVerificationInfo& info,
                             rocksdb::IODebugContext* dbg) override {
      if (auto s = fs_->CheckOn(); !s.ok()) return s;
      rocksdb::IOStatus s = target()->Append(data, options, info, dbg);
      if (s.ok()) s = fs_->Appended(path_, (end_ += data.size()));
      return s;
    }
    rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                       const rocksdb::IOOptions& options,
                                       rocksdb::IODebugContext* dbg) override {
      if (auto s = fs_->CheckOn(); !s.ok()) return s;
      rocksdb::IOStatus s = target()->PositionedAppend(data, offset, options, dbg);
      end_ = std::max<uint64_t>(end_, offset + data.size());
      if (s.ok()) s = fs_->Appended(path_, end_);
      return s;
    }
    rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                       const rocksdb::IOOptions& options,
                                       const rocksdb::DataVerificationInfo& info,
                                       rocksdb::IODebugContext* dbg) override {
      if (auto s = fs_->CheckOn(); !s.ok()) return s;
      rocksdb::IOStatus s = target()->PositionedAppend(data, offset, options, info, dbg);
      end_ = std::max<uint64_t>(end_, offset + data.size());
      if (s.ok()) s = fs_->Appended(path_, end_);
      return s;
    }
    rocksdb::IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override {
      if (auto s = fs_->CheckOn(); !s.ok()) return s;
      return target()->Truncate(size, options, dbg);
    }
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
      if (auto s = fs_->CheckOn(); !s.ok()) return s;
      const uint64_t upto = fs_->Written(path_);
      rocksdb::IOStatus s = target()->Sync(options, dbg);
      if (s.ok()) fs_->Synced(path_, upto);
      return s;
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                            rocksdb::IODebugContext* dbg) override {
      if (auto s = fs_->CheckOn(); !s.ok()) return s;
      const uint64_t upto = fs_->Written(path_);
      rocksdb::IOStatus s = target()->Fsync(options, dbg);
      if (s.ok()) fs_->Synced(path_, upto);
      return s;
    }
    rocksdb::IOStatus Flush(const rocksdb::IOOptions& options,
                            rocksdb::IODebugContext* dbg) override {
      if (auto s = fs_->CheckOn(); !s.ok()) return s;
      return target()->Flush(options, dbg);
    }
    rocksdb::IOStatus RangeSync(uint64_t offset, uint64_t nbytes, const rocksdb::IOOptions& options,
                                rocksdb::IODebugContext* dbg) override {
      // Starts write-back only: not a durability point.
      if (auto s = fs_->CheckOn(); !s.ok()) return s;
      return target()->RangeSync(offset, nbytes, options, dbg);
    }
    rocksdb::IOStatus Close(const rocksdb::IOOptions& options,
                            rocksdb::IODebugContext* dbg) override {
      // Closing makes nothing durable; it must still release the descriptor.
      return target()->Close(options, dbg);
    }

   private:
    PowerLossFileSystem* fs_;
    std::string path_;
    uint64_t end_;
  };

  class Directory : public rocksdb::FSDirectoryWrapper {
   public:
    Directory(PowerLossFileSystem* fs, std::string path, std::unique_ptr<rocksdb::FSDirectory> d)
        : rocksdb::FSDirectoryWrapper(std::move(d)), fs_(fs), path_(std::move(path)) {}
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                            rocksdb::IODebugContext* dbg) override {
      if (auto s = fs_->CheckOn(); !s.ok()) return s;
      rocksdb::IOStatus s = FSDirectoryWrapper::Fsync(options, dbg);
      if (s.ok()) fs_->DirectorySynced(path_);
      return s;
    }
    rocksdb::IOStatus FsyncWithDirOptions(const rocksdb::IOOptions& options,
                                          rocksdb::IODebugContext* dbg,
                                          const rocksdb::DirFsyncOptions& dir_options) override {
      if (auto s = fs_->CheckOn(); !s.ok()) return s;
      rocksdb::IOStatus s = FSDirectoryWrapper::FsyncWithDirOptions(options, dbg, dir_options);
      if (s.ok()) fs_->DirectorySynced(path_);
      return s;
    }

   private:
    PowerLossFileSystem* fs_;
    std::string path_;
  };

  mutable std::mutex mu_;
  bool power_on_ = true;
  uint64_t operations_ = 0;
  uint64_t cut_at_ = 0;  // 0: no cut planned
  bool torn_tails_ = false;
  std::mt19937_64 rng_;
  std::map<std::string, FileState> files_;
  std::vector<PendingRename> pending_renames_;
};

}  // namespace tellonce::testing

#endif  // TELLONCE_TESTS_TESTING_POWER_LOSS_FS_H_
