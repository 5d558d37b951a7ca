#include "storage/rocksdb/rocks_storage.h"

#include <algorithm>
#include <cstdarg>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "proto/time.h"
#include "rocksdb/compaction_filter.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"
#include "storage/rocksdb/commit_queue.h"
#include "storage/rocksdb/database.h"
#include "storage/rocksdb/layout.h"
#include "storage/rocksdb/testing.h"

namespace tellonce::storage {
namespace {

using rocks::CommitQueue;
using rocks::Database;
using rocks::Family;
using rocks::FromRocks;
using rocks::GroupBatch;
namespace keys = rocks::keys;

std::string_view View(const rocksdb::Slice& slice) { return {slice.data(), slice.size()}; }

bool HasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

// Key components must not contain NUL (it separates them).
absl::Status CheckComponent(std::string_view value, const char* field) {
  if (value.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
  if (HasNul(value)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": must not contain NUL"));
  }
  return absl::OkStatus();
}

absl::Status ConsentNotFound(const std::string& consent_id) {
  return absl::NotFoundError(absl::StrCat("consent ", consent_id, " is not stored"));
}

absl::Status ParseConsent(std::string_view bytes, const std::string& consent_id,
                          StoredConsent* record) {
  if (!record->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError(absl::StrCat("consent record ", consent_id, " does not parse"));
  }
  return absl::OkStatus();
}

// A decimal counter in the default family; 0 when absent.
absl::StatusOr<uint64_t> ParseCounter(const absl::Status& read, const std::string& text,
                                      const char* key) {
  if (absl::IsNotFound(read)) return 0;
  if (!read.ok()) return read;
  uint64_t value = 0;
  if (!absl::SimpleAtoi(text, &value)) {
    return absl::DataLossError(absl::StrCat("metadata ", key, " is corrupt"));
  }
  return value;
}

// The value of an "a" entry: `consent` reduced to the fields an access decision reads
// (consent id, attributes, purpose, validity, mode, status). Citizen and consumer are
// in the key; events, portal, request id and capture time stay in the record only.
// About half the bytes of the whole consent: nearly twice as many entries fit the block
// cache, a cache miss decompresses fewer blocks, and a lookup parses less. The consent
// id is kept although the key ends with it, because builds from before this layout
// return the parsed value as the consent, and they must keep reading these entries.
std::string ActiveEntryValue(const Consent& consent) {
  Consent entry;
  entry.set_consent_id(consent.consent_id());
  *entry.mutable_attributes() = consent.attributes();
  entry.set_purpose(consent.purpose());
  if (consent.has_valid_from()) *entry.mutable_valid_from() = consent.valid_from();
  if (consent.has_expires_at()) *entry.mutable_expires_at() = consent.expires_at();
  entry.set_mode(consent.mode());
  entry.set_status(consent.status());
  return entry.SerializeAsString();
}

// Drops Active entries of consents past their expiry at compaction: a decision applies
// expiry on read and would skip them anyway, so only their bytes go. Entries without
// the decision fields (empty values, from older builds) are kept.
class ExpiredConsentFilter final : public rocksdb::CompactionFilter {
 public:
  bool Filter(int /*level*/, const rocksdb::Slice& key, const rocksdb::Slice& value,
              std::string* /*new_value*/, bool* /*value_changed*/) const override {
    if (!keys::IsActive(View(key)) || value.empty()) return false;
    Consent entry;
    if (!entry.ParseFromArray(value.data(), static_cast<int>(value.size()))) return false;
    return entry.has_expires_at() && absl::Now() >= FromProtoTime(entry.expires_at());
  }
  const char* Name() const override { return "tellonce.ExpiredConsentFilter"; }
};

// An "a" entry as a consent: the decision fields, or (entries written before they
// carried them: empty value) the whole stored record, read through `read_record`.
template <typename ReadRecord>
absl::StatusOr<Consent> ActiveEntry(std::string_view key, std::string_view value,
                                    size_t prefix_size, const std::string& citizen_id,
                                    const std::string& consumer, ReadRecord read_record) {
  Consent entry;
  if (!value.empty()) {
    if (!entry.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      return absl::DataLossError("an access index entry is corrupt");
    }
    entry.set_citizen_id(citizen_id);
    entry.set_consumer(consumer);
    return entry;
  }
  const std::string consent_id(key.substr(prefix_size));
  absl::StatusOr<StoredConsent> record = read_record(consent_id);
  if (absl::IsNotFound(record.status())) {
    return absl::DataLossError(absl::StrCat("access index points to missing consent ", consent_id));
  }
  if (!record.ok()) return record.status();
  return std::move(*record->mutable_consent());
}

// What one work function did that its completion must know.
struct WorkState {
  bool appended = false;
};

class RocksTransaction final : public Transaction {
 public:
  RocksTransaction(GroupBatch& batch, WorkState& state) : batch_(batch), state_(state) {}

