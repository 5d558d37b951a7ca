#include "connectors/records_source.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "google/protobuf/text_format.h"
#include "proto/attribute_value.h"
#include "proto/identifiers.h"
#include "proto/textproto.h"
#include "proto/time.h"

namespace tellonce::connectors {
namespace {

using ::tellonce::v1::AgencyRecords;
using ::tellonce::v1::AttributeType;
using ::tellonce::v1::AttributeValue;
using ::tellonce::v1::CitizenRecord;

// 1-based line of records[index] in `text`, or 0 when unknown. Only called on the error
// path, so the file is parsed a second time with positions rather than every time.
int RecordLine(const std::string& text, int index) {
  AgencyRecords ignored;
  google::protobuf::TextFormat::ParseInfoTree tree;
  google::protobuf::TextFormat::Parser parser;
  parser.WriteLocationsTo(&tree);
  if (!parser.ParseFromString(text, &ignored)) return 0;
  const google::protobuf::FieldDescriptor* records =
      AgencyRecords::descriptor()->FindFieldByName("records");
  const google::protobuf::TextFormat::ParseLocation at = tree.GetLocation(records, index);
  return at.line < 0 ? 0 : at.line + 1;
}

// OK, or the reason record `r` cannot be served (without the file position).
absl::Status CheckRecord(const CitizenRecord& r, int index,
                         const absl::flat_hash_map<std::string, AttributeType>& held,
                         const absl::flat_hash_map<std::string, int>& seen) {
  const std::string at = absl::StrCat("records[", index, "]");
  auto invalid = [&](absl::string_view field, absl::string_view reason) {
    return absl::InvalidArgumentError(absl::StrCat(at, ".", field, ": ", reason));
  };
  if (r.citizen_id().empty()) return invalid("citizen_id", "required");
  if (r.citizen_id().size() > kMaxCitizenIdBytes) {
    return invalid("citizen_id", absl::StrCat("longer than ", kMaxCitizenIdBytes, " bytes"));
  }
  if (!IsPrintableAscii(r.citizen_id())) return invalid("citizen_id", "must be printable ASCII");
  if (auto it = seen.find(r.citizen_id()); it != seen.end()) {
    return invalid("citizen_id", absl::StrCat("repeats records[", it->second, "]"));
  }
  for (const auto& [name, value] : r.attributes()) {
    const std::string field = absl::StrCat("attributes[\"", absl::CEscape(name), "\"]");
    auto type = held.find(name);
    if (type == held.end()) return invalid(field, "not an attribute this agency holds");
    if (absl::Status s = CheckAttributeValue(value, type->second); !s.ok()) {
      return invalid(field, s.message());
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<RecordsFileSource>> RecordsFileSource::Load(
    const std::string& path, std::vector<HeldAttribute> held) {
  std::unique_ptr<RecordsFileSource> source(new RecordsFileSource());
  for (size_t i = 0; i < held.size(); ++i) {
    const HeldAttribute& a = held[i];
    if (a.name.empty() || a.type == tellonce::v1::ATTRIBUTE_TYPE_UNSPECIFIED) {
      return absl::InvalidArgumentError(absl::StrCat("held[", i, "]: name and type required"));
    }
    if (!source->held_types_.emplace(a.name, a.type).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("held[", i, "]: \"", a.name, "\" is listed twice"));
    }
  }
  source->held_ = std::move(held);

  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  AgencyRecords records;
  if (absl::Status s = ParseTextProto(*text, path, &records); !s.ok()) return s;

  absl::flat_hash_map<std::string, int> seen;  // citizen id -> record index
  for (int i = 0; i < records.records_size(); ++i) {
    const CitizenRecord& r = records.records(i);
    if (absl::Status s = CheckRecord(r, i, source->held_types_, seen); !s.ok()) {
      const int line = RecordLine(*text, i);
      return absl::InvalidArgumentError(line > 0 ? absl::StrCat(path, ":", line, ": ", s.message())
                                                 : absl::StrCat(path, ": ", s.message()));
    }
    seen.emplace(r.citizen_id(), i);
  }
  for (CitizenRecord& r : *records.mutable_records()) {
    std::string id = r.citizen_id();
    source->records_.emplace(std::move(id), std::move(r));
  }
  source->loaded_at_ = ToProtoTime(absl::Now());
  return source;
}

absl::StatusOr<tellonce::v1::FetchAttributesResponse> RecordsFileSource::Fetch(
    const FetchContext& ctx) {
  auto record = records_.find(ctx.citizen_id);
  if (record == records_.end()) return absl::NotFoundError("no record of this citizen");
  tellonce::v1::FetchAttributesResponse response;
  for (const std::string& name : ctx.attributes) {
    tellonce::v1::FetchedAttribute* out = response.add_attributes();
    out->set_name(name);
    auto value = record->second.attributes().find(name);
    // Only attributes this agency holds were loaded, so anything else is not found.
    if (value == record->second.attributes().end()) {
      out->set_not_found(true);
    } else {
      *out->mutable_value() = value->second;
    }
  }
  *response.mutable_as_of() = record->second.has_as_of() ? record->second.as_of() : loaded_at_;
  return response;
}

absl::StatusOr<LiveRecordsFileSource::FileIdentity> LiveRecordsFileSource::Identify(
    const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    const int error = errno;
    const std::string message = absl::StrCat(path, ": ", std::strerror(error));
    return error == ENOENT ? absl::NotFoundError(message) : absl::InternalError(message);
  }
  return FileIdentity{
      .device = st.st_dev,
      .inode = st.st_ino,
      .size = st.st_size,
      .mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

absl::StatusOr<std::unique_ptr<LiveRecordsFileSource>> LiveRecordsFileSource::Load(
    const std::string& path, std::vector<HeldAttribute> held, ReloadObserver on_reload) {
  // The identity before the read: a change during the read is caught by the next fetch.
  absl::StatusOr<FileIdentity> identity = Identify(path);
  if (!identity.ok()) return identity.status();
  absl::StatusOr<std::unique_ptr<RecordsFileSource>> first = RecordsFileSource::Load(path, held);
  if (!first.ok()) return first.status();
  std::unique_ptr<LiveRecordsFileSource> source(
      new LiveRecordsFileSource(path, std::move(held), std::move(on_reload)));
  absl::MutexLock lock(&source->mu_);
  source->current_ = std::shared_ptr<RecordsFileSource>(*std::move(first));
  source->tried_ = *identity;
  return source;
}

std::shared_ptr<RecordsFileSource> LiveRecordsFileSource::Current() {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<FileIdentity> identity = Identify(path_);
  if (!identity.ok()) {
    // Gone or unreadable: keep serving, and say so once.
    if (tried_ != FileIdentity{}) {
      tried_ = FileIdentity{};
      if (on_reload_) on_reload_(identity.status(), current_->size());
    }
    return current_;
  }
  if (*identity == tried_) return current_;
  tried_ = *identity;
  absl::StatusOr<std::unique_ptr<RecordsFileSource>> loaded = RecordsFileSource::Load(path_, held_);
  if (loaded.ok()) current_ = std::shared_ptr<RecordsFileSource>(*std::move(loaded));
  if (on_reload_) on_reload_(loaded.status(), current_->size());
  return current_;
}

absl::StatusOr<tellonce::v1::FetchAttributesResponse> LiveRecordsFileSource::Fetch(
    const FetchContext& ctx) {
  return Current()->Fetch(ctx);
}

size_t LiveRecordsFileSource::size() {
  absl::MutexLock lock(&mu_);
  return current_->size();
}

}  // namespace tellonce::connectors
