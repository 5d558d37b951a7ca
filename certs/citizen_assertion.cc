#include "certs/citizen_assertion.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "certs/openssl_handles.h"
#include "certs/sha256.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "openssl/bn.h"
#include "openssl/core_names.h"
#include "openssl/ec.h"
#include "openssl/err.h"
#include "openssl/param_build.h"
#include "openssl/pem.h"
#include "openssl/rand.h"
#include "openssl/rsa.h"

namespace tellonce::certs {
namespace {

using ::google::protobuf::Struct;
using ::google::protobuf::Value;
using internal::MdCtxFree;
using internal::PkeyPtr;

absl::string_view AsAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr int kMinRsaBits = 2048;
constexpr size_t kP256CoordinateBytes = 32;

struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;
struct ParamBldFree {
  void operator()(OSSL_PARAM_BLD* b) const { OSSL_PARAM_BLD_free(b); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
struct EcdsaSigFree {
  void operator()(ECDSA_SIG* s) const { ECDSA_SIG_free(s); }
};

absl::Status Unauthenticated(std::string_view reason) {
  return absl::UnauthenticatedError(absl::StrCat("citizen assertion: ", AsAbsl(reason)));
}
absl::Status Denied(std::string_view reason) {
  return absl::PermissionDeniedError(absl::StrCat("citizen assertion: ", AsAbsl(reason)));
}

int Base64UrlValue(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

// A JSON object parsed into a Struct. Rejects anything that is not an object.
std::optional<Struct> ParseObject(std::string_view json) {
  Struct object;
  google::protobuf::util::JsonParseOptions options;
  if (!google::protobuf::util::JsonStringToMessage(
           google::protobuf::StringPiece(json.data(), json.size()), &object, options)
           .ok()) {
    return std::nullopt;
  }
  return object;
}

const Value* Member(const Struct& object, const std::string& name) {
  auto it = object.fields().find(name);
  return it == object.fields().end() ? nullptr : &it->second;
}

// A string member; std::nullopt when absent or not a string.
std::optional<std::string> StringMember(const Struct& object, const std::string& name) {
  const Value* v = Member(object, name);
  if (v == nullptr || v->kind_case() != Value::kStringValue) return std::nullopt;
  return v->string_value();
}

// A NumericDate (RFC 7519): whole seconds since the epoch within a sane range.
std::optional<absl::Time> TimeMember(const Struct& object, const std::string& name) {
  const Value* v = Member(object, name);
  if (v == nullptr || v->kind_case() != Value::kNumberValue) return std::nullopt;
  const double seconds = v->number_value();
  // Years 1970..9999: nothing a real token carries lies outside.
  if (!std::isfinite(seconds) || seconds < 0 || seconds > 253402300799.0 ||
      seconds != std::floor(seconds)) {
    return std::nullopt;
  }
  return absl::FromUnixSeconds(static_cast<int64_t>(seconds));
}

std::string BnBytes(const BIGNUM* bn, int width = 0) {
  int size = BN_num_bytes(bn);
  if (width < size) width = size;
  std::string out(static_cast<size_t>(width), '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), width);
  return out;
}

// Verifies an RSA PKCS#1 v1.5 or ECDSA signature (DER) of SHA-256(data).
bool VerifySha256(EVP_PKEY* key, std::string_view data, std::string_view signature) {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (ctx == nullptr) return false;
  if (EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1) return false;
  const int ok = EVP_DigestVerify(
      ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
      reinterpret_cast<const unsigned char*>(data.data()), data.size());
  ERR_clear_error();
  return ok == 1;
}

// JOSE ECDSA signature (r || s, 32 bytes each) to DER; std::nullopt when malformed.
std::optional<std::string> JoseToDer(std::string_view jose) {
  if (jose.size() != 2 * kP256CoordinateBytes) return std::nullopt;
  std::unique_ptr<ECDSA_SIG, EcdsaSigFree> sig(ECDSA_SIG_new());
  BIGNUM* r =
      BN_bin2bn(reinterpret_cast<const unsigned char*>(jose.data()), kP256CoordinateBytes, nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(jose.data() + kP256CoordinateBytes),
                        kP256CoordinateBytes, nullptr);
  if (sig == nullptr || r == nullptr || s == nullptr || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return std::nullopt;
  }
  unsigned char* der = nullptr;
  const int length = i2d_ECDSA_SIG(sig.get(), &der);
  if (length <= 0) return std::nullopt;
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(length));
  OPENSSL_free(der);
  return out;
}

std::optional<std::string> DerToJose(std::string_view der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<ECDSA_SIG, EcdsaSigFree> sig(
      d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (sig == nullptr) return std::nullopt;
  return BnBytes(ECDSA_SIG_get0_r(sig.get()), kP256CoordinateBytes) +
         BnBytes(ECDSA_SIG_get0_s(sig.get()), kP256CoordinateBytes);
}

PkeyPtr EcPublicKey(std::string_view x, std::string_view y) {
  std::string point = "\x04";
  point.append(x);
  point.append(y);
  std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
  if (bld == nullptr ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) !=
          1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1) {
    return nullptr;
  }
  std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld.get()));
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(
      EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* key = nullptr;
  if (params == nullptr || ctx == nullptr || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    ERR_clear_error();
    return nullptr;
  }
  PkeyPtr owned(key);
  // fromdata does not check that the point is on the curve.
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> check(
      EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
  if (check == nullptr || EVP_PKEY_public_check(check.get()) != 1) {
    ERR_clear_error();
    return nullptr;
  }
  return owned;
}

PkeyPtr RsaPublicKey(std::string_view n, std::string_view e) {
  BnPtr bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()), static_cast<int>(n.size()),
                       nullptr));
  BnPtr bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()), static_cast<int>(e.size()),
                       nullptr));
  std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
  if (bn_n == nullptr || bn_e == nullptr || bld == nullptr ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
    return nullptr;
  }
  std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld.get()));
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(
      EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  EVP_PKEY* key = nullptr;
  if (params == nullptr || ctx == nullptr || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    ERR_clear_error();
    return nullptr;
  }
  return PkeyPtr(key);
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path, size_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::string data;
  data.resize(limit + 1);
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  data.resize(static_cast<size_t>(in.gcount()));
  if (data.size() > limit) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": larger than ", limit, " bytes"));
  }
  return data;
}