  absl::StatusOr<StoredConsent> GetConsent(const std::string& consent_id) override {
    if (consent_id.empty() || HasNul(consent_id)) return ConsentNotFound(consent_id);
    std::string bytes;
    absl::Status read = batch_.Get(Family::kConsents, consent_id, &bytes);
    if (absl::IsNotFound(read)) return ConsentNotFound(consent_id);
    if (!read.ok()) return read;
    StoredConsent record;
    if (absl::Status parsed = ParseConsent(bytes, consent_id, &record); !parsed.ok()) return parsed;
    return record;
  }

  absl::StatusOr<std::string> ConsentIdForRequest(const std::string& portal,
                                                  const std::string& request_id) override {
    if (absl::Status bad = CheckComponent(portal, "portal"); !bad.ok()) return bad;
    if (absl::Status bad = CheckComponent(request_id, "request_id"); !bad.ok()) return bad;
    std::string consent_id;
    absl::Status read = batch_.Get(Family::kIndexes, keys::Request(portal, request_id), &consent_id);
    if (absl::IsNotFound(read)) return absl::NotFoundError("request_id: not used before");
    if (!read.ok()) return read;
    return consent_id;
  }

  absl::StatusOr<std::vector<Consent>> ActiveConsents(const std::string& citizen_id,
                                                      const std::string& consumer,
                                                      int limit) override {
    if (absl::Status bad = CheckComponent(citizen_id, "citizen_id"); !bad.ok()) return bad;
    if (absl::Status bad = CheckComponent(consumer, "consumer"); !bad.ok()) return bad;
    const std::string prefix = keys::ActivePrefix(citizen_id, consumer);
    std::vector<Consent> found;
    absl::Status failed;
    absl::Status scanned =
        batch_.Scan(Family::kIndexes, prefix, [&](std::string_view key, std::string_view value) {
          if (static_cast<int>(found.size()) >= limit) return false;
          absl::StatusOr<Consent> entry =
              ActiveEntry(key, value, prefix.size(), citizen_id, consumer,
                          [this](const std::string& id) { return GetConsent(id); });
          if (!entry.ok()) {
            failed = entry.status();
            return false;
          }
          found.push_back(*std::move(entry));
          return true;
        });
    if (!scanned.ok()) return scanned;
    if (!failed.ok()) return failed;
    return found;
  }

  absl::Status DropExpired(const Consent& consent) override {
    batch_.Delete(Family::kIndexes,
                  keys::Active(consent.citizen_id(), consent.consumer(), consent.consent_id()));
    return absl::OkStatus();
  }

  absl::Status InsertConsent(const StoredConsent& record) override {
    const Consent& consent = record.consent();
    for (auto [value, field] :
         {std::pair{&consent.consent_id(), "consent_id"},
          std::pair{&consent.citizen_id(), "citizen_id"},
          std::pair{&consent.consumer(), "consumer"}, std::pair{&consent.portal(), "portal"},
          std::pair{&consent.request_id(), "request_id"}}) {
      if (absl::Status bad = CheckComponent(*value, field); !bad.ok()) return bad;
    }
    std::string ignored;
    absl::Status clash = batch_.Get(Family::kConsents, consent.consent_id(), &ignored);
    if (clash.ok()) {
      return absl::AlreadyExistsError(
          absl::StrCat("consent_id: ", consent.consent_id(), " already exists"));
    }
    if (!absl::IsNotFound(clash)) return clash;
    const std::string request_key = keys::Request(consent.portal(), consent.request_id());
    clash = batch_.Get(Family::kIndexes, request_key, &ignored);
    if (clash.ok()) return absl::AlreadyExistsError("request_id: already used");
    if (!absl::IsNotFound(clash)) return clash;

    batch_.Put(Family::kConsents, consent.consent_id(), record.SerializeAsString());
    batch_.Put(Family::kIndexes, keys::CitizenConsent(consent.citizen_id(), consent.consent_id()),
               "");
    if (consent.status() == tellonce::v1::ACTIVE) {
      // The entry carries what the decision reads, so an access decision is one short
      // prefix scan with no record reads. It lives exactly as long as the stored status
      // is ACTIVE; expiry is applied on read.
      batch_.Put(Family::kIndexes,
                 keys::Active(consent.citizen_id(), consent.consumer(), consent.consent_id()),
                 ActiveEntryValue(consent));
    }
    batch_.Put(Family::kIndexes, request_key, consent.consent_id());
    return absl::OkStatus();
  }

