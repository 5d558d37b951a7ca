#include "broker/access_log.h"

#include <memory>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "rocksdb/db.h"

namespace tellonce::broker {
namespace {

using consent::Family;


absl::StatusOr<uint64_t> ParseSize(const std::string& text) {
  uint64_t size = 0;
  if (!absl::SimpleAtoi(text, &size)) {
    return absl::DataLossError(absl::StrCat("metadata ", AccessLog::kSizeKey, " is corrupt"));
  }
  return size;
}

}  // namespace

std::string BigEndian64(uint64_t value) {
  std::string bytes(8, '\0');
  for (int i = 7; i >= 0; --i) {
    bytes[i] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
  return bytes;
}

uint64_t FromBigEndian64(std::string_view bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < 8 && i < bytes.size(); ++i) {
    value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  }
  return value;
}

std::string AccessLog::Key(uint64_t index) { return absl::StrCat("e", BigEndian64(index)); }

std::string AccessLog::CitizenPrefix(const std::string& citizen_id) {
  std::string key("e");
  key.push_back('\0');
  key += citizen_id;
  key.push_back('\0');
  return key;
}

absl::StatusOr<uint64_t> AccessLog::Stage(consent::GroupBatch& batch,
                                          const std::vector<tellonce::v1::AccessEvent>& events) {
  std::string text;
  uint64_t size = 0;
  absl::Status read = batch.Get(Family::kMeta, AccessLog::kSizeKey, &text);
  if (read.ok()) {
    absl::StatusOr<uint64_t> parsed = ParseSize(text);
    if (!parsed.ok()) return parsed.status();
    size = *parsed;
  } else if (!absl::IsNotFound(read)) {
    return read;
  }
  const uint64_t first = size;
  std::string bytes;
  for (const tellonce::v1::AccessEvent& event : events) {
    bytes.clear();
    {
      google::protobuf::io::StringOutputStream stream(&bytes);
      google::protobuf::io::CodedOutputStream out(&stream);
      out.SetSerializationDeterministic(true);
      event.SerializeToCodedStream(&out);
    }
    batch.Put(Family::kAccessLog, Key(size), bytes);
    batch.Put(Family::kIndexes, CitizenPrefix(event.citizen_id()) + BigEndian64(size), "");
    ++size;
  }
  if (!events.empty()) batch.Put(Family::kMeta, AccessLog::kSizeKey, absl::StrCat(size));
  return first;
}

void AccessLog::Append(std::vector<tellonce::v1::AccessEvent> events, AppendDone done) {
  auto first = std::make_shared<uint64_t>(0);
  queue_->Submit(
      [events = std::move(events), first](consent::GroupBatch& batch) -> absl::Status {
        absl::StatusOr<uint64_t> staged = Stage(batch, events);
        if (!staged.ok()) return staged.status();
        *first = *staged;
        return absl::OkStatus();
      },
      [this, first, done = std::move(done)](absl::Status status) mutable {
        if (!status.ok()) {
          done(std::move(status));
          return;
        }
        NotifyAppended();
        done(*first);
      });
}

absl::StatusOr<uint64_t> AccessLog::Size() const {
  std::string text;
  rocksdb::Status s =
      db_->db()->Get(rocksdb::ReadOptions(), db_->family(Family::kMeta), AccessLog::kSizeKey, &text);
  if (s.IsNotFound()) return 0;
  if (!s.ok()) return consent::FromRocks(s);
  return ParseSize(text);
}

absl::StatusOr<std::string> AccessLog::ReadBytes(uint64_t index) const {
  std::string bytes;
  rocksdb::Status s =
      db_->db()->Get(rocksdb::ReadOptions(), db_->family(Family::kAccessLog), Key(index), &bytes);
  if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat("no access event ", index));
  if (!s.ok()) return consent::FromRocks(s);
  return bytes;
}

absl::StatusOr<tellonce::v1::AccessEvent> AccessLog::Read(uint64_t index) const {
  absl::StatusOr<std::string> bytes = ReadBytes(index);
  if (!bytes.ok()) return bytes.status();
  tellonce::v1::AccessEvent event;
  if (!event.ParseFromString(*bytes)) {
    return absl::DataLossError(absl::StrCat("access event ", index, " does not parse"));
  }
  return event;
}

}  // namespace tellonce::broker
