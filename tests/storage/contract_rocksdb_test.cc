// The storage contract suite against the RocksDB backend.

#include <filesystem>
#include <map>
#include <memory>

#include "storage/rocksdb/rocks_storage.h"
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

}  // namespace
}  // namespace tellonce::storage::testing