  absl::Status UpdateConsent(const StoredConsent& record) override {
    const Consent& consent = record.consent();
    if (consent.consent_id().empty() || HasNul(consent.consent_id())) {
      return ConsentNotFound(consent.consent_id());
    }
    batch_.Put(Family::kConsents, consent.consent_id(), record.SerializeAsString());
    if (consent.status() != tellonce::v1::ACTIVE) {
      batch_.Delete(Family::kIndexes,
                    keys::Active(consent.citizen_id(), consent.consumer(), consent.consent_id()));
    }
    return absl::OkStatus();
  }

  absl::Status AppendAccessEvents(const std::vector<AccessEvent>& events) override {
    if (events.empty()) return absl::OkStatus();
    for (const AccessEvent& event : events) {
      if (HasNul(event.citizen_id())) {
        return absl::InvalidArgumentError("citizen_id: must not contain NUL");
      }
    }
    std::string text;
    absl::StatusOr<uint64_t> size = ParseCounter(
        batch_.Get(Family::kMeta, keys::kAccessLogSize, &text), text, keys::kAccessLogSize);
    if (!size.ok()) return size.status();
    uint64_t next = *size;
    std::string bytes;
    for (const AccessEvent& event : events) {
      // Deterministic: the stored bytes are what the transparency log hashes, and
      // anyone re-serializing the event must get them back.
      bytes.clear();
      {
        google::protobuf::io::StringOutputStream stream(&bytes);
        google::protobuf::io::CodedOutputStream coded(&stream);
        coded.SetSerializationDeterministic(true);
        event.SerializeToCodedStream(&coded);
      }
      batch_.Put(Family::kAccessLog, keys::Event(next), bytes);
      batch_.Put(Family::kIndexes,
                 keys::CitizenEventsPrefix(event.citizen_id()) + rocks::BigEndian64(next), "");
      ++next;
    }
    batch_.Put(Family::kMeta, keys::kAccessLogSize, absl::StrCat(next));
    state_.appended = true;
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> PublishedFingerprint(const std::string& provider,
                                                   const std::string& event_id) override {
    if (absl::Status bad = CheckComponent(provider, "provider"); !bad.ok()) return bad;
    if (absl::Status bad = CheckComponent(event_id, "event_id"); !bad.ok()) return bad;
    std::string fingerprint;
    absl::Status read =
        batch_.Get(Family::kIndexes, keys::Published(provider, event_id), &fingerprint);
    if (absl::IsNotFound(read)) return absl::NotFoundError("event_id: not published before");
    if (!read.ok()) return read;
    return fingerprint;
  }

  absl::Status RecordPublished(const std::string& provider, const std::string& event_id,
                               const std::string& fingerprint) override {
    absl::StatusOr<std::string> existing = PublishedFingerprint(provider, event_id);
    if (existing.ok()) return absl::AlreadyExistsError("event_id: already published");
    if (!absl::IsNotFound(existing.status())) return existing.status();
    batch_.Put(Family::kIndexes, keys::Published(provider, event_id), fingerprint);
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<Delivery>> AddDeliveries(std::vector<Delivery> deliveries) override {
    if (deliveries.empty()) return deliveries;
    for (const Delivery& d : deliveries) {
      if (absl::Status bad = CheckComponent(d.subscriber(), "subscriber"); !bad.ok()) return bad;
    }
    std::string text;
    absl::StatusOr<uint64_t> next = ParseCounter(
        batch_.Get(Family::kMeta, keys::kOutboxSequence, &text), text, keys::kOutboxSequence);
    if (!next.ok()) return next.status();
    uint64_t sequence = *next;
    for (Delivery& d : deliveries) {
      d.set_delivery_id(absl::StrCat(sequence));
      d.set_state(Delivery::PENDING);
      batch_.Put(Family::kOutbox, keys::Delivery(sequence), d.SerializeAsString());
      batch_.Put(Family::kOutbox, keys::Pending(d.subscriber(), sequence), "");
      ++sequence;
    }
    batch_.Put(Family::kMeta, keys::kOutboxSequence, absl::StrCat(sequence));
    return deliveries;
  }

 private:
  GroupBatch& batch_;
  WorkState& state_;
};

uint64_t SequenceOf(const Delivery& d) {
  uint64_t sequence = 0;
  (void)absl::SimpleAtoi(d.delivery_id(), &sequence);
  return sequence;
}

class RocksStorage final : public Storage,
                           ConsentRows,
                           AccessEventLog,
                           TreeStore,
                           DeliveryStore {
 public:
  RocksStorage(std::unique_ptr<Database> db, const RocksStorageOptions& options)
      : db_(std::move(db)),
        queue_(db_.get(), CommitQueue::Options{.max_group = options.max_group,
                                               .sync = options.sync,
                                               .gather = options.gather,
                                               .completion_thread = options.completion_thread,
                                               .group_operations = options.group_operations,
                                               .write_seconds = options.write_seconds}) {}

  // --- Storage ---------------------------------------------------------------------------

  void Submit(Work work, Done done) override {
    auto state = std::make_shared<WorkState>();
    queue_.Submit(
        [state, work = std::move(work)](GroupBatch& batch) mutable {
          RocksTransaction transaction(batch, *state);
          absl::Status status = work(transaction);
          if (!status.ok()) state->appended = false;
          return status;
        },
        [this, state, done = std::move(done)](absl::Status status) mutable {
          if (status.ok() && state->appended && listener_) listener_();
          done(std::move(status));
        });
  }

  ~RocksStorage() override { queue_.Close(); }

  void Close() override { queue_.Close(); }

  void SetAppendListener(std::function<void()> listener) override {
    listener_ = std::move(listener);
  }

  ConsentRows& consents() override { return *this; }
  AccessEventLog& access_events() override { return *this; }
  TreeStore& tree() override { return *this; }
  DeliveryStore& deliveries() override { return *this; }

  absl::Status Health() override { return db_->Health(); }

  absl::Status Backup(const std::string& dir) override { return db_->Backup(dir); }

  CommitCounts commit_counts() const override {
    const CommitQueue::Counters& c = queue_.counters();
    return {.operations = c.operations.load(std::memory_order_relaxed),
            .groups = c.groups.load(std::memory_order_relaxed),
            .writes = c.writes.load(std::memory_order_relaxed)};
  }

  // --- ConsentRows -----------------------------------------------------------------------

  absl::StatusOr<StoredConsent> Get(const std::string& consent_id) override {
    if (consent_id.empty() || HasNul(consent_id)) return ConsentNotFound(consent_id);
    std::string bytes;
    rocksdb::Status status = db()->Get(rocksdb::ReadOptions(), family(Family::kConsents),
                                       consent_id, &bytes);
    if (status.IsNotFound()) return ConsentNotFound(consent_id);
    if (!status.ok()) return FromRocks(status);
    StoredConsent record;
    if (absl::Status parsed = ParseConsent(bytes, consent_id, &record); !parsed.ok()) return parsed;
    return record;
  }

  absl::Status ScanCitizen(const std::string& citizen_id, const std::string& after_id,
                           const std::function<bool(StoredConsent&)>& visit) override {
    if (absl::Status bad = CheckComponent(citizen_id, "citizen_id"); !bad.ok()) return bad;
    if (HasNul(after_id)) return absl::InvalidArgumentError("page_token: malformed");
    const std::string prefix = keys::CitizenConsentsPrefix(citizen_id);
    const std::string end = rocks::PrefixEnd(prefix);
    rocksdb::Slice upper(end);
    rocksdb::ReadOptions read_options;
    read_options.iterate_upper_bound = &upper;
    // One snapshot for the index scan and the record reads, so a page is consistent.
    const rocksdb::Snapshot* snapshot = db()->GetSnapshot();
    read_options.snapshot = snapshot;
    struct Release {
      rocksdb::DB* db;
      const rocksdb::Snapshot* snapshot;
      ~Release() { db->ReleaseSnapshot(snapshot); }
    } release{db(), snapshot};

    std::unique_ptr<rocksdb::Iterator> it(db()->NewIterator(read_options, family(Family::kIndexes)));
    // Start just after `after_id`: the key + NUL is its successor.
    if (after_id.empty()) {
      it->Seek(prefix);
    } else {
      it->Seek(absl::StrCat(prefix, after_id, std::string(1, '\0')));
    }
    rocksdb::ReadOptions record_options;
    record_options.snapshot = snapshot;
    for (; it->Valid(); it->Next()) {
      const std::string consent_id(View(it->key()).substr(prefix.size()));
      std::string bytes;
      rocksdb::Status read =
          db()->Get(record_options, family(Family::kConsents), consent_id, &bytes);
      if (read.IsNotFound()) {
        return absl::DataLossError(
            absl::StrCat("citizen index points to missing consent ", consent_id));
      }
      if (!read.ok()) return FromRocks(read);
      StoredConsent record;
      if (absl::Status parsed = ParseConsent(bytes, consent_id, &record); !parsed.ok()) {
        return parsed;
      }
      if (!visit(record)) break;
    }
    return FromRocks(it->status());
  }

  absl::StatusOr<std::vector<Consent>> Active(const std::string& citizen_id,
                                              const std::string& consumer, int limit) override {
    if (absl::Status bad = CheckComponent(citizen_id, "citizen_id"); !bad.ok()) return bad;
    if (absl::Status bad = CheckComponent(consumer, "consumer"); !bad.ok()) return bad;
    const std::string prefix = keys::ActivePrefix(citizen_id, consumer);
    const std::string end = rocks::PrefixEnd(prefix);
    rocksdb::Slice upper(end);
    rocksdb::ReadOptions read_options;
    read_options.iterate_upper_bound = &upper;
    // Skips setting up range-tombstone iterators for every file (5% of a lookup). Safe
    // because nothing writes range deletions: every write goes through GroupBatch or a
    // WriteBatch with Put and Delete only.
    read_options.ignore_range_deletions = true;
    std::unique_ptr<rocksdb::Iterator> it(db()->NewIterator(read_options, family(Family::kIndexes)));
    std::vector<Consent> found;
    for (it->Seek(prefix); it->Valid() && static_cast<int>(found.size()) < limit; it->Next()) {
      // Without a snapshot: a record read for an old-style entry can only have moved on
      // (revoked, used) since the entry was seen, which the caller's status check sees.
      absl::StatusOr<Consent> entry =
          ActiveEntry(View(it->key()), View(it->value()), prefix.size(), citizen_id, consumer,
                      [this](const std::string& id) { return Get(id); });
      if (!entry.ok()) return entry.status();
      found.push_back(*std::move(entry));
    }
    if (!it->status().ok()) return FromRocks(it->status());
    return found;
  }

  // --- AccessEventLog --------------------------------------------------------------------

  absl::StatusOr<uint64_t> Size() override { return Counter(keys::kAccessLogSize); }

  absl::StatusOr<std::string> ReadBytes(uint64_t index) override {
    std::string bytes;
    rocksdb::Status s =
        db()->Get(rocksdb::ReadOptions(), family(Family::kAccessLog), keys::Event(index), &bytes);
    if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat("no access event ", index));
    if (!s.ok()) return FromRocks(s);
    return bytes;
  }

  absl::Status Scan(uint64_t start, uint64_t end,
                    const std::function<bool(uint64_t, std::string_view)>& visit) override {
    if (start >= end) return absl::OkStatus();
    const std::string upper_key = keys::Event(end);
    rocksdb::Slice upper(upper_key);
    rocksdb::ReadOptions read_options;
    read_options.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(
        db()->NewIterator(read_options, family(Family::kAccessLog)));
    uint64_t next = start;
    for (it->Seek(keys::Event(start)); it->Valid(); it->Next(), ++next) {
      if (View(it->key()) != keys::Event(next)) {
        return absl::DataLossError(absl::StrCat("access event ", next, " is missing"));
      }
      if (!visit(next, View(it->value()))) return absl::OkStatus();
    }
    if (!it->status().ok()) return FromRocks(it->status());
    if (next != end) return absl::DataLossError(absl::StrCat("access event ", next, " is missing"));
    return absl::OkStatus();
  }

  absl::Status ScanCitizen(const std::string& citizen_id, std::optional<uint64_t> after,
                           const std::function<bool(uint64_t, std::string_view)>& visit) override {
    if (absl::Status bad = CheckComponent(citizen_id, "citizen_id"); !bad.ok()) return bad;
    const std::string prefix = keys::CitizenEventsPrefix(citizen_id);
    const std::string end = rocks::PrefixEnd(prefix);
    rocksdb::Slice upper(end);
    rocksdb::ReadOptions read_options;
    read_options.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db()->NewIterator(read_options, family(Family::kIndexes)));
    if (after.has_value() && *after == ~uint64_t{0}) return absl::OkStatus();
    it->Seek(after.has_value() ? prefix + rocks::BigEndian64(*after + 1) : prefix);
    for (; it->Valid(); it->Next()) {
      const std::string_view key = View(it->key());
      if (key.size() != prefix.size() + 8) continue;
      const uint64_t index = rocks::FromBigEndian64(key.substr(prefix.size()));
      absl::StatusOr<std::string> bytes = ReadBytes(index);
      if (absl::IsNotFound(bytes.status())) {
        return absl::DataLossError(absl::StrCat("citizen index points to missing event ", index));
      }
      if (!bytes.ok()) return bytes.status();
      if (!visit(index, *bytes)) break;
    }
    return FromRocks(it->status());
  }

