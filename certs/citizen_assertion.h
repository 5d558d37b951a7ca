#ifndef TELLONCE_CERTS_CITIZEN_ASSERTION_H_
#define TELLONCE_CERTS_CITIZEN_ASSERTION_H_

// Citizen assertions: OpenID Connect ID tokens (compact JWS, RFC 7515/7519) from a
// citizen identity provider, forwarded by a portal to prove that the citizen it acts
// for has just authenticated. Verification uses OpenSSL for the signature and
// protobuf's JSON parser (google.protobuf.Struct) for header and claims.
//
// The algorithm is never chosen by the token: the verifier's policy lists the allowed
// algorithms (ES256, RS256), and the key named by the token's `kid` must be of the type
// that algorithm needs. "none", HMAC and anything else are refused.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tellonce::certs {

// The only JWS algorithms a citizen assertion may use.
enum class JwsAlgorithm { kES256, kRS256 };

// "ES256" / "RS256"; std::nullopt for anything else ("none", "HS256", "es256"...).
std::optional<JwsAlgorithm> ParseJwsAlgorithm(std::string_view name);
std::string_view JwsAlgorithmName(JwsAlgorithm algorithm);

// The gRPC request metadata key that carries a citizen's ID token on citizen-bound
// calls (lower case, as gRPC requires).
inline constexpr char kCitizenAssertionMetadataKey[] = "tellonce-citizen-assertion";

// Longest token accepted, in bytes; longer input is refused before any parsing.
inline constexpr size_t kMaxCitizenAssertionBytes = 8 * 1024;
// Longest JWKS file accepted.
inline constexpr size_t kMaxJwksBytes = 256 * 1024;

// base64url without padding (RFC 7515 section 2).
std::string Base64UrlEncode(std::string_view data);
// Strict: only the base64url alphabet, no padding, no whitespace, and the unused low
// bits of the last character zero (one encoding per value). std::nullopt otherwise.
std::optional<std::string> Base64UrlDecode(std::string_view text);

// The public signing keys of one identity provider (a JWK Set, RFC 7517), by key id.
// Accepted keys: kty "EC" with crv "P-256", and kty "RSA" of at least 2048 bits; each
// needs a unique "kid"; "use", when present, must be "sig"; "alg", when present, pins
// the key to that algorithm. Immutable; copies share the keys; thread-safe.
class Jwks {
 public:
  // An empty set: verifies nothing.
  Jwks();
  // INVALID_ARGUMENT naming the key ("keys[1].x: ...") when the set is malformed or
  // holds a key of an unsupported type. An empty set is an error.
  static absl::StatusOr<Jwks> Parse(std::string_view json);
  // Parse of the file's contents; errors are prefixed with the path.
  static absl::StatusOr<Jwks> FromFile(const std::string& path);

  size_t size() const;

  struct Key;
  // nullptr when no key has `kid`.
  const Key* Find(std::string_view kid) const;

 private:
  struct Keys;
  explicit Jwks(std::shared_ptr<const Keys> keys) : keys_(std::move(keys)) {}
  std::shared_ptr<const Keys> keys_;
};

// What a verifier accepts from one identity provider for one audience.
struct CitizenAssertionPolicy {
  // Must equal the token's "iss" exactly.
  std::string issuer;
  // Must appear in the token's "aud" (a string or an array of strings): the portal's
  // client id.
  std::string audience;
  // Algorithms the provider signs with; the token's "alg" must be one of them.
  std::vector<JwsAlgorithm> algorithms;
  // The claim holding the citizen id (a string).
  std::string citizen_claim = "sub";
  // Oldest "iat" accepted: the citizen authenticated at most this long ago.
  absl::Duration max_age = absl::Minutes(15);
  // Tolerated clock difference for exp, nbf and iat.
  absl::Duration clock_skew = absl::Seconds(60);
  // When not empty, the token's "nonce" must equal it (OpenID Connect Core 3.1.3.7): a
  // relying party checks it at sign-in against the nonce of its authorization request.
  // The broker leaves it empty (it never saw the request).
  std::string nonce;
};

