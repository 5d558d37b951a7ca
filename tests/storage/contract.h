#ifndef TELLONCE_TESTS_STORAGE_CONTRACT_H_
#define TELLONCE_TESTS_STORAGE_CONTRACT_H_

// The storage contract suite: what every backend of storage/storage.h must do, written
// against the interfaces only. A backend's test file instantiates it:
//
//   INSTANTIATE_TEST_SUITE_P(RocksDb, StorageContractTest,
//                            ::testing::Values(ContractBackend{"rocksdb", OpenRocks}));
//
// and links contract_suite.cc.

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "storage/storage.h"

namespace tellonce::storage::testing {

struct ContractBackend {
  std::string name;
  // Opens the store named `store` (a name unique to one test): empty the first time;
  // the same data when opened again after the previous instance was destroyed.
  std::function<absl::StatusOr<std::unique_ptr<Storage>>(const std::string& store)> open;
  // Called once per test after every instance is destroyed (drop the database...).
  std::function<void(const std::string& store)> drop = [](const std::string&) {};
};

inline std::string PrintToString(const ContractBackend& backend) { return backend.name; }

class StorageContractTest : public ::testing::TestWithParam<ContractBackend> {
 protected:
  void SetUp() override;
  void TearDown() override;
  // Opens (or reopens) the test's store into storage_.
  void Open();
  // Destroys the instance without closing it first: what a crash leaves, as far as an
  // in-process test can tell (acknowledged writes must be there on reopening).
  void Drop();

  std::string name_;
  std::unique_ptr<Storage> storage_;
};

}  // namespace tellonce::storage::testing

#endif  // TELLONCE_TESTS_STORAGE_CONTRACT_H_
