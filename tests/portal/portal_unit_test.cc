// The portal's pure parts: configuration checks, sessions and pending sign-ins, the
// OpenID Connect helpers, the "told once" summary, the directory in words.

#include <filesystem>
#include <fstream>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "portal/citizen_api.h"
#include "portal/config.h"
#include "portal/oidc.h"
#include "portal/sessions.h"
#include "tests/testing/temp_dir.h"

namespace tellonce::portal {
namespace {

using ::testing::HasSubstr;

TEST(PortalConfigTest, LoopbackAddressesAreRecognised) {
  for (const char* a : {"127.0.0.1:8443", "127.1.2.3:0", "localhost:1", "[::1]:8443"}) {
    EXPECT_TRUE(IsLoopbackAddress(a)) << a;
  }
  for (const char* a : {"0.0.0.0:8443", "10.0.0.1:1", "[::]:1", "128.0.0.1:1", "127.0.0:1",
                        "127.0.0.256:1", "example.org:443", "127.0.0.1.evil:1"}) {
    EXPECT_FALSE(IsLoopbackAddress(a)) << a;
  }
}

class PortalConfigFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* f : {"cert.pem", "key.pem", "ca.pem", "agency.pem", "agency.key", "idp.key"}) {
      std::ofstream(dir_.path() + "/" + f) << "x";
    }
    std::ofstream(dir_.path() + "/directory.textproto") << "trust_domain: \"t.local\"\n";
  }
  tellonce::v1::PortalConfig Valid() {
    tellonce::v1::PortalConfig c;
    c.set_https_cert_file("cert.pem");
    c.set_https_key_file("key.pem");
    c.set_broker_address("127.0.0.1:7443");
    c.mutable_broker_tls()->set_ca_file("ca.pem");
    c.mutable_broker_tls()->set_cert_file("agency.pem");
    c.mutable_broker_tls()->set_key_file("agency.key");
    c.set_directory_file("directory.textproto");
    c.set_signing_keys_dir("keys");
    c.mutable_dev_sign_in()->set_idp_key_file("idp.key");
    c.mutable_dev_sign_in()->add_citizens()->set_citizen_id("37605030299");
    return c;
  }
  absl::Status Check(tellonce::v1::PortalConfig c) {
    return CheckPortalConfig(std::move(c), dir_.path()).status();
  }
  testing::TempDir dir_;
};

TEST_F(PortalConfigFilesTest, DefaultsAreFilledAndPathsResolved) {
  absl::StatusOr<PortalOptions> o = CheckPortalConfig(Valid(), dir_.path());
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->config.listen_address(), "127.0.0.1:8443");
  EXPECT_EQ(o->session_lifetime, absl::Minutes(15));
  EXPECT_EQ(o->config.https_cert_file(), dir_.path() + "/cert.pem");
  EXPECT_EQ(o->config.dev_sign_in().issuer(), "https://eid.tellonce.local");
  EXPECT_EQ(o->directory.trust_domain(), "t.local");
}

TEST_F(PortalConfigFilesTest, MistakesNameTheField) {
  auto expect = [&](tellonce::v1::PortalConfig c, const std::string& field) {
    absl::Status s = Check(std::move(c));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_THAT(std::string(s.message()), HasSubstr(field));
  };
  tellonce::v1::PortalConfig c = Valid();
  c.set_listen_address("0.0.0.0:8443");
  expect(c, "dev_sign_in");
  c = Valid();
  c.set_listen_address("nonsense");
  expect(c, "listen_address");
  c = Valid();
  c.set_https_key_file("missing.pem");
  expect(c, "https_key_file");
  c = Valid();
  c.clear_dev_sign_in();
  expect(c, "sign-in is required");
  c = Valid();
  c.mutable_dev_sign_in()->clear_citizens();
  expect(c, "dev_sign_in.citizens");
  c = Valid();
  c.mutable_oidc()->set_issuer("https://eid.example");
  c.mutable_oidc()->set_authorization_endpoint("http://eid.example/authorize");
  expect(c, "oidc.authorization_endpoint");
  c.mutable_oidc()->set_authorization_endpoint("https://eid.example/authorize");
  c.mutable_oidc()->set_token_endpoint("https://eid.example/token");
  expect(c, "oidc.jwks_file");
  c.mutable_oidc()->set_jwks_uri("https://eid.example/jwks");
  expect(c, "oidc.client_id");
  c.mutable_oidc()->set_client_id("tellonce-portal");
  expect(c, "oidc.redirect_uri");
  c.mutable_oidc()->set_redirect_uri("https://portal.example/auth/callback");
  c.mutable_oidc()->add_algorithms("HS256");
  expect(c, "oidc.algorithms[0]");
  c.mutable_oidc()->clear_algorithms();
  EXPECT_TRUE(Check(c).ok());
  c = Valid();
  c.mutable_session_lifetime()->set_seconds(86400);
  expect(c, "session_lifetime");
}

