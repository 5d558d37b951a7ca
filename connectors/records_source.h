#ifndef TELLONCE_CONNECTORS_RECORDS_SOURCE_H_
#define TELLONCE_CONNECTORS_RECORDS_SOURCE_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
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
// so Fetch is thread-safe without a lock; a changed file needs a restart.
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

}  // namespace tellonce::connectors

#endif  // TELLONCE_CONNECTORS_RECORDS_SOURCE_H_
