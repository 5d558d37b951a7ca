// Fuzzes consent receipt parsing and verification, on both sides that read receipts:
//  0. `tellonce receipt verify --receipt FILE` (the CLI: JSON file -> ConsentReceipt ->
//     algorithm, signature, body, issuer), the input being the file;
//  1. certs::VerifyReceipt on ConsentReceipt wire bytes (what a portal gets);
//  2. structure-aware: the input is a ReceiptBody's wire bytes, signed here with the
//     broker's key, so the parsing after a valid signature is reached.
// The first byte picks the path. Invariants: a receipt verifies only when its signature
// is the broker key's over its body as a receipt (never as another kind); a signed body
// verifies exactly when it parses; the CLI exits 0 only in that case too.

#include <cstddef>
#include <cstdint>
#include <string>

#include "certs/signed_messages.h"
#include "consent/registry.h"
#include "google/protobuf/util/json_util.h"
#include "tests/fuzz/cli_driver.h"

namespace {

using tellonce::fuzz::BrokerKeySet;
using tellonce::fuzz::BrokerSigningKey;
using tellonce::fuzz::FuzzDataPath;

int VerifyWithCli(std::string_view json) {
  const std::string path = tellonce::fuzz::WriteScratch("receipt.json", json);
  return tellonce::fuzz::RunTellonce({"receipt", "verify", "--receipt", path, "--broker-cert",
                                      FuzzDataPath("keys/broker.pem"), "--signing-keys",
                                      FuzzDataPath("keys/signing-keys")});
}

bool SignatureIsBrokers(const tellonce::v1::ConsentReceipt& receipt) {
  return BrokerKeySet()
      .Verify(tellonce::certs::SignedKind::kConsentReceipt, receipt.key_id(), receipt.body(),
              receipt.signature())
      .ok();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tellonce::fuzz::Input in(data, size);
  const uint8_t mode = in.Byte() % 3;
  const std::string_view bytes = in.Rest();
  if (mode == 0) {
    const int code = VerifyWithCli(bytes);
    FUZZ_CHECK(code == 0 || code == 1 || code == 2);
    if (code == 0) {
      tellonce::v1::ConsentReceipt receipt;
      FUZZ_CHECK(google::protobuf::util::JsonStringToMessage(std::string(bytes), &receipt).ok());
      FUZZ_CHECK(SignatureIsBrokers(receipt));
      tellonce::v1::ReceiptBody body;
      FUZZ_CHECK(body.ParseFromString(receipt.body()));
      FUZZ_CHECK(body.issuer() == tellonce::fuzz::kBrokerId);
    }
    return 0;
  }
  if (mode == 1) {
    tellonce::v1::ConsentReceipt receipt;
    if (!receipt.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return 0;
    absl::StatusOr<tellonce::v1::ReceiptBody> body =
        tellonce::certs::VerifyReceipt(receipt, BrokerKeySet());
    if (body.ok()) FUZZ_CHECK(SignatureIsBrokers(receipt));
    return 0;
  }
  // A body the broker's key signed: verifies exactly when it parses, and through the CLI
  // (as JSON) exactly when it also names the broker as issuer.
  absl::StatusOr<tellonce::v1::ConsentReceipt> receipt = [&] {
    tellonce::v1::ConsentReceipt r;
    absl::StatusOr<std::string> signature =
        BrokerSigningKey().Sign(tellonce::certs::SignedKind::kConsentReceipt, bytes);
    if (!signature.ok()) return absl::StatusOr<tellonce::v1::ConsentReceipt>(signature.status());
    r.set_body(std::string(bytes));
    r.set_signature(*signature);
    r.set_signature_algorithm(std::string(tellonce::certs::kSignatureAlgorithm));
    r.set_key_id(tellonce::fuzz::kSigningKeyId);
    return absl::StatusOr<tellonce::v1::ConsentReceipt>(r);
  }();
  FUZZ_CHECK(receipt.ok());
  tellonce::v1::ReceiptBody parsed;
  const bool parses = parsed.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
  absl::StatusOr<tellonce::v1::ReceiptBody> body =
      tellonce::certs::VerifyReceipt(*receipt, BrokerKeySet());
  FUZZ_CHECK(body.ok() == parses);
  if (!body.ok()) FUZZ_CHECK(body.status().code() == absl::StatusCode::kInvalidArgument);
  // The same signature must not pass as a checkpoint's (domain separation).
  FUZZ_CHECK(!BrokerKeySet()
                  .Verify(tellonce::certs::SignedKind::kCheckpoint, receipt->key_id(),
                          receipt->body(), receipt->signature())
                  .ok());
  std::string json;
  FUZZ_CHECK(google::protobuf::util::MessageToJsonString(*receipt, &json).ok());
  const int code = VerifyWithCli(json);
  FUZZ_CHECK(code == ((parses && parsed.issuer() == tellonce::fuzz::kBrokerId) ? 0 : 1));
  return 0;
}
