// certs::VerifyCitizenAssertion: citizen ID tokens from a dev identity provider made for
// the test, and hostile tokens built by hand (alg confusion, "none", tampering).

#include "certs/citizen_assertion.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace tellonce::certs {
namespace {

constexpr char kIssuer[] = "https://eid.gov.example";
constexpr char kAudience[] = "portal-client";
constexpr char kCitizen[] = "39001010001";
const absl::Time kNow = absl::FromUnixSeconds(1'900'000'000);

class CitizenAssertionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<CitizenAssertionSigner> signer = CitizenAssertionSigner::GenerateEs256("ec-1");
    ASSERT_TRUE(signer.ok()) << signer.status();
    signer_ = std::make_unique<CitizenAssertionSigner>(*std::move(signer));
    absl::StatusOr<Jwks> keys = Jwks::Parse(signer_->JwksJson());
    ASSERT_TRUE(keys.ok()) << keys.status();
    keys_ = *std::move(keys);
    policy_.issuer = kIssuer;
    policy_.audience = kAudience;
    policy_.algorithms = {JwsAlgorithm::kES256};
  }

  CitizenAssertionClaims Claims() const {
    CitizenAssertionClaims c;
    c.issuer = kIssuer;
    c.audience = kAudience;
    c.citizen_id = kCitizen;
    c.issued_at = kNow - absl::Minutes(1);
    return c;
  }

  std::string Mint(const CitizenAssertionClaims& claims) const {
    absl::StatusOr<std::string> token = signer_->Mint(claims);
    EXPECT_TRUE(token.ok()) << token.status();
    return token.ok() ? *token : "";
  }

  // A payload as the genuine signer would write it.
  std::string Payload(const std::string& extra = "") const {
    return absl::StrCat("{\"iss\":\"", kIssuer, "\",\"aud\":\"", kAudience, "\",\"sub\":\"",
                        kCitizen, "\",\"iat\":", absl::ToUnixSeconds(kNow - absl::Minutes(1)),
                        ",\"exp\":", absl::ToUnixSeconds(kNow + absl::Minutes(4)), extra, "}");
  }

  absl::StatusOr<VerifiedCitizenAssertion> Verify(const std::string& token,
                                                  const std::string& citizen = kCitizen) const {
    return VerifyCitizenAssertion(token, keys_, policy_, citizen, kNow);
  }

  std::unique_ptr<CitizenAssertionSigner> signer_;
  Jwks keys_;
  CitizenAssertionPolicy policy_;
};

TEST_F(CitizenAssertionTest, AGenuineFreshTokenVerifiesAndGivesTheEvidence) {
  CitizenAssertionClaims claims = Claims();
  claims.token_id = "jti-1";
  const std::string token = Mint(claims);
  absl::StatusOr<VerifiedCitizenAssertion> verified = Verify(token);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(verified->issuer, kIssuer);
  EXPECT_EQ(verified->citizen_id, kCitizen);
  EXPECT_EQ(verified->token_id, "jti-1");
  EXPECT_EQ(verified->token_sha256.size(), 64u);
  EXPECT_EQ(verified->issued_at, kNow - absl::Minutes(1));
}

