#ifndef TELLONCE_PORTAL_OIDC_H_
#define TELLONCE_PORTAL_OIDC_H_

// Citizen sign-in. Two ways in, one result: a verified ID token for one citizen, which
// the portal keeps in the session and forwards to the broker as the citizen assertion.
//
//  - OidcRelyingParty: OpenID Connect authorization code flow with PKCE (S256) against
//    the national eID provider (RFC 6749, RFC 7636, OpenID Connect Core 1.0). Begin()
//    makes the redirect to the provider with a fresh state, nonce and code verifier;
//    Complete() redeems the code at the token endpoint (HTTPS, the provider's
//    certificate verified) and verifies the ID token against the provider's JWKS:
//    signature (algorithm pinned by configuration), issuer, audience, expiry, age and
//    the nonce of this sign-in (certs::VerifyIdToken).
//  - DevSignIn: development only. Mints an ID token for a synthetic citizen with a
//    development identity provider's key that the broker's directory trusts, and
//    verifies it like any other. Refused on a non-loopback address (config.h).
//
// Both are immutable after creation except the JWKS cache; thread-safe.

#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "certs/citizen_assertion.h"
#include "portal/sessions.h"
#include "tellonce/v1/portal.pb.h"

namespace tellonce::portal {

// What a successful sign-in yields.
struct SignedInCitizen {
  std::string id_token;
  certs::VerifiedCitizenAssertion evidence;
};

// https://host[:port]/path?query split up. INVALID_ARGUMENT for anything else.
struct HttpsUrl {
  std::string host;
  int port = 443;
  // With the query, "/" when empty.
  std::string path;
};
absl::StatusOr<HttpsUrl> ParseHttpsUrl(std::string_view url);

// application/x-www-form-urlencoded / query component encoding (RFC 3986 unreserved
// characters kept, everything else %XX).
std::string FormEncode(std::string_view value);

// base64url(SHA-256(verifier)): the PKCE S256 code challenge.
std::string PkceChallenge(std::string_view code_verifier);

class OidcRelyingParty {
 public:
  // Loads the provider's JWKS (file, or jwks_uri over HTTPS) and the client secret.
  // Errors name the field.
  static absl::StatusOr<std::unique_ptr<OidcRelyingParty>> Create(
      const tellonce::v1::OidcProviderConfig& config, absl::Duration max_age);

  struct Redirect {
    // The provider's authorization endpoint with the request's query.
    std::string url;
    std::string state;
    PendingSignIn pending;  // nonce, code verifier; binding and expiry left to the caller
  };
  Redirect Begin() const;

  // Redeems `code` and verifies the ID token against `pending` (its nonce and code
  // verifier). UNAUTHENTICATED "sign-in: ..." naming what failed (the provider refused
  // the code, a token that does not verify: certs::VerifyIdToken's reasons);
  // UNAVAILABLE when the provider cannot be reached.
  absl::StatusOr<SignedInCitizen> Complete(std::string_view code, const PendingSignIn& pending,
                                           absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

  // The verification of an ID token against this provider (exposed for tests).
  absl::StatusOr<certs::VerifiedCitizenAssertion> Verify(std::string_view id_token,
                                                         std::string_view nonce, absl::Time now)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  OidcRelyingParty(tellonce::v1::OidcProviderConfig config, absl::Duration max_age)
      : config_(std::move(config)), max_age_(max_age) {}
  absl::StatusOr<std::string> Post(const std::string& url, const std::string& form) const;
  absl::StatusOr<std::string> Get(const std::string& url) const;
  absl::Status RefreshJwks(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

  const tellonce::v1::OidcProviderConfig config_;
  const absl::Duration max_age_;
  std::string client_secret_;
  mutable absl::Mutex mu_;
  certs::Jwks jwks_ ABSL_GUARDED_BY(mu_);
  absl::Time jwks_fetched_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

class DevSignIn {
 public:
  static absl::StatusOr<std::unique_ptr<DevSignIn>> Create(
      const tellonce::v1::DevSignInConfig& config);
  // A freshly minted and verified ID token for `citizen_id`, which must be one of the
  // configured citizens (INVALID_ARGUMENT otherwise), valid for `lifetime`.
  absl::StatusOr<SignedInCitizen> SignIn(std::string_view citizen_id, absl::Duration lifetime,
                                         absl::Time now) const;
  const tellonce::v1::DevSignInConfig& config() const { return config_; }

 private:
  DevSignIn(tellonce::v1::DevSignInConfig config, certs::CitizenAssertionSigner signer,
            certs::Jwks jwks)
      : config_(std::move(config)), signer_(std::move(signer)), jwks_(std::move(jwks)) {}
  const tellonce::v1::DevSignInConfig config_;
  const certs::CitizenAssertionSigner signer_;
  const certs::Jwks jwks_;
};

}  // namespace tellonce::portal

#endif  // TELLONCE_PORTAL_OIDC_H_