  // --- TreeStore -------------------------------------------------------------------------

  absl::StatusOr<bool> AcquireSequencer() override { return true; }
  absl::StatusOr<uint64_t> Sequence() override { return Size(); }
  absl::StatusOr<uint64_t> TreeSize() override { return Counter(keys::kTreeSize); }

  absl::StatusOr<certs::Hash> ReadNode(int level, uint64_t index) override {
    std::string bytes;
    rocksdb::Status s = db()->Get(rocksdb::ReadOptions(), family(Family::kAccessLog),
                                  keys::Node(level, index), &bytes);
    if (s.IsNotFound()) {
      return absl::DataLossError(absl::StrCat("tree node ", level, "/", index, " is missing"));
    }
    if (!s.ok()) return FromRocks(s);
    return certs::HashFromBytes(bytes);
  }

  absl::Status ExtendTree(uint64_t old_size, uint64_t new_size,
                          const std::vector<certs::TreeBuilder::Node>& nodes) override {
    // One process extends the tree (this one); the check keeps the contract anyway.
    absl::StatusOr<uint64_t> stored = TreeSize();
    if (!stored.ok()) return stored.status();
    if (*stored != old_size) {
      return absl::AbortedError(absl::StrCat("the stored tree has ", *stored,
                                             " leaves, not ", old_size, ": another writer"));
    }
    rocksdb::WriteBatch batch;
    for (const certs::TreeBuilder::Node& node : nodes) {
      batch.Put(family(Family::kAccessLog), keys::Node(node.level, node.index),
                rocksdb::Slice(reinterpret_cast<const char*>(node.hash.data()), node.hash.size()));
    }
    batch.Put(family(Family::kMeta), keys::kTreeSize, absl::StrCat(new_size));
    // Not synced: the tree can be recomputed from the events. A checkpoint's synced
    // write makes everything before it in the WAL durable too.
    return FromRocks(db()->Write(rocksdb::WriteOptions(), &batch));
  }