TEST(SessionStoreTest, SessionsExpireAndCanBeRemoved) {
  SessionStore store(10);
  const absl::Time now = absl::Now();
  Session s;
  s.citizen_id = "c";
  s.expires_at = now + absl::Minutes(1);
  const std::string id = store.Create(s, now);
  EXPECT_EQ(id.size(), 43u);
  std::optional<Session> found = store.Find(id, now);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->csrf_token.size(), 43u);
  EXPECT_FALSE(store.Find("other", now).has_value());
  EXPECT_FALSE(store.Find(id, now + absl::Minutes(2)).has_value());
  EXPECT_EQ(store.size(), 0u);  // the expired one was dropped
  const std::string again = store.Create(s, now);
  store.Remove(again);
  EXPECT_FALSE(store.Find(again, now).has_value());
}

TEST(SessionStoreTest, AFullStoreDropsTheSessionNearestItsEnd) {
  SessionStore store(2);
  const absl::Time now = absl::Now();
  Session s;
  s.expires_at = now + absl::Minutes(1);
  const std::string first = store.Create(s, now);
  s.expires_at = now + absl::Minutes(5);
  const std::string second = store.Create(s, now);
  const std::string third = store.Create(s, now);
  EXPECT_EQ(store.size(), 2u);
  EXPECT_FALSE(store.Find(first, now).has_value());
  EXPECT_TRUE(store.Find(second, now).has_value());
  EXPECT_TRUE(store.Find(third, now).has_value());
}

TEST(PendingSignInsTest, AStateIsUsedOnceAndExpires) {
  PendingSignIns pending;
  const absl::Time now = absl::Now();
  pending.Put("s1", PendingSignIn{"n", "v", "b", now + absl::Minutes(10)}, now);
  pending.Put("s2", PendingSignIn{"n", "v", "b", now + absl::Minutes(10)}, now);
  ASSERT_TRUE(pending.Take("s1", now).has_value());
  EXPECT_FALSE(pending.Take("s1", now).has_value());                      // replayed
  EXPECT_FALSE(pending.Take("s2", now + absl::Minutes(11)).has_value());  // expired
  EXPECT_FALSE(pending.Take("never", now).has_value());
}

TEST(SecretsTest, ComparisonNeedsEqualNonEmptyValues) {
  EXPECT_TRUE(SecretsEqual("abc", "abc"));
  EXPECT_FALSE(SecretsEqual("abc", "abd"));
  EXPECT_FALSE(SecretsEqual("abc", "ab"));
  EXPECT_FALSE(SecretsEqual("", ""));
  EXPECT_NE(RandomToken(), RandomToken());
}

TEST(OidcHelpersTest, PkceChallengeIsRfc7636AppendixB) {
  EXPECT_EQ(PkceChallenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

TEST(OidcHelpersTest, UrlsAndFormEncoding) {
  EXPECT_EQ(FormEncode("https://p.example/a b?c=d&e"),
            "https%3A%2F%2Fp.example%2Fa%20b%3Fc%3Dd%26e");
  EXPECT_EQ(FormEncode("AZaz09-._~"), "AZaz09-._~");
  absl::StatusOr<HttpsUrl> u = ParseHttpsUrl("https://eid.example:8443/oauth/token?x=1");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "eid.example");
  EXPECT_EQ(u->port, 8443);
  EXPECT_EQ(u->path, "/oauth/token?x=1");
  u = ParseHttpsUrl("https://eid.example");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->path, "/");
  for (const char* bad : {"http://eid.example/", "https://", "https://user@eid.example/",
                          "https://eid.example:99999/", "https://eid.example:x/"}) {
    EXPECT_FALSE(ParseHttpsUrl(bad).ok()) << bad;
  }
}

