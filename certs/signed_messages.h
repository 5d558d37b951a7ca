#ifndef TELLONCE_CERTS_SIGNED_MESSAGES_H_
#define TELLONCE_CERTS_SIGNED_MESSAGES_H_

// What the broker signs and anyone verifies, in one place: consent receipts and
// access-log checkpoints. Signed as the body's deterministic serialization
// (proto/serialize.h), kept as those bytes, with a signature over
// SignatureContext(kind) || body (signing.h), the algorithm and the key id next to it.
// Used by the consent registry (receipts), the transparency log (checkpoints) and
// `tellonce receipt verify` / `tellonce audit` (offline). Pure; thread-safe.

#include "absl/status/statusor.h"
#include "certs/signing.h"
#include "tellonce/v1/consent.pb.h"
#include "tellonce/v1/transparency.pb.h"

namespace tellonce::certs {

// `body` signed with `key` as a SignedKind::kConsentReceipt, naming the key by its id.
// INTERNAL when OpenSSL fails to sign.
absl::StatusOr<tellonce::v1::ConsentReceipt> SignReceipt(const tellonce::v1::ReceiptBody& body,
                                                         const SigningKey& key);
// `body` signed with `key` as a SignedKind::kCheckpoint, naming the key by its id.
// INTERNAL when OpenSSL fails to sign.
absl::StatusOr<tellonce::v1::SignedCheckpoint> SignCheckpoint(const tellonce::v1::Checkpoint& body,
                                                              const SigningKey& key);

// The body of `receipt`, once its signature verifies as a receipt's:
//  - UNAUTHENTICATED "signature_algorithm: unsupported, expected ecdsa-p256-sha256" for
//    another algorithm;
//  - UNAUTHENTICATED from the key (signing.h) when the signature does not verify (a
//    checkpoint's signature over the same bytes included) or, for a key set, when no
//    key has the receipt's key id;
//  - INVALID_ARGUMENT "body: not a receipt" when the signed bytes do not parse.
// With a single key, the key id is not looked at.
absl::StatusOr<tellonce::v1::ReceiptBody> VerifyReceipt(const tellonce::v1::ConsentReceipt& receipt,
                                                        const VerifyingKeySet& keys);
absl::StatusOr<tellonce::v1::ReceiptBody> VerifyReceipt(const tellonce::v1::ConsentReceipt& receipt,
                                                        const VerifyingKey& key);

// The body of `checkpoint`, once its signature verifies as a checkpoint's, with the
// errors of VerifyReceipt ("body: not a checkpoint"). Who issued it and whether its
// root is well formed are the caller's to check.
absl::StatusOr<tellonce::v1::Checkpoint> VerifyCheckpoint(
    const tellonce::v1::SignedCheckpoint& checkpoint, const VerifyingKeySet& keys);

}  // namespace tellonce::certs

#endif  // TELLONCE_CERTS_SIGNED_MESSAGES_H_