  absl::Status PutCheckpoint(uint64_t tree_size, const SignedCheckpoint& checkpoint) override {
    absl::StatusOr<uint64_t> stored = TreeSize();
    if (!stored.ok()) return stored.status();
    if (*stored < tree_size) {
      return absl::FailedPreconditionError(absl::StrCat(
          "a checkpoint of ", tree_size, " leaves, but the stored tree has ", *stored));
    }
    const std::string bytes = checkpoint.SerializeAsString();
    std::string existing;
    rocksdb::Status read = db()->Get(rocksdb::ReadOptions(), family(Family::kAccessLog),
                                     keys::Checkpoint(tree_size), &existing);
    if (read.ok()) {
      if (existing == bytes) return absl::OkStatus();
      return absl::AlreadyExistsError(
          absl::StrCat("a different checkpoint of ", tree_size, " leaves is stored"));
    }
    if (!read.IsNotFound()) return FromRocks(read);
    rocksdb::WriteOptions sync;
    sync.sync = true;
    return FromRocks(
        db()->Put(sync, family(Family::kAccessLog), keys::Checkpoint(tree_size), bytes));
  }

  absl::Status ScanCheckpoints(
      uint64_t from_size,
      const std::function<bool(uint64_t, SignedCheckpoint&)>& visit) override {
    const std::string end = rocks::PrefixEnd("c");
    rocksdb::Slice upper(end);
    rocksdb::ReadOptions read_options;
    read_options.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(
        db()->NewIterator(read_options, family(Family::kAccessLog)));
    for (it->Seek(keys::Checkpoint(from_size)); it->Valid(); it->Next()) {
      const std::string_view key = View(it->key());
      SignedCheckpoint checkpoint;
      if (key.size() != keys::kCheckpointKeySize ||
          !checkpoint.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
        return absl::DataLossError("a stored checkpoint is corrupt");
      }
      if (!visit(rocks::FromBigEndian64(key.substr(1)), checkpoint)) break;
    }
    return FromRocks(it->status());
  }