// A compact JWS split and decoded; signature checked later.
struct ParsedToken {
  Struct header;
  Struct claims;
  std::string signing_input;  // header.payload as sent
  std::string signature;      // decoded
};

absl::StatusOr<ParsedToken> ParseCompact(std::string_view token) {
  if (token.empty()) return Unauthenticated("missing");
  if (token.size() > kMaxCitizenAssertionBytes) {
    return Unauthenticated(absl::StrCat("longer than ", kMaxCitizenAssertionBytes, " bytes"));
  }
  const size_t first = token.find('.');
  const size_t second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos) {
    return Unauthenticated("not a compact JWS (three dot-separated parts)");
  }
  const std::string_view parts[3] = {token.substr(0, first),
                                     token.substr(first + 1, second - first - 1),
                                     token.substr(second + 1)};
  std::optional<std::string> header = Base64UrlDecode(parts[0]);
  std::optional<std::string> payload = Base64UrlDecode(parts[1]);
  std::optional<std::string> signature = Base64UrlDecode(parts[2]);
  if (!header || !payload || !signature) return Unauthenticated("not base64url");
  ParsedToken parsed;
  std::optional<Struct> h = ParseObject(*header);
  if (!h) return Unauthenticated("header is not a JSON object");
  std::optional<Struct> c = ParseObject(*payload);
  if (!c) return Unauthenticated("payload is not a JSON object");
  parsed.header = *std::move(h);
  parsed.claims = *std::move(c);
  parsed.signing_input = std::string(token.substr(0, second));
  parsed.signature = *std::move(signature);
  return parsed;
}

}  // namespace