TEST(DevSignInTest, MintsAVerifiedTokenOnlyForItsCitizens) {
  testing::TempDir dir;
  // A PEM of a fresh key, written as make-dev-pki would.
  std::string pem;
  {
    FILE* p =
        popen("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 2>/dev/null", "r");
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) pem.append(buf, n);
    pclose(p);
  }
  std::ofstream(dir.path() + "/dev-idp.key") << pem;
  tellonce::v1::DevSignInConfig config;
  config.set_idp_key_file(dir.path() + "/dev-idp.key");
  config.set_issuer("https://eid.tellonce.local");
  config.set_audience("tellonce-portal");
  config.add_citizens()->set_citizen_id("37605030299");
  absl::StatusOr<std::unique_ptr<DevSignIn>> dev = DevSignIn::Create(config);
  ASSERT_TRUE(dev.ok()) << dev.status();
  const absl::Time now = absl::Now();
  absl::StatusOr<SignedInCitizen> who = (*dev)->SignIn("37605030299", absl::Minutes(15), now);
  ASSERT_TRUE(who.ok()) << who.status();
  EXPECT_EQ(who->evidence.citizen_id, "37605030299");
  EXPECT_EQ(who->evidence.issuer, "https://eid.tellonce.local");
  EXPECT_LE(who->evidence.expires_at, now + absl::Minutes(15) + absl::Seconds(1));
  EXPECT_EQ((*dev)->SignIn("49403136526", absl::Minutes(15), now).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(OidcRelyingPartyTest, VerifiesTokensAgainstAJwksFileAndThisSignInsNonce) {
  testing::TempDir dir;
  absl::StatusOr<certs::CitizenAssertionSigner> signer =
      certs::CitizenAssertionSigner::GenerateEs256("eid-1");
  ASSERT_TRUE(signer.ok());
  std::ofstream(dir.path() + "/jwks.json") << signer->JwksJson();
  tellonce::v1::OidcProviderConfig config;
  config.set_issuer("https://eid.example");
  config.set_authorization_endpoint("https://eid.example/authorize?prompt=login");
  config.set_token_endpoint("https://eid.example/token");
  config.set_jwks_file(dir.path() + "/jwks.json");
  config.set_client_id("portal-client");
  config.set_redirect_uri("https://portal.example/auth/callback");
  config.add_scopes("openid");
  config.set_citizen_claim("sub");
  config.add_algorithms("ES256");
  absl::StatusOr<std::unique_ptr<OidcRelyingParty>> rp =
      OidcRelyingParty::Create(config, absl::Minutes(15));
  ASSERT_TRUE(rp.ok()) << rp.status();

  OidcRelyingParty::Redirect r = (*rp)->Begin();
  EXPECT_THAT(r.url, ::testing::StartsWith("https://eid.example/authorize?prompt=login&"));
  EXPECT_THAT(r.url, HasSubstr("&code_challenge=" + PkceChallenge(r.pending.code_verifier)));
  EXPECT_THAT(r.url, HasSubstr("&nonce=" + r.pending.nonce));
  EXPECT_THAT(r.url, HasSubstr("&state=" + r.state));
  EXPECT_NE(r.state, r.pending.nonce);

  const absl::Time now = absl::Now();
  certs::CitizenAssertionClaims claims;
  claims.issuer = "https://eid.example";
  claims.audience = "portal-client";
  claims.citizen_id = "37605030299";
  claims.issued_at = now;
  claims.nonce = r.pending.nonce;
  const std::string token = *signer->Mint(claims);
  absl::StatusOr<certs::VerifiedCitizenAssertion> ok = (*rp)->Verify(token, r.pending.nonce, now);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->citizen_id, "37605030299");
  for (const std::string& nonce : {std::string("another"), std::string()}) {
    absl::Status s = (*rp)->Verify(token, nonce, now).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated) << nonce;
    EXPECT_THAT(std::string(s.message()), HasSubstr("sign-in:"));
  }
  claims.audience = "another-client";
  EXPECT_FALSE((*rp)->Verify(*signer->Mint(claims), r.pending.nonce, now).ok());
  // A JWKS file that does not load stops start-up, naming the field.
  std::ofstream(dir.path() + "/jwks.json") << "{}";
  absl::Status bad = OidcRelyingParty::Create(config, absl::Minutes(15)).status();
  EXPECT_THAT(std::string(bad.message()), HasSubstr("oidc.jwks_file"));
}