  // --- DeliveryStore ---------------------------------------------------------------------

  absl::Status Scan(uint64_t from_sequence,
                    const std::function<bool(Delivery&)>& visit) override {
    const std::string end = rocks::PrefixEnd("d");
    rocksdb::Slice upper(end);
    rocksdb::ReadOptions read_options;
    read_options.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db()->NewIterator(read_options, family(Family::kOutbox)));
    for (it->Seek(keys::Delivery(from_sequence)); it->Valid(); it->Next()) {
      Delivery d;
      if (!d.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
        return absl::DataLossError("a stored delivery is corrupt");
      }
      if (!visit(d)) break;
    }
    return FromRocks(it->status());
  }

  absl::StatusOr<std::vector<Delivery>> Pending(const std::string& subscriber, uint64_t from,
                                                uint64_t upper, size_t limit) override {
    std::vector<Delivery> found;
    if (from >= upper || limit == 0) return found;
    const std::string prefix = keys::PendingPrefix(subscriber);
    const std::string upper_key = keys::Pending(subscriber, upper);
    rocksdb::Slice upper_slice(upper_key);
    rocksdb::ReadOptions read_options;
    read_options.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db()->NewIterator(read_options, family(Family::kOutbox)));
    rocksdb::WriteBatch stale;
    for (it->Seek(keys::Pending(subscriber, from)); it->Valid() && found.size() < limit;
         it->Next()) {
      const std::string_view key = View(it->key());
      if (key.substr(0, prefix.size()) != prefix || key.size() != prefix.size() + 8) break;
      const uint64_t sequence = rocks::FromBigEndian64(key.substr(prefix.size()));
      absl::StatusOr<Delivery> d = Get(sequence);
      if (d.ok() && d->state() == Delivery::PENDING) {
        found.push_back(*std::move(d));
      } else if (d.ok() || absl::IsNotFound(d.status())) {
        // The delivery was acknowledged or parked: the entry is stale.
        stale.Delete(family(Family::kOutbox), it->key());
      } else {
        break;  // A read error: what was found so far is still in order.
      }
    }
    absl::Status status = FromRocks(it->status());
    if (stale.Count() > 0) (void)db()->Write(rocksdb::WriteOptions(), &stale);
    if (!status.ok() && found.empty()) return status;
    return found;
  }

  absl::StatusOr<Delivery> Get(uint64_t sequence) override {
    std::string bytes;
    rocksdb::Status s = db()->Get(rocksdb::ReadOptions(), family(Family::kOutbox),
                                  keys::Delivery(sequence), &bytes);
    if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat("no delivery ", sequence));
    if (!s.ok()) return FromRocks(s);
    Delivery d;
    if (!d.ParseFromString(bytes)) return absl::DataLossError("a stored delivery is corrupt");
    return d;
  }

  absl::Status Update(const Delivery& delivery) override {
    rocksdb::WriteBatch batch;
    const uint64_t sequence = SequenceOf(delivery);
    batch.Put(family(Family::kOutbox), keys::Delivery(sequence), delivery.SerializeAsString());
    if (delivery.state() != Delivery::PENDING) {
      batch.Delete(family(Family::kOutbox), keys::Pending(delivery.subscriber(), sequence));
    }
    return FromRocks(db()->Write(rocksdb::WriteOptions(), &batch));
  }

  absl::Status Remove(const Delivery& delivery) override {
    rocksdb::WriteBatch batch;
    const uint64_t sequence = SequenceOf(delivery);
    batch.Delete(family(Family::kOutbox), keys::Delivery(sequence));
    batch.Delete(family(Family::kOutbox), keys::Pending(delivery.subscriber(), sequence));
    return FromRocks(db()->Write(rocksdb::WriteOptions(), &batch));
  }

  absl::Status Requeue(const std::vector<Delivery>& deliveries) override {
    rocksdb::WriteBatch batch;
    for (const Delivery& d : deliveries) {
      batch.Put(family(Family::kOutbox), keys::Delivery(SequenceOf(d)), d.SerializeAsString());
      batch.Put(family(Family::kOutbox), keys::Pending(d.subscriber(), SequenceOf(d)), "");
    }
    rocksdb::WriteOptions synced;
    synced.sync = true;
    return FromRocks(db()->Write(synced, &batch));
  }

  Database* database() { return db_.get(); }

  // Writes the per-subscriber index of PENDING deliveries when the data directory
  // predates it (once; marked in the metadata).
  absl::Status IndexPendingDeliveries() {
    std::string marker;
    rocksdb::Status read = db()->Get(rocksdb::ReadOptions(), family(Family::kMeta),
                                     keys::kOutboxPendingIndexed, &marker);
    if (read.ok()) return absl::OkStatus();
    if (!read.IsNotFound()) return FromRocks(read);
    rocksdb::WriteBatch index;
    absl::Status written;
    absl::Status scanned = Scan(0, [&](Delivery& d) {
      if (d.state() != Delivery::PENDING) return true;
      index.Put(family(Family::kOutbox), keys::Pending(d.subscriber(), SequenceOf(d)), "");
      if (index.Count() >= 4096) {
        written = FromRocks(db()->Write(rocksdb::WriteOptions(), &index));
        index.Clear();
      }
      return written.ok();
    });
    if (!scanned.ok()) return scanned;
    if (!written.ok()) return written;
    index.Put(family(Family::kMeta), keys::kOutboxPendingIndexed, "1");
    return FromRocks(db()->Write(rocksdb::WriteOptions(), &index));
  }

 private:
  rocksdb::DB* db() const { return db_->db(); }
  rocksdb::ColumnFamilyHandle* family(Family f) const { return db_->family(f); }

  absl::StatusOr<uint64_t> Counter(const char* key) {
    std::string text;
    rocksdb::Status s = db()->Get(rocksdb::ReadOptions(), family(Family::kMeta), key, &text);
    return ParseCounter(FromRocks(s), text, key);
  }

  std::unique_ptr<Database> db_;
  CommitQueue queue_;
  std::function<void()> listener_;
};

