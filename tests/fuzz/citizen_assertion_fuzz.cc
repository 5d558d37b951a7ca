// Fuzzes citizen-assertion verification (certs/citizen_assertion.h): OpenID Connect ID
// tokens a portal forwards for a citizen, and the identity providers' key sets.
//  0. the input is the token: certs::VerifyCitizenAssertion against ES256 and RS256 keys,
//     certs::UnverifiedIssuer, and consent::Directory::VerifyCitizenAssertion for the
//     sample directory's portal;
//  1, 2. structure-aware: the input is a header JSON and a claims JSON, signed here with
//     the ES256 (1) or RS256 (2) key, so the claim checks after a valid signature are
//     reached;
//  3. the input is a JWK Set (certs::Jwks::Parse).
// The first byte picks the mode. Invariants: only UNAUTHENTICATED or PERMISSION_DENIED
// refusals; an accepted token names the policy's issuer and the request's citizen, was
// issued within max_age (give or take the clock skew), and was signed by the key its
// header names (a token signed with one key never verifies as the other's).

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "certs/citizen_assertion.h"
#include "consent/directory.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using tellonce::certs::CitizenAssertionPolicy;
using tellonce::certs::CitizenAssertionSigner;
using tellonce::certs::Jwks;
using tellonce::fuzz::kNow;

constexpr char kCitizen[] = "37605030299";

const CitizenAssertionSigner& RsaSigner() {
  static const auto* signer = [] {
    absl::StatusOr<CitizenAssertionSigner> s = CitizenAssertionSigner::FromPemFile(
        tellonce::fuzz::FuzzDataPath("keys/idp-rs256.key"), "fuzz-rsa");
    if (!s.ok()) std::abort();
    return new CitizenAssertionSigner(*std::move(s));
  }();
  return *signer;
}

// {"keys":[<ES256 key>,<RS256 key>]}
const Jwks& BothKeys() {
  static const auto* keys = [] {
    auto inner = [](const std::string& jwks) {
      const size_t open = jwks.find('[');
      const size_t close = jwks.rfind(']');
      return jwks.substr(open + 1, close - open - 1);
    };
    absl::StatusOr<Jwks> k =
        Jwks::Parse(absl::StrCat("{\"keys\":[", inner(tellonce::fuzz::IdpSigner().JwksJson()), ",",
                                 inner(RsaSigner().JwksJson()), "]}"));
    if (!k.ok()) std::abort();
    return new Jwks(*std::move(k));
  }();
  return *keys;
}

CitizenAssertionPolicy Policy() {
  CitizenAssertionPolicy policy;
  policy.issuer = "https://eid.tellonce.local";
  policy.audience = "tellonce-portal";
  policy.algorithms = {tellonce::certs::JwsAlgorithm::kES256,
                       tellonce::certs::JwsAlgorithm::kRS256};
  return policy;
}

absl::StatusOr<tellonce::certs::VerifiedCitizenAssertion> Verify(std::string_view token,
                                                                 const Jwks& keys) {
  const CitizenAssertionPolicy policy = Policy();
  absl::StatusOr<tellonce::certs::VerifiedCitizenAssertion> v =
      tellonce::certs::VerifyCitizenAssertion(token, keys, policy, kCitizen, kNow);
  if (!v.ok()) {
    FUZZ_CHECK(v.status().code() == absl::StatusCode::kUnauthenticated ||
               v.status().code() == absl::StatusCode::kPermissionDenied);
    FUZZ_CHECK(v.status().message().find(kCitizen) == std::string_view::npos);
    return v;
  }
  FUZZ_CHECK(v->issuer == policy.issuer);
  FUZZ_CHECK(v->citizen_id == kCitizen);
  FUZZ_CHECK(v->issued_at <= kNow + policy.clock_skew);
  FUZZ_CHECK(kNow - v->issued_at <= policy.max_age);
  FUZZ_CHECK(v->token_sha256.size() == 64);
  FUZZ_CHECK(token.size() <= tellonce::certs::kMaxCitizenAssertionBytes);
  return v;
}

void Signed(const CitizenAssertionSigner& signer, const std::string& other_kid,
            tellonce::fuzz::Input& in) {
  const std::string header = in.String(512);
  const std::string claims(in.Rest());
  absl::StatusOr<std::string> token = signer.SignCompact(header, claims);
  if (!token.ok()) return;
  absl::StatusOr<tellonce::certs::VerifiedCitizenAssertion> v = Verify(*token, BothKeys());
  if (v.ok()) {
    // Only the signer's own key verifies what it signed: the header names it.
    google::protobuf::Struct parsed;
    FUZZ_CHECK(google::protobuf::util::JsonStringToMessage(header, &parsed).ok());
    auto kid = parsed.fields().find("kid");
    FUZZ_CHECK(kid != parsed.fields().end() && kid->second.string_value() == signer.kid());
    FUZZ_CHECK(kid->second.string_value() != other_kid);
  }
  (void)tellonce::certs::UnverifiedIssuer(*token);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tellonce::fuzz::Input in(data, size);
  switch (in.Byte() % 4) {
    case 0: {
      const std::string_view token = in.Rest();
      (void)Verify(token, BothKeys());
      absl::StatusOr<std::string> issuer = tellonce::certs::UnverifiedIssuer(token);
      if (!issuer.ok()) {
        FUZZ_CHECK(issuer.status().code() == absl::StatusCode::kUnauthenticated);
      }
      std::shared_ptr<const tellonce::consent::Directory> d = tellonce::fuzz::SampleDirectory();
      absl::StatusOr<tellonce::certs::VerifiedCitizenAssertion> v =
          d->VerifyCitizenAssertion("portal", token, kCitizen, kNow);
      if (!v.ok()) {
        FUZZ_CHECK(v.status().code() == absl::StatusCode::kUnauthenticated ||
                   v.status().code() == absl::StatusCode::kPermissionDenied);
      } else {
        FUZZ_CHECK(v->citizen_id == kCitizen);
      }
      break;
    }
    case 1:
      Signed(tellonce::fuzz::IdpSigner(), "fuzz-rsa", in);
      break;
    case 2:
      Signed(RsaSigner(), "fuzz-idp", in);
      break;
    case 3: {
      absl::StatusOr<Jwks> keys = Jwks::Parse(in.Rest());
      if (keys.ok()) {
        FUZZ_CHECK(keys->size() > 0);
      } else {
        FUZZ_CHECK(keys.status().code() == absl::StatusCode::kInvalidArgument);
      }
      break;
    }
  }
  return 0;
}
