#include "certs/signed_messages.h"

#include <string>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "proto/serialize.h"

namespace tellonce::certs {
namespace {

// The fields every signed message carries.
struct Signed {
  std::string body;
  std::string signature;
};

absl::StatusOr<Signed> SignBody(SignedKind kind, const google::protobuf::MessageLite& body,
                                const SigningKey& key) {
  Signed out;
  out.body = SerializeDeterministic(body);
  absl::StatusOr<std::string> signature = key.Sign(kind, out.body);
  if (!signature.ok()) return signature.status();
  out.signature = *std::move(signature);
  return out;
}

// The one verification of a signed message: algorithm, signature (by `verify`), then
// the body parsed into `parsed`, named `what` in the error.
absl::Status VerifyBody(std::string_view algorithm, std::string_view body,
                        absl::FunctionRef<absl::Status()> verify,
                        google::protobuf::MessageLite* parsed, const char* what) {
  if (algorithm != kSignatureAlgorithm) {
    return absl::UnauthenticatedError(absl::StrCat("signature_algorithm: unsupported, expected ",
                                                   std::string(kSignatureAlgorithm)));
  }
  if (absl::Status verified = verify(); !verified.ok()) return verified;
  if (!parsed->ParseFromArray(body.data(), static_cast<int>(body.size()))) {
    return absl::InvalidArgumentError(absl::StrCat("body: not a ", what));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<tellonce::v1::ConsentReceipt> SignReceipt(const tellonce::v1::ReceiptBody& body,
                                                         const SigningKey& key) {
  absl::StatusOr<Signed> s = SignBody(SignedKind::kConsentReceipt, body, key);
  if (!s.ok()) return s.status();
  tellonce::v1::ConsentReceipt receipt;
  receipt.set_body(std::move(s->body));
  receipt.set_signature(std::move(s->signature));
  receipt.set_signature_algorithm(std::string(kSignatureAlgorithm));
  receipt.set_key_id(key.key_id());
  return receipt;
}

absl::StatusOr<tellonce::v1::SignedCheckpoint> SignCheckpoint(const tellonce::v1::Checkpoint& body,
                                                              const SigningKey& key) {
  absl::StatusOr<Signed> s = SignBody(SignedKind::kCheckpoint, body, key);
  if (!s.ok()) return s.status();
  tellonce::v1::SignedCheckpoint checkpoint;
  checkpoint.set_body(std::move(s->body));
  checkpoint.set_signature(std::move(s->signature));
  checkpoint.set_signature_algorithm(std::string(kSignatureAlgorithm));
  checkpoint.set_key_id(key.key_id());
  return checkpoint;
}

absl::StatusOr<tellonce::v1::ReceiptBody> VerifyReceipt(const tellonce::v1::ConsentReceipt& receipt,
                                                        const VerifyingKeySet& keys) {
  tellonce::v1::ReceiptBody body;
  absl::Status s = VerifyBody(
      receipt.signature_algorithm(), receipt.body(),
      [&] {
        return keys.Verify(SignedKind::kConsentReceipt, receipt.key_id(), receipt.body(),
                           receipt.signature());
      },
      &body, "receipt");
  if (!s.ok()) return s;
  return body;
}

absl::StatusOr<tellonce::v1::ReceiptBody> VerifyReceipt(const tellonce::v1::ConsentReceipt& receipt,
                                                        const VerifyingKey& key) {
  tellonce::v1::ReceiptBody body;
  absl::Status s = VerifyBody(
      receipt.signature_algorithm(), receipt.body(),
      [&] { return key.Verify(SignedKind::kConsentReceipt, receipt.body(), receipt.signature()); },
      &body, "receipt");
  if (!s.ok()) return s;
  return body;
}

absl::StatusOr<tellonce::v1::Checkpoint> VerifyCheckpoint(
    const tellonce::v1::SignedCheckpoint& checkpoint, const VerifyingKeySet& keys) {
  tellonce::v1::Checkpoint body;
  absl::Status s = VerifyBody(
      checkpoint.signature_algorithm(), checkpoint.body(),
      [&] {
        return keys.Verify(SignedKind::kCheckpoint, checkpoint.key_id(), checkpoint.body(),
                           checkpoint.signature());
      },
      &body, "checkpoint");
  if (!s.ok()) return s;
  return body;
}

}  // namespace tellonce::certs
