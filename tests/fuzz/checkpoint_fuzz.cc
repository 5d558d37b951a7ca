// Fuzzes signed checkpoint parsing and verification (cli::VerifyCheckpoint,
// cli::ToTreeHead) and the CLI's reading of a checkpoint file (`tellonce audit prove
// --old FILE --new FILE`, which works offline when both are the same file):
//  0. the input is a SignedCheckpoint's wire bytes (the file an operator is handed);
//  1. structure-aware: the input is a Checkpoint body's wire bytes, signed here with the
//     broker's key, so the checks after a valid signature are reached.
// The first byte picks the path. Invariants: a checkpoint is accepted only with the
// broker key's signature as a checkpoint (never as a receipt), from the broker named by
// the certificate, with a 32-byte root; a signed body is accepted exactly when that
// holds; the CLI exits 0 only for an accepted checkpoint (whose root, for size 0, is the
// empty tree's).

#include <cstddef>
#include <cstdint>
#include <string>

#include "certs/merkle.h"
#include "cli/audit.h"
#include "tests/fuzz/cli_driver.h"

namespace {

using tellonce::fuzz::BrokerKeySet;
using tellonce::fuzz::FuzzDataPath;
using tellonce::fuzz::kBrokerId;

void Check(const tellonce::v1::SignedCheckpoint& signed_checkpoint) {
  absl::StatusOr<tellonce::v1::Checkpoint> checkpoint =
      tellonce::cli::VerifyCheckpoint(signed_checkpoint, BrokerKeySet(), kBrokerId);
  if (checkpoint.ok()) {
    FUZZ_CHECK(BrokerKeySet()
                   .Verify(tellonce::certs::SignedKind::kCheckpoint, signed_checkpoint.key_id(),
                           signed_checkpoint.body(), signed_checkpoint.signature())
                   .ok());
    FUZZ_CHECK(checkpoint->issuer() == kBrokerId);
    FUZZ_CHECK(tellonce::cli::ToTreeHead(*checkpoint).ok());
  } else {
    const absl::StatusCode code = checkpoint.status().code();
    FUZZ_CHECK(code == absl::StatusCode::kInvalidArgument ||
               code == absl::StatusCode::kUnauthenticated);
  }
  const std::string path =
      tellonce::fuzz::WriteScratch("checkpoint.bin", signed_checkpoint.SerializeAsString());
  const int exit_code = tellonce::fuzz::RunTellonce(
      {"audit", "prove", "--old", path, "--new", path, "--broker-cert",
       FuzzDataPath("keys/broker.pem"), "--signing-keys", FuzzDataPath("keys/signing-keys")});
  FUZZ_CHECK(exit_code == 0 || exit_code == 1 || exit_code == 2);
  if (exit_code == 0) {
    FUZZ_CHECK(checkpoint.ok());
    if (checkpoint->tree_size() == 0) {
      FUZZ_CHECK(tellonce::cli::ToTreeHead(*checkpoint)->root == tellonce::certs::EmptyTreeHash());
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tellonce::fuzz::Input in(data, size);
  const uint8_t mode = in.Byte() % 2;
  const std::string_view bytes = in.Rest();
  tellonce::v1::SignedCheckpoint signed_checkpoint;
  if (mode == 0) {
    // What the file holds, parsed the way the CLI does (ParseFromString on the file).
    if (!signed_checkpoint.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return 0;
    Check(signed_checkpoint);
    return 0;
  }
  absl::StatusOr<std::string> signature =
      tellonce::fuzz::BrokerSigningKey().Sign(tellonce::certs::SignedKind::kCheckpoint, bytes);
  FUZZ_CHECK(signature.ok());
  signed_checkpoint.set_body(std::string(bytes));
  signed_checkpoint.set_signature(*signature);
  signed_checkpoint.set_signature_algorithm(std::string(tellonce::certs::kSignatureAlgorithm));
  signed_checkpoint.set_key_id(tellonce::fuzz::kSigningKeyId);
  tellonce::v1::Checkpoint body;
  const bool well_formed = body.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) &&
                           body.issuer() == kBrokerId && body.root_hash().size() == 32;
  FUZZ_CHECK(tellonce::cli::VerifyCheckpoint(signed_checkpoint, BrokerKeySet(), kBrokerId).ok() ==
             well_formed);
  // Domain separation: a checkpoint signature is no receipt signature.
  FUZZ_CHECK(!BrokerKeySet()
                  .Verify(tellonce::certs::SignedKind::kConsentReceipt, signed_checkpoint.key_id(),
                          signed_checkpoint.body(), signed_checkpoint.signature())
                  .ok());
  Check(signed_checkpoint);
  return 0;
}