std::optional<JwsAlgorithm> ParseJwsAlgorithm(std::string_view name) {
  if (name == "ES256") return JwsAlgorithm::kES256;
  if (name == "RS256") return JwsAlgorithm::kRS256;
  return std::nullopt;
}

std::string_view JwsAlgorithmName(JwsAlgorithm algorithm) {
  return algorithm == JwsAlgorithm::kES256 ? "ES256" : "RS256";
}

std::string Base64UrlEncode(std::string_view data) {
  std::string out;
  absl::WebSafeBase64Escape(AsAbsl(data), &out);  // no padding
  return out;
}

std::optional<std::string> Base64UrlDecode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    const int v = Base64UrlValue(c);
    if (v < 0) return std::nullopt;
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  // Leftover bits must be zero, so each value has exactly one encoding.
  if ((buffer & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

// ---------------------------------------------------------------------------------
// Jwks

struct Jwks::Key {
  JwsAlgorithm algorithm;         // what the key type supports
  bool algorithm_pinned = false;  // the JWK named "alg"
  std::shared_ptr<EVP_PKEY> pkey;
};

struct Jwks::Keys {
  absl::flat_hash_map<std::string, Key> by_kid;
};

absl::StatusOr<Jwks> Jwks::Parse(std::string_view json) {
  if (json.size() > kMaxJwksBytes) {
    return absl::InvalidArgumentError(absl::StrCat("larger than ", kMaxJwksBytes, " bytes"));
  }
  std::optional<Struct> set = ParseObject(json);
  if (!set) return absl::InvalidArgumentError("not a JSON object");
  const Value* keys = Member(*set, "keys");
  if (keys == nullptr || keys->kind_case() != Value::kListValue) {
    return absl::InvalidArgumentError("keys: required, an array");
  }
  if (keys->list_value().values().empty()) return absl::InvalidArgumentError("keys: empty");
  auto out = std::make_shared<Keys>();
  for (int i = 0; i < keys->list_value().values_size(); ++i) {
    const std::string path = absl::StrCat("keys[", i, "]");
    auto error = [&](std::string_view field, std::string_view reason) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, field.empty() ? "" : ".", AsAbsl(field), ": ", AsAbsl(reason)));
    };
    const Value& v = keys->list_value().values(i);
    if (v.kind_case() != Value::kStructValue) return error("", "not an object");
    const Struct& jwk = v.struct_value();
    std::optional<std::string> kid = StringMember(jwk, "kid");
    if (!kid || kid->empty()) return error("kid", "required");
    std::optional<std::string> use = StringMember(jwk, "use");
    if (use && *use != "sig") return error("use", "must be \"sig\"");
    std::optional<std::string> kty = StringMember(jwk, "kty");
    if (!kty) return error("kty", "required");
    Key key;
    if (*kty == "EC") {
      if (StringMember(jwk, "crv") != "P-256") return error("crv", "must be \"P-256\"");
      std::optional<std::string> x, y;
      if (auto s = StringMember(jwk, "x")) x = Base64UrlDecode(*s);
      if (auto s = StringMember(jwk, "y")) y = Base64UrlDecode(*s);
      if (!x || x->size() != kP256CoordinateBytes) return error("x", "not a P-256 coordinate");
      if (!y || y->size() != kP256CoordinateBytes) return error("y", "not a P-256 coordinate");
      PkeyPtr pkey = EcPublicKey(*x, *y);
      if (pkey == nullptr) return error("", "not a point on P-256");
      key.algorithm = JwsAlgorithm::kES256;
      key.pkey = std::shared_ptr<EVP_PKEY>(pkey.release(), EVP_PKEY_free);
    } else if (*kty == "RSA") {
      std::optional<std::string> n, e;
      if (auto s = StringMember(jwk, "n")) n = Base64UrlDecode(*s);
      if (auto s = StringMember(jwk, "e")) e = Base64UrlDecode(*s);
      if (!n || n->empty()) return error("n", "required, base64url");
      if (!e || e->empty() || e->size() > 8) return error("e", "required, base64url");
      PkeyPtr pkey = RsaPublicKey(*n, *e);
      if (pkey == nullptr) return error("", "not an RSA public key");
      if (EVP_PKEY_get_bits(pkey.get()) < kMinRsaBits) {
        return error("n", absl::StrCat("RSA keys need at least ", kMinRsaBits, " bits"));
      }
      key.algorithm = JwsAlgorithm::kRS256;
      key.pkey = std::shared_ptr<EVP_PKEY>(pkey.release(), EVP_PKEY_free);
    } else {
      return error("kty", "must be \"EC\" or \"RSA\"");
    }
    if (std::optional<std::string> alg = StringMember(jwk, "alg")) {
      std::optional<JwsAlgorithm> pinned = ParseJwsAlgorithm(*alg);
      if (!pinned || *pinned != key.algorithm) {
        return error("alg", absl::StrCat("must be ", AsAbsl(JwsAlgorithmName(key.algorithm)),
                                         " for this key type"));
      }
      key.algorithm_pinned = true;
    }
    if (!out->by_kid.emplace(*kid, std::move(key)).second) return error("kid", "duplicate");
  }
  return Jwks(std::move(out));
}

