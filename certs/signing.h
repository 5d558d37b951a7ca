#ifndef TELLONCE_CERTS_SIGNING_H_
#define TELLONCE_CERTS_SIGNING_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tellonce::certs {

// "ecdsa-p256-sha256": ECDSA over NIST P-256 of the SHA-256 digest, DER signature.
inline constexpr std::string_view kSignatureAlgorithm = "ecdsa-p256-sha256";

// A P-256 private key that signs. Immutable after construction; Sign is thread-safe.
class SigningKey {
 public:
  // Loads a PEM private key (PKCS#8 or SEC1). INVALID_ARGUMENT when it is not an
  // EC P-256 key; file errors name the path.
  static absl::StatusOr<SigningKey> FromPemFile(const std::string& path);
  static absl::StatusOr<SigningKey> FromPem(std::string_view pem);

  // DER-encoded ECDSA signature of SHA-256(data). INTERNAL on an OpenSSL failure.
  absl::StatusOr<std::string> Sign(std::string_view data) const;

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

  // OK when `signature` is a valid DER ECDSA signature of SHA-256(data) by this key;
  // UNAUTHENTICATED "signature does not verify" otherwise (malformed DER included).
  absl::Status Verify(std::string_view data, std::string_view signature) const;

 private:
  struct Impl;
  explicit VerifyingKey(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace tellonce::certs

#endif  // TELLONCE_CERTS_SIGNING_H_
