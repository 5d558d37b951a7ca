// Fuzzes the offline log reader of `tellonce audit verify --log FILE` (cli::ReadExportFile)
// and the verification it feeds (cli::VerifyLog), structure-aware: the input is
//   byte 0     how the checkpoint is made: bit 0 set: its root is the reference root of
//              the copy's own events (so the "OK" paths are reached); clear: the root is
//              the next 32 bytes;
//   bytes 1-2  the checkpoint's size, modulo (events in the copy + 3);
//   the rest   the export file (delimited AccessLogExportHeader, then ExportedEvent records).
// The checkpoint is signed here with the broker's key, and the same file is also checked
// through the CLI (`audit verify --log FILE --checkpoint CP`). Invariants: an OK verdict
// means the copy holds events 0..size-1, in order, whose leaf hashes reproduce the signed
// root (computed here from RFC 6962's definition); a failed verdict names a reason and a
// bad index inside the checkpoint (or a range within it); the CLI exits 0 exactly when
// the verdict is OK.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "certs/merkle.h"
#include "cli/audit.h"
#include "proto/time.h"
#include "tests/fuzz/cli_driver.h"

namespace {

using tellonce::certs::Hash;

// MTH(D[begin:end]) straight from RFC 6962 2.1.
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
  const std::string path = tellonce::fuzz::WriteScratch("log.export", in.Rest());
  absl::StatusOr<tellonce::cli::LogCopy> copy = tellonce::cli::ReadExportFile(path);
  if (!copy.ok()) {
    FUZZ_CHECK(copy.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(copy.status().message().find(path) == 0);
    return 0;
  }
  const uint64_t tree_size = size_selector % (copy->events.size() + 3);
  // The events at positions 0..tree_size-1 of the copy, whatever their numbering.
  std::vector<std::string> leaves;
  for (size_t i = 0; i < copy->events.size() && i < tree_size; ++i) {
    leaves.push_back(copy->events[i].bytes);
  }
  tellonce::cli::TreeHead head{tree_size, given_root};
  if ((how & 1) != 0) head.root = ReferenceRoot(leaves, 0, leaves.size());

  tellonce::cli::LogVerdict verdict = tellonce::cli::VerifyLog(*copy, head, {});
  FUZZ_CHECK(verdict.tree_size == tree_size);
  if (verdict.ok) {
    FUZZ_CHECK(copy->events.size() >= tree_size);
    for (uint64_t i = 0; i < tree_size; ++i) FUZZ_CHECK(copy->events[i].index == i);
    FUZZ_CHECK(leaves.size() == tree_size);
    FUZZ_CHECK(ReferenceRoot(leaves, 0, leaves.size()) == head.root);
  } else {
    if (std::getenv("FUZZ_VERBOSE") != nullptr) {
      std::fprintf(stderr, "size %llu, events %zu: %s\n",
                   static_cast<unsigned long long>(tree_size), copy->events.size(),
                   verdict.Summary().c_str());
      for (const auto& e : copy->events)
        std::fprintf(stderr, "  event index %llu\n", static_cast<unsigned long long>(e.index));
    }
    FUZZ_CHECK(!verdict.reason.empty());
    if (verdict.first_bad.has_value()) {
      FUZZ_CHECK(*verdict.first_bad < tree_size || tree_size == 0);
    } else {
      FUZZ_CHECK(verdict.bad_from <= verdict.bad_to && verdict.bad_to <= tree_size);
    }
  }
  FUZZ_CHECK(!verdict.Summary().empty());

  // The same through the CLI, with the checkpoint signed by the broker's key.
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
      tellonce::fuzz::WriteScratch("log.checkpoint", signed_checkpoint.SerializeAsString());
  const int exit_code = tellonce::fuzz::RunTellonce(
      {"audit", "verify", "--log", path, "--checkpoint", checkpoint_path, "--broker-cert",
       tellonce::fuzz::FuzzDataPath("keys/broker.pem"), "--signing-keys",
       tellonce::fuzz::FuzzDataPath("keys/signing-keys")});
  FUZZ_CHECK(exit_code == (verdict.ok ? 0 : 1));
  return 0;
}