absl::StatusOr<Jwks> Jwks::FromFile(const std::string& path) {
  absl::StatusOr<std::string> data = ReadSmallFile(path, kMaxJwksBytes);
  if (!data.ok()) return data.status();
  absl::StatusOr<Jwks> jwks = Parse(*data);
  if (!jwks.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", jwks.status().message()));
  }
  return jwks;
}

Jwks::Jwks() : keys_(std::make_shared<const Keys>()) {}

size_t Jwks::size() const { return keys_->by_kid.size(); }

const Jwks::Key* Jwks::Find(std::string_view kid) const {
  auto it = keys_->by_kid.find(AsAbsl(kid));
  return it == keys_->by_kid.end() ? nullptr : &it->second;
}

// ---------------------------------------------------------------------------------
// Verification

absl::StatusOr<VerifiedCitizenAssertion> VerifyCitizenAssertion(
    std::string_view token, const Jwks& keys, const CitizenAssertionPolicy& policy,
    std::string_view citizen_id, absl::Time now) {
  absl::StatusOr<VerifiedCitizenAssertion> verified = VerifyIdToken(token, keys, policy, now);
  if (!verified.ok()) return verified.status();
  if (verified->citizen_id != citizen_id) {
    return Denied("authenticates another citizen than the request's");
  }
  return verified;
}

