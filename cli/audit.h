#ifndef TELLONCE_CLI_AUDIT_H_
#define TELLONCE_CLI_AUDIT_H_

// Design: offline audit of the broker's access log. A copy of the log (the broker's
// data directory, or a file written by `tellonce audit export`) is read into a
// LogCopy; VerifyLog then checks it against one checkpoint the broker signed, using
// nothing but RFC 6962 hashing. The checks do not trust anything the copy says about
// itself: the stored leaf hashes count only when they reproduce the signed root, and
// the other checkpoints in the copy count only when their signatures verify.
//
// Everything here works without a network connection; `VerifyLog` works on memory
// only, so it can be tested with synthetic logs.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "certs/merkle.h"
#include "certs/signing.h"
#include "storage/storage.h"
#include "tellonce/v1/transparency.pb.h"

namespace tellonce::cli {

// "tellonce-access-log-v1", AccessLogExportHeader.format.
inline constexpr char kExportFormat[] = "tellonce-access-log-v1";

// A (size, root) pair the broker signed.
struct TreeHead {
  uint64_t size = 0;
  certs::Hash root{};
};

// One stored event of a log copy.
// A copy of the access log as found on disk or in an export file: the storage layer's
// own vocabulary (storage/storage.h), so a data directory is read by the code that
// wrote it. Events are in increasing index order (a damaged copy may have gaps);
// subtrees in any order, level 0 being the leaf hash of one event, kept apart from the
// events as the broker stores them (an event may be gone while its leaf hash is not; a
// data directory has every level, an export file only the leaves, and events appended
// after the broker's last tree update have none yet); checkpoints as stored, their
// signatures not yet checked; claimed_size from the metadata or the export header.
using StoredEvent = storage::StoredLog::Event;
using StoredSubtree = storage::StoredLog::Subtree;
using LogCopy = storage::StoredLog;

// What VerifyLog found.
struct LogVerdict {
  bool ok = false;
  // The checkpoint's size (the events verified, when ok).
  uint64_t tree_size = 0;
  // When !ok: the first index known to be bad, or, when only a range is known,
  // [bad_from, bad_to) with first_bad unset.
  std::optional<uint64_t> first_bad;
  uint64_t bad_from = 0;
  uint64_t bad_to = 0;
  // When !ok: why, in words.
  std::string reason;
  // Events in the copy after the checkpoint's size (not covered by it).
  uint64_t uncovered = 0;

  // "OK: N events verified against checkpoint of size S", or
  // "FAILED: first bad index K: <reason>" (with a range when only that is known).
  std::string Summary() const;
};

// Checks `log` against `checkpoint`:
//  - the events are numbered 0, 1, ... without a gap up to at least checkpoint.size;
//  - with E[i] the leaf hash of event i's bytes and L[i] its stored leaf hash: if
//    MTH(L[0..size)) is the signed root, the stored hashes are authentic and the first
//    i with E[i] != L[i] (or a missing event) is the first bad index; the stored
//    interior subtrees inside the checkpoint must match the leaves too;
//  - otherwise, if MTH(E[0..size)) is the signed root, the events are intact but the
//    stored tree is damaged: failure, naming the first i with E[i] != L[i];
//  - otherwise the first i with E[i] != L[i] if any; else the range between the last
//    of `other_checkpoints` the events still match and the first they do not.
// `other_checkpoints` must already be signature-checked. Pure; thread-compatible.
LogVerdict VerifyLog(const LogCopy& log, const TreeHead& checkpoint,
                     const std::vector<TreeHead>& other_checkpoints);

// Verifies `signed_checkpoint`'s signature with the key of `keys` its key_id names
// (as certs::SignedKind::kCheckpoint), that it was issued by
// `issuer` (the broker's SPIFFE id) and is well formed; returns the parsed body.
// UNAUTHENTICATED when the signature does not verify, INVALID_ARGUMENT when it is
// malformed or issued by someone else.
absl::StatusOr<tellonce::v1::Checkpoint> VerifyCheckpoint(
    const tellonce::v1::SignedCheckpoint& signed_checkpoint, const certs::VerifyingKeySet& keys,
    const std::string& issuer);
// The TreeHead of a parsed checkpoint; INVALID_ARGUMENT when the root is not 32 bytes.
absl::StatusOr<TreeHead> ToTreeHead(const tellonce::v1::Checkpoint& checkpoint);

// Reads a copy of the broker's data directory (RocksDB, opened read-only; nothing is
// written to it). Errors name the path; DATA_LOSS for unreadable records.
absl::StatusOr<LogCopy> ReadDataDirectory(const std::string& path);

// Export files: an AccessLogExportHeader, then one ExportedEvent per event, each in
// protobuf delimited form (varint length, message). The header's log_size is the
// number of events in the file. Written through ExportWriter, read back whole with
// ReadExportFile.
class ExportWriter {
 public:
  // Starts an export to `path`. Events are staged in "<path>.partial" until Finish,
  // so the header can say what the file holds.
  static absl::StatusOr<ExportWriter> Create(const std::string& path);
  ExportWriter(ExportWriter&&) noexcept;
  ExportWriter& operator=(ExportWriter&&) noexcept;
  // Removes the staging file when Finish was not reached.
  ~ExportWriter();

  absl::Status Add(const tellonce::v1::ExportedEvent& event);
  uint64_t count() const;
  // Writes `path`: `header` (format and log_size filled in here) and the events added.
  // The file is complete only when this returns OK.
  absl::Status Finish(tellonce::v1::AccessLogExportHeader header);

 private:
  struct Impl;
  explicit ExportWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Writes `log` as an export file (ExportWriter with a header from the copy).
absl::Status WriteExportFile(const std::string& path, const LogCopy& log);
// Reads an export file. INVALID_ARGUMENT when it is not one (wrong format string,
// truncated or unparsable record), naming the path and the record.
absl::StatusOr<LogCopy> ReadExportFile(const std::string& path);

}  // namespace tellonce::cli

#endif  // TELLONCE_CLI_AUDIT_H_