// RocksDB's info log would be written into the directory; an audit writes nothing.
class DiscardingLogger final : public rocksdb::Logger {
 public:
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {}
};

absl::Status WithPath(const std::string& path, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(path, ": ", status.message()));
}

}  // namespace

rocks::Database* rocks::DatabaseOf(Storage& storage) {
  auto* rocks_storage = dynamic_cast<RocksStorage*>(&storage);
  return rocks_storage == nullptr ? nullptr : rocks_storage->database();
}

absl::StatusOr<std::unique_ptr<Storage>> OpenRocksStorage(const RocksStorageOptions& options) {
  static const ExpiredConsentFilter* const expired_filter = new ExpiredConsentFilter();
  absl::StatusOr<std::unique_ptr<Database>> db =
      Database::Open({.path = options.path,
                      .block_cache_mb = options.block_cache_mb,
                      .env = options.env,
                      .index_compaction_filter = expired_filter});
  if (!db.ok()) return db.status();
  auto storage = std::make_unique<RocksStorage>(*std::move(db), options);
  if (absl::Status indexed = storage->IndexPendingDeliveries(); !indexed.ok()) {
    return WithPath(options.path, indexed);
  }
  return storage;
}

absl::StatusOr<std::unique_ptr<Storage>> OpenRocksStorageReadOnly(const std::string& path) {
  absl::StatusOr<std::unique_ptr<Database>> db =
      Database::OpenReadOnly({.path = path, .block_cache_mb = 8});
  if (!db.ok()) return db.status();
  auto storage = std::make_unique<RocksStorage>(*std::move(db), RocksStorageOptions{});
  storage->Close();  // reads only: every Submit completes with UNAVAILABLE
  return storage;
}