absl::StatusOr<VerifiedCitizenAssertion> VerifyIdToken(std::string_view token, const Jwks& keys,
                                                       const CitizenAssertionPolicy& policy,
                                                       absl::Time now) {
  absl::StatusOr<ParsedToken> parsed = ParseCompact(token);
  if (!parsed.ok()) return parsed.status();

  // Header: the algorithm must be allowed by the policy and fit the key; nothing in the
  // header may add keys or extensions.
  std::optional<std::string> alg_name = StringMember(parsed->header, "alg");
  if (!alg_name) return Unauthenticated("header.alg: required");
  std::optional<JwsAlgorithm> alg = ParseJwsAlgorithm(*alg_name);
  if (!alg || std::find(policy.algorithms.begin(), policy.algorithms.end(), *alg) ==
                  policy.algorithms.end()) {
    return Unauthenticated("header.alg: not an algorithm this identity provider is trusted for");
  }
  for (const char* forbidden : {"crit", "jku", "jwk", "x5u", "x5c", "b64"}) {
    if (Member(parsed->header, forbidden) != nullptr) {
      return Unauthenticated(absl::StrCat("header.", forbidden, ": not accepted"));
    }
  }
  std::optional<std::string> kid = StringMember(parsed->header, "kid");
  if (!kid || kid->empty()) return Unauthenticated("header.kid: required");
  const Jwks::Key* key = keys.Find(*kid);
  if (key == nullptr) return Unauthenticated("header.kid: unknown key");
  if (key->algorithm != *alg) {
    return Unauthenticated("header.alg: does not match the key's type");
  }

  std::string signature = parsed->signature;
  if (*alg == JwsAlgorithm::kES256) {
    std::optional<std::string> der = JoseToDer(signature);
    if (!der) return Unauthenticated("signature does not verify");
    signature = *std::move(der);
  }
  if (!VerifySha256(key->pkey.get(), parsed->signing_input, signature)) {
    return Unauthenticated("signature does not verify");
  }

  // Claims.
  const Struct& claims = parsed->claims;
  if (StringMember(claims, "iss") != policy.issuer) {
    return Unauthenticated("iss: not the expected identity provider");
  }
  std::optional<absl::Time> exp = TimeMember(claims, "exp");
  if (!exp) return Unauthenticated("exp: required, a NumericDate");
  if (now >= *exp + policy.clock_skew) return Unauthenticated("expired");
  std::optional<absl::Time> iat = TimeMember(claims, "iat");
  if (!iat) return Unauthenticated("iat: required, a NumericDate");
  if (*iat > now + policy.clock_skew) return Unauthenticated("iat: in the future");
  if (now - *iat > policy.max_age) {
    return Unauthenticated("the citizen's authentication is too old; sign in again");
  }
  if (Member(claims, "nbf") != nullptr) {
    std::optional<absl::Time> nbf = TimeMember(claims, "nbf");
    if (!nbf) return Unauthenticated("nbf: not a NumericDate");
    if (now + policy.clock_skew < *nbf) return Unauthenticated("not valid yet");
  }

  bool audience_ok = false;
  if (const Value* aud = Member(claims, "aud")) {
    if (aud->kind_case() == Value::kStringValue) {
      audience_ok = aud->string_value() == policy.audience;
    } else if (aud->kind_case() == Value::kListValue) {
      for (const Value& a : aud->list_value().values()) {
        if (a.kind_case() == Value::kStringValue && a.string_value() == policy.audience) {
          audience_ok = true;
        }
      }
    }
  }
  if (!audience_ok) return Denied("aud: issued to another client, not this portal");
  std::optional<std::string> azp = StringMember(claims, "azp");
  if (azp && *azp != policy.audience) {
    return Denied("azp: issued to another client, not this portal");
  }

  if (!policy.nonce.empty() && StringMember(claims, "nonce") != policy.nonce) {
    return Unauthenticated("nonce: not the one of this sign-in (replayed or foreign token)");
  }

  std::optional<std::string> citizen = StringMember(claims, policy.citizen_claim);
  if (!citizen || citizen->empty()) {
    return Unauthenticated(absl::StrCat(policy.citizen_claim, ": required"));
  }

  VerifiedCitizenAssertion out;
  out.issuer = policy.issuer;
  out.citizen_id = *std::move(citizen);
  if (std::optional<std::string> jti = StringMember(claims, "jti")) out.token_id = *jti;
  out.token_sha256 = HashToHex(Sha256({token}));
  out.issued_at = *iat;
  out.expires_at = *exp;
  return out;
}

absl::StatusOr<std::string> UnverifiedIssuer(std::string_view token) {
  absl::StatusOr<ParsedToken> parsed = ParseCompact(token);
  if (!parsed.ok()) return parsed.status();
  std::optional<std::string> iss = StringMember(parsed->claims, "iss");
  if (!iss || iss->empty()) return Unauthenticated("iss: required");
  return *iss;
}

// ---------------------------------------------------------------------------------
// Dev signer

struct CitizenAssertionSigner::Impl {
  std::shared_ptr<EVP_PKEY> pkey;
  std::string kid;
  JwsAlgorithm algorithm;
};