TEST_F(CitizenAssertionTest, ARelyingPartyReadsTheCitizenAndChecksTheNonce) {
  CitizenAssertionClaims claims = Claims();
  claims.nonce = "nonce-of-this-sign-in";
  const std::string token = Mint(claims);
  policy_.nonce = "nonce-of-this-sign-in";
  absl::StatusOr<VerifiedCitizenAssertion> verified = VerifyIdToken(token, keys_, policy_, kNow);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(verified->citizen_id, kCitizen);
  EXPECT_EQ(verified->expires_at, claims.issued_at + claims.lifetime);
  // Another sign-in's nonce, or none at all: a replayed or foreign token.
  policy_.nonce = "nonce-of-another-sign-in";
  absl::Status other = VerifyIdToken(token, keys_, policy_, kNow).status();
  EXPECT_EQ(other.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(absl::StrContains(other.message(), "nonce")) << other;
  EXPECT_EQ(VerifyIdToken(Mint(Claims()), keys_, policy_, kNow).status().code(),
            absl::StatusCode::kUnauthenticated);
  // The broker, which names no nonce, accepts the token with one.
  policy_.nonce.clear();
  EXPECT_TRUE(Verify(token).ok());
}

TEST_F(CitizenAssertionTest, AnAudienceArrayContainingThePortalIsAccepted) {
  absl::StatusOr<std::string> token = signer_->SignCompact(
      R"({"alg":"ES256","kid":"ec-1"})",
      absl::StrCat("{\"iss\":\"", kIssuer, "\",\"aud\":[\"other\",\"", kAudience, "\"],\"sub\":\"",
                   kCitizen, "\",\"iat\":", absl::ToUnixSeconds(kNow - absl::Minutes(1)),
                   ",\"exp\":", absl::ToUnixSeconds(kNow + absl::Minutes(4)), "}"));
  ASSERT_TRUE(token.ok());
  EXPECT_TRUE(Verify(*token).ok()) << Verify(*token).status();
}

TEST_F(CitizenAssertionTest, MissingOrMalformedTokensAreUnauthenticated) {
  const std::string good = Mint(Claims());
  for (const std::string& bad :
       {std::string(), std::string("abc"), std::string("a.b"), good + ".x",
        std::string(kMaxCitizenAssertionBytes + 1, 'a'),
        // standard base64 characters and padding are not base64url
        absl::StrCat(good.substr(0, good.rfind('.')), ".", "ab+/"), absl::StrCat(good, "=")}) {
    absl::StatusOr<VerifiedCitizenAssertion> r = Verify(bad);
    EXPECT_TRUE(absl::IsUnauthenticated(r.status())) << bad.substr(0, 40) << ": " << r.status();
  }
}

TEST_F(CitizenAssertionTest, ExpiredNotYetValidTooOldAndFutureTokensAreUnauthenticated) {
  CitizenAssertionClaims expired = Claims();
  expired.issued_at = kNow - absl::Minutes(10);
  expired.lifetime = absl::Minutes(5);
  EXPECT_TRUE(absl::IsUnauthenticated(Verify(Mint(expired)).status()));

  CitizenAssertionClaims too_old = Claims();
  too_old.issued_at = kNow - absl::Minutes(20);
  too_old.lifetime = absl::Hours(1);
  absl::StatusOr<VerifiedCitizenAssertion> old = Verify(Mint(too_old));
  EXPECT_TRUE(absl::IsUnauthenticated(old.status()));
  EXPECT_TRUE(absl::StrContains(old.status().message(), "too old")) << old.status();

  CitizenAssertionClaims future = Claims();
  future.issued_at = kNow + absl::Minutes(5);
  EXPECT_TRUE(absl::IsUnauthenticated(Verify(Mint(future)).status()));

  absl::StatusOr<std::string> nbf = signer_->SignCompact(
      R"({"alg":"ES256","kid":"ec-1"})",
      Payload(absl::StrCat(",\"nbf\":", absl::ToUnixSeconds(kNow + absl::Minutes(3)))));
  ASSERT_TRUE(nbf.ok());
  EXPECT_TRUE(absl::IsUnauthenticated(Verify(*nbf).status()));

  absl::StatusOr<std::string> no_exp = signer_->SignCompact(
      R"({"alg":"ES256","kid":"ec-1"})",
      absl::StrCat("{\"iss\":\"", kIssuer, "\",\"aud\":\"", kAudience, "\",\"sub\":\"", kCitizen,
                   "\",\"iat\":", absl::ToUnixSeconds(kNow), "}"));
  ASSERT_TRUE(no_exp.ok());
  EXPECT_TRUE(absl::IsUnauthenticated(Verify(*no_exp).status()));
}

TEST_F(CitizenAssertionTest, AnotherIssuerIsUnauthenticated) {
  CitizenAssertionClaims claims = Claims();
  claims.issuer = "https://evil.example";
  EXPECT_TRUE(absl::IsUnauthenticated(Verify(Mint(claims)).status()));
}

TEST_F(CitizenAssertionTest, AnotherAudienceOrCitizenIsPermissionDeniedWithoutEchoingIt) {
  CitizenAssertionClaims claims = Claims();
  claims.audience = "other-portal";
  absl::StatusOr<VerifiedCitizenAssertion> aud = Verify(Mint(claims));
  EXPECT_TRUE(absl::IsPermissionDenied(aud.status())) << aud.status();
  EXPECT_FALSE(absl::StrContains(aud.status().message(), "other-portal"));

  absl::StatusOr<VerifiedCitizenAssertion> citizen = Verify(Mint(Claims()), "39001010002");
  EXPECT_TRUE(absl::IsPermissionDenied(citizen.status())) << citizen.status();
  EXPECT_FALSE(absl::StrContains(citizen.status().message(), kCitizen));
  EXPECT_FALSE(absl::StrContains(citizen.status().message(), "39001010002"));
}

TEST_F(CitizenAssertionTest, ATamperedOrForeignSignatureIsUnauthenticated) {
  const std::string token = Mint(Claims());
  // Another citizen's payload under the genuine header and signature.
  const size_t first = token.find('.');
  const size_t second = token.rfind('.');
  CitizenAssertionClaims other = Claims();
  other.citizen_id = "39001010002";
  const std::string other_token = Mint(other);
  const std::string spliced = absl::StrCat(
      token.substr(0, first),
      other_token.substr(other_token.find('.'), other_token.rfind('.') - other_token.find('.')),
      token.substr(second));
  EXPECT_TRUE(absl::IsUnauthenticated(Verify(spliced, "39001010002").status()));

  // A key of its own under the provider's kid.
  absl::StatusOr<CitizenAssertionSigner> impostor = CitizenAssertionSigner::GenerateEs256("ec-1");
  ASSERT_TRUE(impostor.ok());
  absl::StatusOr<std::string> forged = impostor->Mint(Claims());
  ASSERT_TRUE(forged.ok());
  absl::StatusOr<VerifiedCitizenAssertion> r = Verify(*forged);
  EXPECT_TRUE(absl::IsUnauthenticated(r.status()));
  EXPECT_TRUE(absl::StrContains(r.status().message(), "signature")) << r.status();

  absl::StatusOr<std::string> unknown_kid =
      signer_->SignCompact(R"({"alg":"ES256","kid":"nope"})", Payload());
  ASSERT_TRUE(unknown_kid.ok());
  EXPECT_TRUE(absl::IsUnauthenticated(Verify(*unknown_kid).status()));
}

TEST_F(CitizenAssertionTest, TheTokenCannotChooseTheAlgorithm) {
  // RS256 in the header, signed with the EC key: not allowed for this provider...
  absl::StatusOr<std::string> rs =
      signer_->SignCompact(R"({"alg":"RS256","kid":"ec-1"})", Payload());
  ASSERT_TRUE(rs.ok());
  EXPECT_TRUE(absl::IsUnauthenticated(Verify(*rs).status()));
  // ...and not for an EC key even when the provider allows RS256.
  policy_.algorithms = {JwsAlgorithm::kES256, JwsAlgorithm::kRS256};
  absl::StatusOr<VerifiedCitizenAssertion> mismatched = Verify(*rs);
  EXPECT_TRUE(absl::IsUnauthenticated(mismatched.status()));
  EXPECT_TRUE(absl::StrContains(mismatched.status().message(), "key")) << mismatched.status();

  // HS256 keyed with the provider's public key (the classic confusion).
  const std::string input = absl::StrCat(Base64UrlEncode(R"({"alg":"HS256","kid":"ec-1"})"), ".",
                                         Base64UrlEncode(Payload()));
  const std::string secret = signer_->PublicKeyPem();
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &mac_length);
  const std::string hs = absl::StrCat(
      input, ".", Base64UrlEncode(std::string(reinterpret_cast<char*>(mac), mac_length)));
  EXPECT_TRUE(absl::IsUnauthenticated(Verify(hs).status()));

  // "none", with and without a signature part.
  const std::string none_input = absl::StrCat(Base64UrlEncode(R"({"alg":"none","kid":"ec-1"})"),
                                              ".", Base64UrlEncode(Payload()));
  EXPECT_TRUE(absl::IsUnauthenticated(Verify(none_input + ".").status()));
  EXPECT_TRUE(absl::IsUnauthenticated(Verify(none_input).status()));

  // A key embedded in the header is never used.
  absl::StatusOr<std::string> jwk =
      signer_->SignCompact(R"({"alg":"ES256","kid":"ec-1","jwk":{}})", Payload());
  ASSERT_TRUE(jwk.ok());
  EXPECT_TRUE(absl::IsUnauthenticated(Verify(*jwk).status()));
}

