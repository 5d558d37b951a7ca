// The storage contract suite against the RocksDB backend.

#include <filesystem>
#include <map>
#include <memory>

#include "absl/time/clock.h"
#include "proto/time.h"
#include "rocksdb/db.h"
#include "storage/rocksdb/layout.h"
#include "storage/rocksdb/rocks_storage.h"
#include "storage/rocksdb/testing.h"
#include "tests/storage/contract.h"
#include "tests/testing/temp_dir.h"

namespace tellonce::storage::testing {
namespace {

// One temporary directory per test, kept until the test drops it.
std::map<std::string, std::unique_ptr<tellonce::testing::TempDir>>& Dirs() {
  static auto* dirs = new std::map<std::string, std::unique_ptr<tellonce::testing::TempDir>>();
  return *dirs;
}

absl::StatusOr<std::unique_ptr<Storage>> OpenRocks(const std::string& store) {
  auto& dir = Dirs()[store];
  if (dir == nullptr) dir = std::make_unique<tellonce::testing::TempDir>();
  return OpenRocksStorage({.path = dir->path() + "/db"});
}

INSTANTIATE_TEST_SUITE_P(RocksDb, StorageContractTest,
                         ::testing::Values(ContractBackend{
                             .name = "rocksdb",
                             .open = OpenRocks,
                             .drop = [](const std::string& store) { Dirs().erase(store); }}),
                         [](const auto& info) { return info.param.name; });

// Housekeeping of the RocksDB layout: a compaction drops the Active index entries of
// consents past their expiry (expiry is applied on read anyway) and keeps the others.
TEST(RocksLayoutTest, CompactionDropsActiveEntriesOfExpiredConsentsOnly) {
  tellonce::testing::TempDir dir;
  absl::StatusOr<std::unique_ptr<Storage>> opened =
      OpenRocksStorage({.path = dir.path() + "/db"});
  ASSERT_TRUE(opened.ok()) << opened.status();
  Storage& storage = **opened;
  auto record = [](const std::string& id, absl::Time expires) {
    StoredConsent r;
    Consent& c = *r.mutable_consent();
    c.set_consent_id(id);
    c.set_citizen_id("37605030299");
    c.set_consumer("tax");
    c.set_portal("portal");
    c.set_request_id("req-" + id);
    c.set_purpose("tax-return");
    c.add_attributes("person.name");
    c.set_mode(tellonce::v1::UNTIL_EXPIRY);
    c.set_status(tellonce::v1::ACTIVE);
    *c.mutable_captured_at() = ToProtoTime(absl::Now() - absl::Hours(48));
    *c.mutable_expires_at() = ToProtoTime(expires);
    return r;
  };
  ASSERT_TRUE(storage
                  .Run([&](Transaction& tx) -> absl::Status {
                    if (absl::Status s = tx.InsertConsent(record("C1", absl::Now() - absl::Hours(1)));
                        !s.ok()) {
                      return s;
                    }
                    return tx.InsertConsent(record("C2", absl::Now() + absl::Hours(24)));
                  })
                  .ok());
  rocks::Database* db = rocks::DatabaseOf(storage);
  ASSERT_NE(db, nullptr);
  rocksdb::ColumnFamilyHandle* indexes = db->family(rocks::Family::kIndexes);
  auto present = [&](const std::string& id) {
    std::string value;
    return db->db()
        ->Get(rocksdb::ReadOptions(), indexes, rocks::keys::Active("37605030299", "tax", id),
              &value)
        .ok();
  };
  ASSERT_TRUE(present("C1"));  // a flush alone does not filter
  ASSERT_TRUE(db->db()->Flush(rocksdb::FlushOptions(), indexes).ok());
  ASSERT_TRUE(db->db()->CompactRange(rocksdb::CompactRangeOptions(), indexes, nullptr, nullptr).ok());
  EXPECT_FALSE(present("C1"));
  EXPECT_TRUE(present("C2"));
  // The records themselves stay: the citizen's history still lists both.
  EXPECT_TRUE(storage.consents().Get("C1").ok());
  absl::StatusOr<std::vector<Consent>> active = storage.consents().Active("37605030299", "tax", 10);
  ASSERT_TRUE(active.ok()) << active.status();
  ASSERT_EQ(active->size(), 1u);
  EXPECT_EQ((*active)[0].consent_id(), "C2");
}

}  // namespace
}  // namespace tellonce::storage::testing