namespace {

absl::StatusOr<JwsAlgorithm> SignerAlgorithm(EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "EC")) {
    char group[64] = {0};
    size_t length = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       &length) != 1 ||
        std::string_view(group) != "prime256v1") {
      return absl::InvalidArgumentError("EC key is not on P-256");
    }
    return JwsAlgorithm::kES256;
  }
  if (EVP_PKEY_is_a(key, "RSA")) {
    if (EVP_PKEY_get_bits(key) < kMinRsaBits) {
      return absl::InvalidArgumentError("RSA key shorter than 2048 bits");
    }
    return JwsAlgorithm::kRS256;
  }
  return absl::InvalidArgumentError("not an EC P-256 or RSA key");
}

std::string RandomTokenId() {
  unsigned char bytes[16];
  RAND_bytes(bytes, sizeof(bytes));
  return Base64UrlEncode(std::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

std::string ToJson(const Struct& object) {
  std::string out;
  google::protobuf::util::MessageToJsonString(object, &out);
  return out;
}

}  // namespace

absl::StatusOr<CitizenAssertionSigner> CitizenAssertionSigner::FromPem(std::string_view pem,
                                                                       std::string kid) {
  if (kid.empty()) return absl::InvalidArgumentError("kid: required");
  internal::BioPtr bio = internal::MemBio(pem);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, internal::NoPassphrase, nullptr);
  if (key == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("not a PEM private key");
  }
  auto impl = std::make_shared<Impl>();
  impl->pkey = std::shared_ptr<EVP_PKEY>(key, EVP_PKEY_free);
  absl::StatusOr<JwsAlgorithm> alg = SignerAlgorithm(key);
  if (!alg.ok()) return alg.status();
  impl->algorithm = *alg;
  impl->kid = std::move(kid);
  return CitizenAssertionSigner(std::move(impl));
}

absl::StatusOr<CitizenAssertionSigner> CitizenAssertionSigner::FromPemFile(const std::string& path,
                                                                           std::string kid) {
  absl::StatusOr<std::string> pem = ReadSmallFile(path, 64 * 1024);
  if (!pem.ok()) return pem.status();
  if (kid.empty()) {
    std::string_view base = path;
    if (size_t slash = base.rfind('/'); slash != std::string_view::npos) {
      base = base.substr(slash + 1);
    }
    if (size_t dot = base.find('.'); dot != std::string_view::npos) base = base.substr(0, dot);
    kid = std::string(base);
  }
  absl::StatusOr<CitizenAssertionSigner> signer = FromPem(*pem, std::move(kid));
  if (!signer.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", signer.status().message()));
  }
  return signer;
}

absl::StatusOr<CitizenAssertionSigner> CitizenAssertionSigner::GenerateEs256(std::string kid) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (key == nullptr) return absl::InternalError("EC key generation failed");
  auto impl = std::make_shared<Impl>();
  impl->pkey = std::shared_ptr<EVP_PKEY>(key, EVP_PKEY_free);
  impl->algorithm = JwsAlgorithm::kES256;
  impl->kid = std::move(kid);
  return CitizenAssertionSigner(std::move(impl));
}

absl::StatusOr<CitizenAssertionSigner> CitizenAssertionSigner::GenerateRs256(std::string kid) {
  EVP_PKEY* key = EVP_RSA_gen(2048);
  if (key == nullptr) return absl::InternalError("RSA key generation failed");
  auto impl = std::make_shared<Impl>();
  impl->pkey = std::shared_ptr<EVP_PKEY>(key, EVP_PKEY_free);
  impl->algorithm = JwsAlgorithm::kRS256;
  impl->kid = std::move(kid);
  return CitizenAssertionSigner(std::move(impl));
}

