#ifndef TELLONCE_CONNECTORS_RECORDS_SOURCE_H_
#define TELLONCE_CONNECTORS_RECORDS_SOURCE_H_

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "connectors/sdk.h"
#include "google/protobuf/timestamp.pb.h"
#include "tellonce/v1/agency_records.pb.h"
#include "tellonce/v1/directory.pb.h"

namespace tellonce::connectors {

// An attribute an agency is authoritative for, with the catalogue type its values have.
struct HeldAttribute {
  std::string name;
  tellonce::v1::AttributeType type = tellonce::v1::ATTRIBUTE_TYPE_UNSPECIFIED;
};

// Design: an AttributeSource over a text-format tellonce.v1.AgencyRecords file, read and
// checked once by Load and indexed by citizen id. What the example agencies serve, and
// a starting point for an agency that exports its data to a file. Immutable after Load,
// so Fetch is thread-safe without a lock; a changed file needs a new Load (which
// LiveRecordsFileSource does by itself).
class RecordsFileSource final : public AttributeSource {
 public:
  // Loads `path`, answering for the `held` attributes only. Every record needs a
  // citizen_id (non-empty printable ASCII, at most kMaxCitizenIdBytes, unique in the
  // file) and may hold only `held` attributes, each with its type's value member in
  // valid form (DECIMAL "-?[0-9]+(.[0-9]+)?", DATE an existing "YYYY-MM-DD").
  // Errors: INVALID_ARGUMENT "<path>:<line>:<column>: <reason>" for syntax and
  // "<path>:<line>: records[<i>].<field>: <reason>" for content (line of the record);
  // NOT_FOUND and friends, naming the path, when it cannot be read; INVALID_ARGUMENT
  // "held[<i>]: ..." for a held attribute without name or type, or listed twice.
  static absl::StatusOr<std::unique_ptr<RecordsFileSource>> Load(const std::string& path,
                                                                 std::vector<HeldAttribute> held);

  // NOT_FOUND ("no record of this citizen") when the file has no record for
  // ctx.citizen_id. Otherwise one entry per asked attribute, in the order asked: the
  // value, or not_found when the agency does not hold the attribute or the citizen's
  // record has no value for it. as_of is the record's, else the time the file was
  // loaded. Thread-safe.
  absl::StatusOr<tellonce::v1::FetchAttributesResponse> Fetch(const FetchContext& ctx) override;

  // How many citizens the file holds.
  size_t size() const { return records_.size(); }
  const std::vector<HeldAttribute>& held() const { return held_; }

 private:
  RecordsFileSource() = default;

  std::vector<HeldAttribute> held_;
  absl::flat_hash_map<std::string, tellonce::v1::AttributeType> held_types_;
  absl::flat_hash_map<std::string, tellonce::v1::CitizenRecord> records_;
  google::protobuf::Timestamp loaded_at_;
};

// Design: an AttributeSource over a records file that follows the file while serving,
// so an agency's own tools can change its data without a restart (tellonce-registry's
// `move` command does). Before each fetch it compares the file's identity (device,
// inode, size, modification time: one stat call) with that of the version it serves;
// when they differ it loads the file again with RecordsFileSource::Load and serves the
// new version from then on. A file that no longer loads (or has vanished) is reported
// once and the previous version is kept, so a half-edited file never takes the agency
// off the air. Writers should replace the file atomically (write a temporary file, then
// rename it over), as WriteFileAtomically does. Thread-safe: fetches run concurrently;
// the one that notices a change reloads while the others wait for it.
class LiveRecordsFileSource final : public AttributeSource {
 public:
  // Told of every reload attempt: OK with the number of citizens now served, or why the
  // changed file was not taken (the previous version is kept). Called on a fetch thread,
  // not concurrently with itself.
  using ReloadObserver = std::function<void(const absl::Status& status, size_t citizens)>;

  // Loads `path` like RecordsFileSource::Load, with its errors. `on_reload` may be null.
  static absl::StatusOr<std::unique_ptr<LiveRecordsFileSource>> Load(
      const std::string& path, std::vector<HeldAttribute> held, ReloadObserver on_reload = {});

  // Reloads first when the file changed (see above), then answers like
  // RecordsFileSource::Fetch from the version now served. Thread-safe.
  absl::StatusOr<tellonce::v1::FetchAttributesResponse> Fetch(const FetchContext& ctx) override
      ABSL_LOCKS_EXCLUDED(mu_);

  // How many citizens the version now served holds (without checking the file).
  size_t size() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct FileIdentity {
    dev_t device = 0;
    ino_t inode = 0;
    off_t size = -1;
    int64_t mtime_ns = -1;
    bool operator==(const FileIdentity&) const = default;
  };
  static absl::StatusOr<FileIdentity> Identify(const std::string& path);

  LiveRecordsFileSource(std::string path, std::vector<HeldAttribute> held, ReloadObserver on_reload)
      : path_(std::move(path)), held_(std::move(held)), on_reload_(std::move(on_reload)) {}

  // The version to serve, reloaded first when the file changed.
  std::shared_ptr<RecordsFileSource> Current() ABSL_LOCKS_EXCLUDED(mu_);

  const std::string path_;
  const std::vector<HeldAttribute> held_;
  const ReloadObserver on_reload_;

  absl::Mutex mu_;
  std::shared_ptr<RecordsFileSource> current_ ABSL_GUARDED_BY(mu_);
  // The identity last looked at (loaded, or refused), so a bad file is tried once.
  FileIdentity tried_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tellonce::connectors

#endif  // TELLONCE_CONNECTORS_RECORDS_SOURCE_H_
