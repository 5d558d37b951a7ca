#ifndef TELLONCE_CERTS_SHA256_H_
#define TELLONCE_CERTS_SHA256_H_

// SHA-256, in one place for the whole tree: Merkle leaves and nodes, request
// fingerprints, certificate pins, citizen-assertion hashes, event ids.

#include <array>
#include <initializer_list>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "openssl/types.h"

namespace tellonce::certs {

// A SHA-256 digest (also a Merkle tree hash, merkle.h).
using Hash = std::array<unsigned char, 32>;

// SHA-256 of the concatenation of `parts`, without copying them together.
// OpenSSL computes SHA-256 without failing unless memory runs out. Then there is no
// digest to return, and nothing a caller could do with an error instead (a fingerprint,
// a pin or a Merkle node quietly computed from garbage would be worse), so the process
// aborts with "tellonce: OpenSSL SHA-256 failed" on stderr. Thread-safe.
Hash Sha256(std::initializer_list<std::string_view> parts);

// The 32 bytes of `hash` as a string (a proto `bytes` field).
std::string HashToBytes(const Hash& hash);
// 64 lower-case hex digits.
std::string HashToHex(const Hash& hash);
// The hash whose raw bytes are `bytes`; INVALID_ARGUMENT unless there are exactly 32.
absl::StatusOr<Hash> HashFromBytes(std::string_view bytes);

namespace internal {
// Sha256 computed with the digest `md`: a null `md`, or a digest whose output is not 32
// bytes, takes the failure path (abort). Sha256 passes OpenSSL's SHA-256. For tests.
Hash Sha256With(const EVP_MD* md, std::initializer_list<std::string_view> parts);
}  // namespace internal

}  // namespace tellonce::certs

#endif  // TELLONCE_CERTS_SHA256_H_