absl::StatusOr<std::string> CitizenAssertionSigner::SignCompact(
    std::string_view header_json, std::string_view payload_json) const {
  const std::string input =
      absl::StrCat(Base64UrlEncode(header_json), ".", Base64UrlEncode(payload_json));
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  size_t length = 0;
  if (ctx == nullptr ||
      EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, impl_->pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &length,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
    ERR_clear_error();
    return absl::InternalError("signing failed");
  }
  std::string signature(length, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &length,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
    ERR_clear_error();
    return absl::InternalError("signing failed");
  }
  signature.resize(length);
  if (impl_->algorithm == JwsAlgorithm::kES256) {
    std::optional<std::string> jose = DerToJose(signature);
    if (!jose) return absl::InternalError("signing failed");
    signature = *std::move(jose);
  }
  return absl::StrCat(input, ".", Base64UrlEncode(signature));
}

absl::StatusOr<std::string> CitizenAssertionSigner::Mint(
    const CitizenAssertionClaims& claims) const {
  Struct header;
  (*header.mutable_fields())["alg"].set_string_value(std::string(JwsAlgorithmName(algorithm())));
  (*header.mutable_fields())["kid"].set_string_value(impl_->kid);
  (*header.mutable_fields())["typ"].set_string_value("JWT");
  Struct payload;
  auto& f = *payload.mutable_fields();
  f["iss"].set_string_value(claims.issuer);
  f["aud"].set_string_value(claims.audience);
  f[claims.citizen_claim].set_string_value(claims.citizen_id);
  const int64_t iat = absl::ToUnixSeconds(claims.issued_at);
  f["iat"].set_number_value(static_cast<double>(iat));
  f["exp"].set_number_value(static_cast<double>(iat + absl::ToInt64Seconds(claims.lifetime)));
  f["jti"].set_string_value(claims.token_id.empty() ? RandomTokenId() : claims.token_id);
  if (!claims.nonce.empty()) f["nonce"].set_string_value(claims.nonce);
  return SignCompact(ToJson(header), ToJson(payload));
}

std::string CitizenAssertionSigner::JwksJson() const {
  Struct jwk;
  auto& f = *jwk.mutable_fields();
  f["kid"].set_string_value(impl_->kid);
  f["use"].set_string_value("sig");
  f["alg"].set_string_value(std::string(JwsAlgorithmName(impl_->algorithm)));
  if (impl_->algorithm == JwsAlgorithm::kES256) {
    unsigned char point[65];
    size_t length = 0;
    EVP_PKEY_get_octet_string_param(impl_->pkey.get(), OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point,
                                    sizeof(point), &length);
    std::string_view p(reinterpret_cast<const char*>(point), length);
    f["kty"].set_string_value("EC");
    f["crv"].set_string_value("P-256");
    if (length == 65) {
      f["x"].set_string_value(Base64UrlEncode(p.substr(1, 32)));
      f["y"].set_string_value(Base64UrlEncode(p.substr(33, 32)));
    }
  } else {
    BIGNUM* n = nullptr;
    BIGNUM* e = nullptr;
    EVP_PKEY_get_bn_param(impl_->pkey.get(), OSSL_PKEY_PARAM_RSA_N, &n);
    EVP_PKEY_get_bn_param(impl_->pkey.get(), OSSL_PKEY_PARAM_RSA_E, &e);
    BnPtr owned_n(n), owned_e(e);
    f["kty"].set_string_value("RSA");
    if (n != nullptr) f["n"].set_string_value(Base64UrlEncode(BnBytes(n)));
    if (e != nullptr) f["e"].set_string_value(Base64UrlEncode(BnBytes(e)));
  }
  Struct set;
  *(*set.mutable_fields())["keys"].mutable_list_value()->add_values()->mutable_struct_value() = jwk;
  return ToJson(set);
}

const std::string& CitizenAssertionSigner::kid() const { return impl_->kid; }
JwsAlgorithm CitizenAssertionSigner::algorithm() const { return impl_->algorithm; }

std::string CitizenAssertionSigner::PublicKeyPem() const {
  internal::BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PUBKEY(bio.get(), impl_->pkey.get());
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(length));
}

}  // namespace tellonce::certs