absl::StatusOr<StoredLog> ReadRocksLogCopy(const std::string& path) {
  rocksdb::DBOptions options;
  options.info_log = std::make_shared<DiscardingLogger>();
  std::vector<std::string> names;
  if (rocksdb::Status s = rocksdb::DB::ListColumnFamilies(options, path, &names); !s.ok()) {
    return absl::NotFoundError(
        absl::StrCat(path, ": not a broker data directory (", s.ToString(), ")"));
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& name : names) {
    descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  if (rocksdb::Status s = rocksdb::DB::OpenForReadOnly(options, path, descriptors, &handles, &raw);
      !s.ok()) {
    return WithPath(path, FromRocks(s));
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::ColumnFamilyHandle* log_family = nullptr;
  rocksdb::ColumnFamilyHandle* meta_family = nullptr;
  for (size_t i = 0; i < handles.size(); ++i) {
    if (names[i] == "access_log") log_family = handles[i];
    if (names[i] == rocksdb::kDefaultColumnFamilyName) meta_family = handles[i];
  }
  struct Close {
    std::unique_ptr<rocksdb::DB>& db;
    std::vector<rocksdb::ColumnFamilyHandle*>& handles;
    ~Close() {
      for (rocksdb::ColumnFamilyHandle* h : handles) db->DestroyColumnFamilyHandle(h);
      db.reset();
    }
  } close{db, handles};
  if (log_family == nullptr || meta_family == nullptr) {
    return absl::NotFoundError(absl::StrCat(path, ": no access_log column family"));
  }

  StoredLog copy;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), log_family));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const std::string_view key = View(it->key());
    const std::string_view value = View(it->value());
    if (key.empty()) continue;
    switch (key[0]) {
      case 'e':
        if (key.size() != keys::kEventKeySize) {
          return absl::DataLossError(absl::StrCat(path, ": malformed event key"));
        }
        copy.events.push_back({rocks::FromBigEndian64(key.substr(1)), std::string(value)});
        break;
      case 'n': {
        absl::StatusOr<certs::Hash> hash = certs::HashFromBytes(value);
        if (key.size() != keys::kNodeKeySize || !hash.ok()) {
          return absl::DataLossError(absl::StrCat(path, ": malformed subtree record"));
        }
        copy.subtrees.push_back(
            {static_cast<unsigned char>(key[1]), rocks::FromBigEndian64(key.substr(2)), *hash});
        break;
      }
      case 'c': {
        SignedCheckpoint checkpoint;
        if (!checkpoint.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          return absl::DataLossError(absl::StrCat(path, ": unreadable checkpoint record"));
        }
        copy.checkpoints.push_back(std::move(checkpoint));
        break;
      }
      default:
        break;  // Not part of the log.
    }
  }
  if (!it->status().ok()) return WithPath(path, FromRocks(it->status()));
  it.reset();
  std::string size_text;
  rocksdb::Status read =
      db->Get(rocksdb::ReadOptions(), meta_family, keys::kAccessLogSize, &size_text);
  if (read.ok()) {
    if (!absl::SimpleAtoi(size_text, &copy.claimed_size)) {
      return absl::DataLossError(absl::StrCat(path, ": unreadable ", keys::kAccessLogSize));
    }
  } else if (!read.IsNotFound()) {
    return WithPath(path, FromRocks(read));
  } else {
    copy.claimed_size = copy.events.size();
  }
  return copy;
}

}  // namespace tellonce::storage