TEST_F(CitizenAssertionTest, Rs256VerifiesOnlyWhenTheProviderAllowsIt) {
  absl::StatusOr<CitizenAssertionSigner> rsa = CitizenAssertionSigner::GenerateRs256("rsa-1");
  ASSERT_TRUE(rsa.ok());
  absl::StatusOr<Jwks> keys = Jwks::Parse(rsa->JwksJson());
  ASSERT_TRUE(keys.ok()) << keys.status();
  absl::StatusOr<std::string> token = rsa->Mint(Claims());
  ASSERT_TRUE(token.ok());
  EXPECT_TRUE(absl::IsUnauthenticated(
      VerifyCitizenAssertion(*token, *keys, policy_, kCitizen, kNow).status()));
  policy_.algorithms = {JwsAlgorithm::kRS256};
  absl::StatusOr<VerifiedCitizenAssertion> ok =
      VerifyCitizenAssertion(*token, *keys, policy_, kCitizen, kNow);
  EXPECT_TRUE(ok.ok()) << ok.status();
  // An ES256 header against the RSA key does not verify.
  absl::StatusOr<std::string> es = rsa->SignCompact(R"({"alg":"ES256","kid":"rsa-1"})", Payload());
  ASSERT_TRUE(es.ok());
  policy_.algorithms = {JwsAlgorithm::kES256, JwsAlgorithm::kRS256};
  EXPECT_TRUE(absl::IsUnauthenticated(
      VerifyCitizenAssertion(*es, *keys, policy_, kCitizen, kNow).status()));
}