tellonce::v1::LoggedAccessEvent Logged(const std::string& consumer,
                                       std::vector<std::string> attributes, bool allowed,
                                       const std::string& notified = "") {
  tellonce::v1::LoggedAccessEvent l;
  l.mutable_event()->set_consumer(consumer);
  l.mutable_event()->set_provider(notified.empty() ? "bank" : "");
  for (auto& a : attributes) l.mutable_event()->add_attributes(a);
  l.mutable_event()->set_outcome(allowed ? tellonce::v1::AccessEvent::ALLOWED
                                         : tellonce::v1::AccessEvent::DENIED);
  l.mutable_event()->set_notified_event_type(notified);
  return l;
}

TEST(ToldOnceTest, CountsReuseByFactAgencyAndChange) {
  tellonce::v1::Directory directory;
  auto* attr = directory.add_attributes();
  attr->set_name("person.address");
  attr->set_provider("registry");
  tellonce::v1::AccessHistory history;
  *history.add_events() = Logged("tax", {"bank.interest_paid", "person.name"}, true);
  *history.add_events() = Logged("tax", {"bank.interest_paid"}, true);
  *history.add_events() = Logged("benefits", {"bank.interest_paid"}, true);
  *history.add_events() = Logged("benefits", {"person.name"}, false);
  *history.add_events() = Logged("tax", {"person.address"}, true, "ADDRESS_CHANGED");
  tellonce::v1::ToldOnce told = SummarizeToldOnce(history, directory);
  EXPECT_EQ(told.times_not_asked(), 4u);
  EXPECT_EQ(told.refusals(), 1u);
  ASSERT_EQ(told.facts_size(), 3);
  EXPECT_EQ(told.facts(0).attribute(), "bank.interest_paid");
  EXPECT_EQ(told.facts(0).deliveries(), 3u);
  EXPECT_THAT(told.facts(0).consumers(), ::testing::ElementsAre("benefits", "tax"));
  EXPECT_EQ(told.facts(1).attribute(), "person.address");
  EXPECT_EQ(told.facts(1).changes_told(), 1u);
  EXPECT_EQ(told.facts(1).deliveries(), 0u);
  EXPECT_EQ(told.facts(1).provider(), "registry");
  EXPECT_EQ(told.facts(2).deliveries(), 1u);
}

TEST(CitizenApiTest, ConsentIdsAreCheckedBeforeTheBrokerIsAsked) {
  EXPECT_TRUE(CheckConsentId("01M8Q5J6WW8MJD6HNWTPM9A8XT").ok());
  for (const char* bad : {"", "01M8Q5J6WW8MJD6HNWTPM9A8X", "01M8Q5J6WW8MJD6HNWTPM9A8XI",
                          "../../etc/passwd-xxxxxxxxxx", "01m8q5j6ww8mjd6hnwtpm9a8xt"}) {
    EXPECT_EQ(CheckConsentId(bad).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(DirectoryViewTest, WordsFallBackToIdsAndLimitsToDefaults) {
  tellonce::v1::Directory d;
  auto* a = d.add_agencies();
  a->set_id("tax");
  a->add_roles(tellonce::v1::CONSUMER);
  auto* p = d.add_purposes();
  p->set_code("X");
  tellonce::v1::DirectoryView view = MakeDirectoryView(d);
  EXPECT_EQ(view.agencies(0).name(), "tax");
  EXPECT_TRUE(view.agencies(0).consumer());
  EXPECT_EQ(view.purposes(0).description(), "X");
  EXPECT_EQ(view.max_consent_lifetime().seconds(), 365 * 86400);
  EXPECT_EQ(view.max_attributes_per_consent(), 32u);
}

}  // namespace
}  // namespace tellonce::portal