// What a verified token says, kept as evidence.
struct VerifiedCitizenAssertion {
  std::string issuer;
  std::string citizen_id;
  // The token's "jti"; empty when it has none.
  std::string token_id;
  // Lower-case hex SHA-256 of the whole token.
  std::string token_sha256;
  absl::Time issued_at;
  // The token's "exp".
  absl::Time expires_at;
};

// Verifies `token` against `keys` and `policy` at `now`, and that its citizen claim is
// `citizen_id`. Returns the evidence, or:
//  - UNAUTHENTICATED "citizen assertion: <reason>" when the token is malformed, too
//    long, names an unknown key, uses an algorithm not allowed or not matching the
//    key, does not verify, names another issuer, is expired, not yet valid, or older
//    than max_age;
//  - PERMISSION_DENIED "citizen assertion: <reason>" when it is genuine but for
//    another audience or another citizen.
// Reasons never echo claim values. Thread-safe.
absl::StatusOr<VerifiedCitizenAssertion> VerifyCitizenAssertion(
    std::string_view token, const Jwks& keys, const CitizenAssertionPolicy& policy,
    std::string_view citizen_id, absl::Time now);

// VerifyCitizenAssertion for a relying party at sign-in, which does not know the citizen
// in advance: the same checks (nonce included when the policy names one) and errors,
// with the citizen id read from policy.citizen_claim. Thread-safe.
absl::StatusOr<VerifiedCitizenAssertion> VerifyIdToken(std::string_view token, const Jwks& keys,
                                                       const CitizenAssertionPolicy& policy,
                                                       absl::Time now);

// The "iss" claim of `token`, NOT verified: only to choose which provider's keys to
// verify it with. UNAUTHENTICATED when the token is malformed or has no issuer.
absl::StatusOr<std::string> UnverifiedIssuer(std::string_view token);

// What a dev identity provider puts in a token it mints.
struct CitizenAssertionClaims {
  std::string issuer;
  std::string audience;
  std::string citizen_claim = "sub";
  std::string citizen_id;
  absl::Time issued_at = absl::Now();
  absl::Duration lifetime = absl::Minutes(5);
  // "jti"; a random one when empty.
  std::string token_id;
  // "nonce" (OpenID Connect); none when empty.
  std::string nonce;
};

// A development identity provider's signing key: mints ID tokens for tests, the demo
// and `tellonce --dev-idp-key`. Not for production (a real eID service signs those).
// Immutable; thread-safe.
class CitizenAssertionSigner {
 public:
  // A PEM private key: EC P-256 (signs ES256) or RSA >= 2048 bits (signs RS256).
  // `kid` names it in the JWKS and in token headers.
  static absl::StatusOr<CitizenAssertionSigner> FromPem(std::string_view pem, std::string kid);
  // Reads the key from `path`; the kid is the file's base name without extension
  // unless `kid` is given.
  static absl::StatusOr<CitizenAssertionSigner> FromPemFile(const std::string& path,
                                                            std::string kid = "");
  // A fresh P-256 key (tests).
  static absl::StatusOr<CitizenAssertionSigner> GenerateEs256(std::string kid);
  static absl::StatusOr<CitizenAssertionSigner> GenerateRs256(std::string kid);

  // A signed compact JWS: header {"alg","kid","typ":"JWT"}, the claims above.
  absl::StatusOr<std::string> Mint(const CitizenAssertionClaims& claims) const;
  // Signs `header_json`.`payload_json` with this key's algorithm, whatever the header
  // says (tests build hostile tokens with it).
  absl::StatusOr<std::string> SignCompact(std::string_view header_json,
                                          std::string_view payload_json) const;

  // {"keys":[<this public key as a JWK>]}.
  std::string JwksJson() const;
  const std::string& kid() const;
  JwsAlgorithm algorithm() const;
  // The public key as PEM SubjectPublicKeyInfo (tests: HMAC alg-confusion secret).
  std::string PublicKeyPem() const;

 private:
  struct Impl;
  explicit CitizenAssertionSigner(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace tellonce::certs

#endif  // TELLONCE_CERTS_CITIZEN_ASSERTION_H_