TEST_F(CitizenAssertionTest, JwksRefusesKeysItCannotUseSafely) {
  EXPECT_FALSE(Jwks::Parse(R"({"keys":[]})").ok());
  EXPECT_FALSE(Jwks::Parse(R"({"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]})").ok());
  EXPECT_FALSE(Jwks::Parse("not json").ok());
  // A point that is not on P-256.
  const std::string zero(43, 'A');
  absl::StatusOr<Jwks> off_curve =
      Jwks::Parse(absl::StrCat(R"({"keys":[{"kty":"EC","crv":"P-256","kid":"k","x":")", zero,
                               R"(","y":")", zero, R"("}]})"));
  EXPECT_FALSE(off_curve.ok());
  // An EC key pinned to RS256.
  std::string json = signer_->JwksJson();
  const size_t alg = json.find("\"ES256\"");
  ASSERT_NE(alg, std::string::npos);
  json.replace(alg, 7, "\"RS256\"");
  EXPECT_FALSE(Jwks::Parse(json).ok());
  // Two keys with one kid.
  const std::string key = signer_->JwksJson().substr(9, signer_->JwksJson().size() - 11);
  EXPECT_FALSE(Jwks::Parse(absl::StrCat("{\"keys\":[", key, ",", key, "]}")).ok());
}

TEST(Base64UrlTest, DecodingIsStrict) {
  EXPECT_EQ(Base64UrlDecode("aGk").value_or("?"), "hi");
  EXPECT_EQ(Base64UrlDecode("").value_or("?"), "");
  EXPECT_FALSE(Base64UrlDecode("aGk=").has_value());  // padding
  EXPECT_FALSE(Base64UrlDecode("aGl").has_value());   // non-zero unused bits
  EXPECT_FALSE(Base64UrlDecode("a").has_value());     // impossible length
  EXPECT_FALSE(Base64UrlDecode("a+b/").has_value());  // standard alphabet
  EXPECT_FALSE(Base64UrlDecode("aG k").has_value());  // whitespace
  EXPECT_EQ(Base64UrlEncode("hi"), "aGk");
}

}  // namespace
}  // namespace tellonce::certs
