#include "certs/sha256.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "absl/strings/str_cat.h"
#include "certs/openssl_handles.h"

namespace tellonce::certs {

namespace internal {

Hash Sha256With(const EVP_MD* md, std::initializer_list<std::string_view> parts) {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  bool ok = md != nullptr && ctx != nullptr && EVP_DigestInit_ex(ctx.get(), md, nullptr) == 1;
  for (std::string_view part : parts) {
    ok = ok && EVP_DigestUpdate(ctx.get(), part.data(), part.size()) == 1;
  }
  Hash out;
  // A digest longer than SHA-256's must not overrun `out`: check the size first.
  ok = ok && EVP_MD_CTX_get_size(ctx.get()) == static_cast<int>(out.size());
  unsigned int len = 0;
  ok = ok && EVP_DigestFinal_ex(ctx.get(), out.data(), &len) == 1 && len == out.size();
  if (!ok) {
    std::fputs("tellonce: OpenSSL SHA-256 failed\n", stderr);
    std::abort();
  }
  return out;
}

}  // namespace internal

Hash Sha256(std::initializer_list<std::string_view> parts) {
  // Fetched once: an implicit fetch on every digest is slow in OpenSSL 3. Never freed.
  static const EVP_MD* const kSha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return internal::Sha256With(kSha256, parts);
}

std::string HashToBytes(const Hash& hash) {
  return std::string(reinterpret_cast<const char*>(hash.data()), hash.size());
}

std::string HashToHex(const Hash& hash) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * hash.size());
  for (unsigned char byte : hash) {
    hex.push_back(kDigits[byte >> 4]);
    hex.push_back(kDigits[byte & 0xf]);
  }
  return hex;
}

absl::StatusOr<Hash> HashFromBytes(std::string_view bytes) {
  Hash hash;
  if (bytes.size() != hash.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("hash: ", bytes.size(), " bytes, expected ", hash.size()));
  }
  std::copy(bytes.begin(), bytes.end(), hash.begin());
  return hash;
}

}  // namespace tellonce::certs
