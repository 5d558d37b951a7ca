#ifndef TELLONCE_CERTS_SIGNING_H_
#define TELLONCE_CERTS_SIGNING_H_

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tellonce::certs {

// "ecdsa-p256-sha256": ECDSA over NIST P-256 of the SHA-256 digest, DER signature.
inline constexpr std::string_view kSignatureAlgorithm = "ecdsa-p256-sha256";

// The kinds of message the broker signs. Every signature covers
// SignatureContext(kind) || data, so that a signature made for one kind never
// verifies as another (a receipt as a checkpoint, say): domain separation.
enum class SignedKind {
  kConsentReceipt,  // "tellonce-receipt-v1\0"
  kCheckpoint,      // "tellonce-checkpoint-v1\0"
};

// The context string that starts every signed payload of `kind`, its NUL included.
std::string_view SignatureContext(SignedKind kind);

// OK when `key_id` can name a signing key: 1..64 of [A-Za-z0-9._-]. Otherwise
// INVALID_ARGUMENT "key id: ...".
absl::Status CheckKeyId(std::string_view key_id);

// A P-256 private key that signs, and its key id. Immutable after construction; Sign
// is thread-safe.
class SigningKey {
 public:
  // Loads a PEM private key (PKCS#8 or SEC1). INVALID_ARGUMENT when it is not an
  // EC P-256 key or `key_id` is not a valid key id (an empty one is allowed, for
  // tests); file errors name the path.
  static absl::StatusOr<SigningKey> FromPemFile(const std::string& path,
                                                std::string_view key_id = "");
  static absl::StatusOr<SigningKey> FromPem(std::string_view pem, std::string_view key_id = "");

  // DER-encoded ECDSA signature of SHA-256(SignatureContext(kind) || data). INTERNAL
  // on an OpenSSL failure.
  absl::StatusOr<std::string> Sign(SignedKind kind, std::string_view data) const;

  // The name of this key, written next to its signatures.
  const std::string& key_id() const;

  // The matching public key as PEM (SubjectPublicKeyInfo).
  std::string PublicKeyPem() const;

 private:
  struct Impl;
  explicit SigningKey(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

// A P-256 public key that verifies. Immutable; Verify is thread-safe.
class VerifyingKey {
 public:
  // From a PEM certificate (the broker's). INVALID_ARGUMENT when not EC P-256.
  static absl::StatusOr<VerifyingKey> FromCertificatePem(std::string_view pem);
  static absl::StatusOr<VerifyingKey> FromCertificatePemFile(const std::string& path);
  // From a PEM SubjectPublicKeyInfo.
  static absl::StatusOr<VerifyingKey> FromPublicKeyPem(std::string_view pem);

  static absl::StatusOr<VerifyingKey> FromPublicKeyPemFile(const std::string& path);

  // OK when `signature` is a valid DER ECDSA signature by this key of
  // SHA-256(SignatureContext(kind) || data); UNAUTHENTICATED "signature does not
  // verify" otherwise (malformed DER, or a signature of another kind, included).
  absl::Status Verify(SignedKind kind, std::string_view data, std::string_view signature) const;

 private:
  struct Impl;
  explicit VerifyingKey(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

// The public signing keys a verifier trusts, by key id: the current key and those
// before or after it, so the broker's signing key can be rotated without breaking
// verification of what the old key signed. Immutable after loading; thread-safe.
class VerifyingKeySet {
 public:
  VerifyingKeySet() = default;

  // Every "<key_id>.pem" (PEM SubjectPublicKeyInfo) in `dir`; the file name minus
  // ".pem" is the key id. Other files are ignored. INVALID_ARGUMENT naming the file
  // when one does not load or is not named by a valid key id; NOT_FOUND when `dir`
  // holds no key.
  static absl::StatusOr<VerifyingKeySet> FromDirectory(const std::string& dir);

  // Adds (or replaces) the key named `key_id`. INVALID_ARGUMENT on a bad key id.
  absl::Status Add(std::string_view key_id, VerifyingKey key);

  // OK when the key named `key_id` verifies `signature` over `data` as `kind`.
  // UNAUTHENTICATED "signature does not verify" when it does not, and
  // UNAUTHENTICATED "key id \"<id>\" is not in the key set" when no key has that id.
  absl::Status Verify(SignedKind kind, std::string_view key_id, std::string_view data,
                      std::string_view signature) const;

  size_t size() const { return keys_.size(); }

 private:
  std::map<std::string, VerifyingKey, std::less<>> keys_;
};

}  // namespace tellonce::certs

#endif  // TELLONCE_CERTS_SIGNING_H_
