#ifndef TELLONCE_STORAGE_ROCKSDB_TESTING_H_
#define TELLONCE_STORAGE_ROCKSDB_TESTING_H_

#include "storage/rocksdb/database.h"
#include "storage/storage.h"

namespace tellonce::storage::rocks {

// For tests of the RocksDB layout only (they read and damage keys directly): the
// database under a storage made by OpenRocksStorage; null for any other storage.
Database* DatabaseOf(Storage& storage);

}  // namespace tellonce::storage::rocks

#endif  // TELLONCE_STORAGE_ROCKSDB_TESTING_H_
