// Fuzzes the other offline log reader of `tellonce audit verify`: --data-dir, a copy of
// the broker's RocksDB data directory (cli::ReadDataDirectory), and what it feeds
// (cli::VerifyLog). Each input becomes a fresh data directory made by the broker's own
// storage::OpenRocksStorage, holding the records the input describes (written under the
// keys of storage/rocksdb/layout.h, through the raw database, so malformed ones too),
// then closed and read back as the CLI does (read-only). The input:
//   byte 0     how the checkpoint is made (bit 0 set: the reference root of the events
//              read back, else the next 32 bytes), as in audit_log_fuzz.cc;
//   bytes 1-2  the checkpoint's size, modulo (events read back + 3);
//   then records, each a kind byte and its fields:
//     0 event      "e" <index: 1 byte, big-endian 8> -> value (2-byte length + bytes)
//     1 subtree    "n" <level: 1 byte> <index: 1 byte, big-endian 8> -> 32 bytes
//     2 checkpoint "c" <size: 1 byte> -> value
//     3 metadata   access_log.size -> value
//     4 raw        key -> value in the access_log family (any key: malformed ones too)
// Invariants: reading fails only with DATA_LOSS (a malformed record) naming the path; an
// OK verdict means events 0..size-1 in order whose leaf hashes reproduce the root; the
// CLI exits 0 exactly when the verdict is OK.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "certs/merkle.h"
#include "cli/audit.h"
#include "proto/time.h"
#include "storage/rocksdb/layout.h"
#include "storage/rocksdb/rocks_storage.h"
#include "storage/rocksdb/testing.h"
#include "tests/fuzz/cli_driver.h"

namespace {

using tellonce::certs::Hash;
using tellonce::storage::rocks::Family;
namespace keys = tellonce::storage::rocks::keys;

Hash ReferenceRoot(const std::vector<std::string>& leaves, size_t begin, size_t end) {
  if (end == begin) return tellonce::certs::EmptyTreeHash();
  if (end - begin == 1) return tellonce::certs::LeafHash(leaves[begin]);
  size_t k = 1;
  while (k * 2 < end - begin) k *= 2;
  return tellonce::certs::NodeHash(ReferenceRoot(leaves, begin, begin + k),
                                   ReferenceRoot(leaves, begin + k, end));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tellonce::fuzz::Input in(data, size);
  const uint8_t how = in.Byte();
  const uint16_t size_selector = in.Integer<uint16_t>();
  Hash given_root{};
  if ((how & 1) == 0) {
    for (unsigned char& b : given_root) b = in.Byte();
  }
  const std::string path = tellonce::fuzz::ScratchDir() + "/data";
  std::filesystem::remove_all(path);
  {
    absl::StatusOr<std::unique_ptr<tellonce::storage::Storage>> storage =
        tellonce::storage::OpenRocksStorage({.path = path, .block_cache_mb = 1});
    FUZZ_CHECK(storage.ok());
    tellonce::storage::rocks::Database* db = tellonce::storage::rocks::DatabaseOf(**storage);
    FUZZ_CHECK(db != nullptr);
    rocksdb::WriteBatch batch;
    rocksdb::ColumnFamilyHandle* log = db->family(Family::kAccessLog);
    for (int records = 0; in.remaining() > 0 && records < 64; ++records) {
      switch (in.Byte() % 5) {
        case 0: {
          const uint64_t index = in.Byte();
          batch.Put(log, keys::Event(index), in.String(256));
          break;
        }
        case 1: {
          const int level = in.Byte();
          const std::string key = keys::Node(level, in.Byte());
          std::string hash;
          for (int i = 0; i < 32; ++i) hash.push_back(static_cast<char>(in.Byte()));
          batch.Put(log, key, hash);
          break;
        }
        case 2:
          batch.Put(log, keys::Checkpoint(in.Byte()), in.String(512));
          break;
        case 3:
          batch.Put(db->family(Family::kMeta), keys::kAccessLogSize, in.String(24));
          break;
        case 4: {
          const std::string key = in.String(16);
          batch.Put(log, key, in.String(64));
          break;
        }
      }
    }
    FUZZ_CHECK(db->db()->Write(rocksdb::WriteOptions(), &batch).ok());
    (*storage)->Close();
  }
  absl::StatusOr<tellonce::cli::LogCopy> copy = tellonce::cli::ReadDataDirectory(path);
  if (!copy.ok()) {
    FUZZ_CHECK_STATUS(copy.status().code() == absl::StatusCode::kDataLoss, copy.status());
    FUZZ_CHECK(copy.status().message().find(path) == 0);
    return 0;
  }
  const uint64_t tree_size = size_selector % (copy->events.size() + 3);
  std::vector<std::string> leaves;
  for (size_t i = 0; i < copy->events.size() && i < tree_size; ++i) {
    leaves.push_back(copy->events[i].bytes);
  }
  tellonce::cli::TreeHead head{tree_size, given_root};
  if ((how & 1) != 0) head.root = ReferenceRoot(leaves, 0, leaves.size());
  tellonce::cli::LogVerdict verdict = tellonce::cli::VerifyLog(*copy, head, {});
  if (verdict.ok) {
    FUZZ_CHECK(copy->events.size() >= tree_size);
    for (uint64_t i = 0; i < tree_size; ++i) FUZZ_CHECK(copy->events[i].index == i);
    FUZZ_CHECK(ReferenceRoot(leaves, 0, leaves.size()) == head.root);
  } else {
    FUZZ_CHECK(!verdict.reason.empty());
  }

  tellonce::v1::Checkpoint body;
  body.set_issuer(tellonce::fuzz::kBrokerId);
  body.set_tree_size(tree_size);
  body.set_root_hash(std::string(head.root.begin(), head.root.end()));
  *body.mutable_signed_at() = tellonce::ToProtoTime(tellonce::fuzz::kNow);
  tellonce::v1::SignedCheckpoint signed_checkpoint;
  signed_checkpoint.set_body(body.SerializeAsString());
  absl::StatusOr<std::string> signature = tellonce::fuzz::BrokerSigningKey().Sign(
      tellonce::certs::SignedKind::kCheckpoint, signed_checkpoint.body());
  FUZZ_CHECK(signature.ok());
  signed_checkpoint.set_signature(*signature);
  signed_checkpoint.set_signature_algorithm(std::string(tellonce::certs::kSignatureAlgorithm));
  signed_checkpoint.set_key_id(tellonce::fuzz::kSigningKeyId);
  const std::string checkpoint_path =
      tellonce::fuzz::WriteScratch("data.checkpoint", signed_checkpoint.SerializeAsString());
  const int exit_code = tellonce::fuzz::RunTellonce(
      {"audit", "verify", "--data-dir", path, "--checkpoint", checkpoint_path, "--broker-cert",
       tellonce::fuzz::FuzzDataPath("keys/broker.pem"), "--signing-keys",
       tellonce::fuzz::FuzzDataPath("keys/signing-keys")});
  FUZZ_CHECK(exit_code == (verdict.ok ? 0 : 1));
  return 0;
}
