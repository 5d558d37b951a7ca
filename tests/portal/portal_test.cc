// tellonce-portal over HTTPS against a real broker, connectors and a test OpenID Connect
// provider (portal_harness.h): sign-in (eID with its token checks, development),
// sessions, CSRF, security headers, one citizen's isolation from another, consents,
// history and proofs that verify, and start-up refusals.

#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "certs/merkle.h"
#include "certs/signing.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tellonce/v1/portal.pb.h"
#include "tests/portal/portal_harness.h"
#include "tests/testing/temp_dir.h"

namespace tellonce::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string GrantBody(const std::string& request_id, absl::Duration lifetime = absl::Hours(48)) {
  return absl::StrCat(
      R"({"request_id":")", request_id,
      R"(","consumer":"tax","attributes":["bank.interest_paid","person.name"],)",
      R"("purpose":"TAX_DEDUCTION_CHECK","expires_at":")",
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now() + lifetime, absl::UTCTimeZone()),
      R"(","mode":"UNTIL_EXPIRY"})");
}

template <typename Message>
Message Parse(const std::string& json) {
  Message m;
  google::protobuf::util::JsonParseOptions options;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &m, options).ok()) << json;
  return m;
}

class PortalTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    absl::StatusOr<std::unique_ptr<PortalFederation>> f = PortalFederation::Start(dir_->path());
    ASSERT_TRUE(f.ok()) << f.status();
    fed_ = f->release();
  }
  static void TearDownTestSuite() {
    delete fed_;
    delete dir_;
  }

  HttpsClient Client() { return HttpsClient(fed_->pki.ca(), fed_->portal_port()); }
  HttpsClient SignedIn(const std::string& citizen) {
    HttpsClient c = Client();
    EXPECT_EQ(DevSignIn(c, citizen), 200);
    return c;
  }

  // A second portal process of this federation with changes to its configuration.
  std::unique_ptr<ServerProcess> ExtraPortal(const std::string& name,
                                             const PortalFederationOptions& options,
                                             absl::Status* started) {
    const std::string config = absl::StrCat(fed_->dir, "/", name, ".textproto");
    std::ofstream(config) << fed_->PortalConfigText(absl::StrCat("127.0.0.1:", FreePort()),
                                                    options);
    auto p = std::make_unique<ServerProcess>(PortalBinary(), config,
                                             absl::StrCat(fed_->dir, "/", name, ".log"),
                                             absl::StrCat(fed_->dir, "/", name, ".port"));
    *started = p->Start();
    return p;
  }

  static TempDir* dir_;
  static PortalFederation* fed_;
};

TempDir* PortalTest::dir_ = nullptr;
PortalFederation* PortalTest::fed_ = nullptr;

TEST_F(PortalTest, UnauthenticatedApiCallsGet401AndPagesSendToSignIn) {
  HttpsClient c = Client();
  for (const char* path : {"/api/session", "/api/consents", "/api/history", "/api/proof/0",
                           "/api/directory", "/api/told-once", "/api/consents/X", "/api/nope"}) {
    HttpsClient::Response r = c.Get(path);
    EXPECT_EQ(r.status, 401) << path;
    EXPECT_EQ(JsonField(r.body, "code"), "UNAUTHENTICATED") << path;
    EXPECT_EQ(JsonField(r.body, "sign_in"), "true") << path;
  }
  EXPECT_EQ(c.PostJson("/api/consents", GrantBody("anon")).status, 401);
  HttpsClient::Response page = c.Get("/");
  EXPECT_EQ(page.status, 303);
  EXPECT_EQ(page.header("Location"), "/sign-in");
  EXPECT_EQ(c.Get("/sign-in").status, 200);
  // Public: how to sign in, and the keys browsers verify with.
  EXPECT_EQ(c.Get("/api/sign-in-options").status, 200);
  EXPECT_EQ(c.Get("/api/keys").status, 200);
}

TEST_F(PortalTest, EveryAnswerCarriesAStrictContentSecurityPolicy) {
  HttpsClient c = SignedIn(kJaan);
  for (const char* path :
       {"/", "/sign-in", "/history", "/js/app.js", "/api/consents", "/api/keys", "/nothing-here"}) {
    HttpsClient::Response r = c.Get(path);
    const std::string csp = r.header("Content-Security-Policy");
    EXPECT_THAT(csp, HasSubstr("default-src 'none'")) << path;
    EXPECT_THAT(csp, HasSubstr("script-src 'self'")) << path;
    EXPECT_THAT(csp, HasSubstr("frame-ancestors 'none'")) << path;
    EXPECT_THAT(csp, Not(HasSubstr("unsafe"))) << path;
    EXPECT_THAT(r.header("Strict-Transport-Security"), HasSubstr("max-age=")) << path;
    EXPECT_EQ(r.header("X-Content-Type-Options"), "nosniff") << path;
  }
  EXPECT_EQ(c.Get("/api/consents").header("Cache-Control"), "no-store");
  EXPECT_THAT(c.Get("/js/app.js").header("Content-Type"), HasSubstr("text/javascript"));
  // No inline script anywhere in the UI: every <script> names a file of this origin.
  const std::string web = absl::StrCat(std::getenv("TELLONCE_SOURCE_DIR"), "/portal/web");
  int pages = 0;
  for (const auto& entry : std::filesystem::directory_iterator(web)) {
    if (entry.path().extension() != ".html") continue;
    ++pages;
    std::ifstream in(entry.path());
    const std::string html((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (size_t at = html.find("<script"); at != std::string::npos;
         at = html.find("<script", at + 1)) {
      const std::string tag = html.substr(at, html.find('>', at) - at);
      EXPECT_THAT(tag, HasSubstr("src=\"/js/")) << entry.path();
    }
    EXPECT_THAT(html, Not(HasSubstr(" style="))) << entry.path();
    EXPECT_THAT(html, Not(HasSubstr(" onclick"))) << entry.path();
  }
  EXPECT_GE(pages, 6);
}

TEST_F(PortalTest, SessionCookieIsHttpOnlySecureSameSiteStrict) {
  HttpsClient c = Client();
  HttpsClient::Response r =
      c.PostJson("/auth/dev", absl::StrCat(R"({"citizen_id":")", kJaan, R"("})"));
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string cookie = r.header("Set-Cookie");
  EXPECT_THAT(cookie, HasSubstr("__Host-tellonce-session="));
  EXPECT_THAT(cookie, HasSubstr("; Secure"));
  EXPECT_THAT(cookie, HasSubstr("; HttpOnly"));
  EXPECT_THAT(cookie, HasSubstr("; SameSite=Strict"));
  EXPECT_THAT(cookie, HasSubstr("; Path=/"));
  EXPECT_THAT(cookie, Not(HasSubstr("Domain")));
  EXPECT_EQ(JsonField(r.body, "citizen_id"), kJaan);
  EXPECT_EQ(JsonField(r.body, "sign_in_method"), "dev");
  EXPECT_EQ(JsonField(r.body, "dev_sign_in"), "true");
  // A forged cookie is no session.
  HttpsClient forged = Client();
  forged.cookies()["__Host-tellonce-session"] = "forged-value";
  EXPECT_EQ(forged.Get("/api/session").status, 401);
}

TEST_F(PortalTest, StateChangesNeedTheCsrfTokenAndThisOrigin) {
  HttpsClient c = SignedIn(kMari);
  const std::string token = c.csrf_token();
  ASSERT_FALSE(token.empty());
  // A cross-site POST: the browser sends the cookie (were it not Strict) but cannot read
  // the token.
  c.set_csrf_token("");
  HttpsClient::Response r = c.PostJson("/api/consents", GrantBody("csrf-1"));
  EXPECT_EQ(r.status, 403);
  EXPECT_THAT(JsonField(r.body, "message"), HasSubstr("X-CSRF-Token"));
  c.set_csrf_token(token + "x");
  EXPECT_EQ(c.PostJson("/api/consents", GrantBody("csrf-2")).status, 403);
  c.set_csrf_token(token);
  EXPECT_EQ(
      c.PostJson("/api/consents", GrantBody("csrf-3"), {{"Origin", "https://evil.example"}}).status,
      403);
  EXPECT_EQ(c.PostJson("/auth/logout", "{}", {{"X-CSRF-Token", "wrong"}}).status, 403);
  // Nothing was granted by the refused requests.
  tellonce::v1::ConsentList before = Parse<tellonce::v1::ConsentList>(c.Get("/api/consents").body);
  for (const auto& consent : before.consents()) {
    EXPECT_THAT(consent.request_id(), Not(HasSubstr("csrf-")));
  }
  // With the token and from this origin it works.
  r = c.PostJson("/api/consents", GrantBody("csrf-ok"));
  EXPECT_EQ(r.status, 200) << r.body;
}

TEST_F(PortalTest, DevSignInMustComeAsJsonFromThisOrigin) {
  HttpsClient c = Client();
  const std::string body = absl::StrCat(R"({"citizen_id":")", kJaan, R"("})");
  EXPECT_EQ(c.Send("POST", "/auth/dev", body, "application/json", {}).status, 403);
  EXPECT_EQ(c.PostJson("/auth/dev", body, {{"Origin", "https://evil.example"}}).status, 403);
  EXPECT_EQ(c.Send("POST", "/auth/dev", absl::StrCat("citizen_id=", kJaan),
                   "application/x-www-form-urlencoded", {{"Origin", c.origin()}})
                .status,
            400);
  // Only the configured synthetic citizens.
  HttpsClient::Response r = c.PostJson("/auth/dev", R"({"citizen_id":"39001010002"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(JsonField(r.body, "message"), HasSubstr("citizen_id"));
  EXPECT_EQ(c.Get("/api/session").status, 401);
}

TEST_F(PortalTest, GrantHistoryProofAndRevokeThroughTheApi) {
  HttpsClient c = SignedIn(kJaan);
  HttpsClient::Response granted = c.PostJson("/api/consents", GrantBody("flow-1"));
  ASSERT_EQ(granted.status, 200) << granted.body;
  const std::string consent_id = JsonField(granted.body, "consent.consent_id");
  ASSERT_EQ(consent_id.size(), 26u);
  // Retried (a double click): the same consent.
  EXPECT_EQ(JsonField(c.PostJson("/api/consents", GrantBody("flow-1")).body, "consent.consent_id"),
            consent_id);

  // The receipt verifies with the keys the portal serves.
  tellonce::v1::GetConsentResponse full =
      Parse<tellonce::v1::GetConsentResponse>(c.Get("/api/consents/" + consent_id).body);
  tellonce::v1::SigningKeyList keys = Parse<tellonce::v1::SigningKeyList>(c.Get("/api/keys").body);
  ASSERT_EQ(keys.keys_size(), 1);
  absl::StatusOr<certs::VerifyingKeySet> key_set =
      certs::VerifyingKeySet::FromDirectory(fed_->pki.signing_keys());
  ASSERT_TRUE(key_set.ok());
  EXPECT_TRUE(key_set
                  ->Verify(certs::SignedKind::kConsentReceipt, full.receipt().key_id(),
                           full.receipt().body(), full.receipt().signature())
                  .ok());
  EXPECT_EQ(keys.keys(0).key_id(), full.receipt().key_id());

  // The tax office obtains the data; the access is in the history with a proof.
  tellonce::v1::GetAttributesResponse fetched;
  ASSERT_TRUE(GetAttributes(fed_->pki, fed_->broker_address(), "tax", kJaan,
                            {"bank.interest_paid", "person.name"}, "TAX_DEDUCTION_CHECK", &fetched)
                  .ok());
  tellonce::v1::AccessHistory history =
      Parse<tellonce::v1::AccessHistory>(c.Get("/api/history").body);
  ASSERT_GE(history.events_size(), 2);
  const tellonce::v1::LoggedAccessEvent& last = history.events(history.events_size() - 1);
  EXPECT_EQ(last.event().consumer(), "tax");
  EXPECT_EQ(last.event().basis().consent_id(), consent_id);
  HttpsClient::Response proof_answer = c.Get(absl::StrCat("/api/proof/", last.index()));
  ASSERT_EQ(proof_answer.status, 200) << proof_answer.body;
  tellonce::v1::EntryProof proof = Parse<tellonce::v1::EntryProof>(proof_answer.body);
  ASSERT_TRUE(key_set
                  ->Verify(certs::SignedKind::kCheckpoint, proof.checkpoint().key_id(),
                           proof.checkpoint().body(), proof.checkpoint().signature())
                  .ok());
  tellonce::v1::Checkpoint checkpoint;
  ASSERT_TRUE(checkpoint.ParseFromString(proof.checkpoint().body()));
  EXPECT_EQ(proof.proof().tree_size(), checkpoint.tree_size());
  std::vector<certs::Hash> path;
  for (const std::string& h : proof.proof().path()) path.push_back(*certs::HashFromBytes(h));
  EXPECT_TRUE(certs::VerifyInclusion(last.index(), checkpoint.tree_size(),
                                     certs::LeafHash(proof.proof().event_bytes()), path,
                                     *certs::HashFromBytes(checkpoint.root_hash()))
                  .ok());

  tellonce::v1::ToldOnce told = Parse<tellonce::v1::ToldOnce>(c.Get("/api/told-once").body);
  EXPECT_GE(told.times_not_asked(), 2u);

  // Revoke; twice is a conflict; the next exchange is refused and in the history.
  HttpsClient::Response revoked =
      c.PostJson(absl::StrCat("/api/consents/", consent_id, "/revoke"), R"({"reason":"moved"})");
  ASSERT_EQ(revoked.status, 200) << revoked.body;
  EXPECT_EQ(JsonField(revoked.body, "status"), "REVOKED");
  EXPECT_EQ(c.PostJson(absl::StrCat("/api/consents/", consent_id, "/revoke"), "{}").status, 409);
  ASSERT_TRUE(GetAttributes(fed_->pki, fed_->broker_address(), "tax", kJaan, {"bank.interest_paid"},
                            "TAX_DEDUCTION_CHECK", &fetched)
                  .ok());
  EXPECT_EQ(fetched.results(0).code(), tellonce::v1::RESULT_CONSENT_REVOKED);
  history = Parse<tellonce::v1::AccessHistory>(c.Get("/api/history").body);
  EXPECT_EQ(history.events(history.events_size() - 1).event().outcome(),
            tellonce::v1::AccessEvent::DENIED);
}

TEST_F(PortalTest, ConsentsAreListedInEveryStatus) {
  HttpsClient c = SignedIn(kMari);
  auto grant = [&](const std::string& request_id, const std::string& mode,
                   absl::Duration lifetime) {
    // Date of birth for the tax assessment: no mandate and no other test's consent
    // covers it, so the exchange below rests on these consents alone.
    const std::string body =
        absl::StrReplaceAll(GrantBody(request_id, lifetime),
                            {{"UNTIL_EXPIRY", mode},
                             {R"("bank.interest_paid","person.name")", R"("person.date_of_birth")"},
                             {"TAX_DEDUCTION_CHECK", "TAX_ASSESSMENT"}});
    HttpsClient::Response r = c.PostJson("/api/consents", body);
    EXPECT_EQ(r.status, 200) << r.body;
    return JsonField(r.body, "consent.consent_id");
  };
  const std::string once = grant("status-once", "ONE_TIME", absl::Hours(1));
  const absl::Time brief_end = absl::Now() + absl::Seconds(6);
  const std::string brief = grant("status-brief", "UNTIL_EXPIRY", absl::Seconds(6));
  const std::string revoked = grant("status-revoked", "UNTIL_EXPIRY", absl::Hours(1));
  const std::string active = grant("status-active", "UNTIL_EXPIRY", absl::Hours(1));
  ASSERT_EQ(c.PostJson(absl::StrCat("/api/consents/", revoked, "/revoke"), "{}").status, 200);
  // Only the ONE_TIME consent is left to rest the exchange on, which spends it.
  ASSERT_EQ(c.PostJson(absl::StrCat("/api/consents/", active, "/revoke"), "{}").status, 200);
  tellonce::v1::GetAttributesResponse fetched;
  absl::SleepFor(brief_end + absl::Seconds(1) - absl::Now());  // `brief` has expired
  ASSERT_TRUE(GetAttributes(fed_->pki, fed_->broker_address(), "tax", kMari,
                            {"person.date_of_birth"}, "TAX_ASSESSMENT", &fetched)
                  .ok());
  ASSERT_EQ(fetched.results(0).code(), tellonce::v1::RESULT_OK) << fetched.DebugString();
  tellonce::v1::ConsentList list = Parse<tellonce::v1::ConsentList>(c.Get("/api/consents").body);
  std::map<std::string, std::string> status;
  for (const auto& consent : list.consents()) {
    status[consent.consent_id()] = tellonce::v1::ConsentStatus_Name(consent.status());
  }
  EXPECT_EQ(status[once], "USED");
  EXPECT_EQ(status[brief], "EXPIRED");
  EXPECT_EQ(status[revoked], "REVOKED");
  EXPECT_EQ(status[active], "REVOKED");
}

TEST_F(PortalTest, OneCitizenCannotReadOrChangeAnothersData) {
  HttpsClient jaan = SignedIn(kJaan);
  HttpsClient mari = SignedIn(kMari);
  HttpsClient::Response granted = jaan.PostJson("/api/consents", GrantBody("iso-1"));
  ASSERT_EQ(granted.status, 200) << granted.body;
  const std::string consent_id = JsonField(granted.body, "consent.consent_id");
  tellonce::v1::GetAttributesResponse fetched;
  ASSERT_TRUE(GetAttributes(fed_->pki, fed_->broker_address(), "tax", kJaan, {"person.name"},
                            "TAX_DEDUCTION_CHECK", &fetched)
                  .ok());
  tellonce::v1::AccessHistory jaans =
      Parse<tellonce::v1::AccessHistory>(jaan.Get("/api/history").body);
  ASSERT_GT(jaans.events_size(), 0);
  const uint64_t jaans_entry = jaans.events(jaans.events_size() - 1).index();

  // Mari's lists hold nothing of Jaan's.
  EXPECT_THAT(mari.Get("/api/consents").body, Not(HasSubstr(kJaan)));
  EXPECT_THAT(mari.Get("/api/history").body, Not(HasSubstr(kJaan)));
  // Another citizen's id in the URL or the body is refused, not obeyed.
  EXPECT_EQ(mari.Get(absl::StrCat("/api/consents?citizen_id=", kJaan)).status, 400);
  EXPECT_EQ(mari.Get(absl::StrCat("/api/history?citizen_id=", kJaan)).status, 400);
  HttpsClient::Response with_citizen = mari.PostJson(
      "/api/consents", absl::StrCat(R"({"citizen_id":")", kJaan, R"(","request_id":"x"})"));
  EXPECT_EQ(with_citizen.status, 400);
  EXPECT_THAT(JsonField(with_citizen.body, "message"), HasSubstr("citizen_id"));
  // Jaan's consent and entry, named by id: not found for Mari.
  EXPECT_EQ(mari.Get("/api/consents/" + consent_id).status, 404);
  EXPECT_EQ(mari.PostJson(absl::StrCat("/api/consents/", consent_id, "/revoke"), "{}").status, 404);
  EXPECT_EQ(mari.Get(absl::StrCat("/api/proof/", jaans_entry)).status, 404);
  EXPECT_EQ(jaan.Get(absl::StrCat("/api/proof/", jaans_entry)).status, 200);
  // And Jaan's consent is still active.
  EXPECT_EQ(JsonField(jaan.Get("/api/consents/" + consent_id).body, "consent.status"), "ACTIVE");
}

TEST_F(PortalTest, BadInputIsRefusedWithTheFieldNamed) {
  HttpsClient c = SignedIn(kMari);
  auto refused = [&](const std::string& body, const std::string& field) {
    HttpsClient::Response r = c.PostJson("/api/consents", body);
    EXPECT_EQ(r.status, 400) << body << " -> " << r.body;
    EXPECT_THAT(JsonField(r.body, "message"), HasSubstr(field)) << body;
  };
  refused("{not json", "body");
  refused(R"({"request_id":"b1"})", "consumer");
  refused(R"({"request_id":"b2","consumer":"tax","purpose":"TAX_ASSESSMENT",)"
          R"("expires_at":"2099-01-01T00:00:00Z","mode":"ONE_TIME"})",
          "attributes");
  refused(absl::StrReplaceAll(GrantBody("b3"), {{"\"tax\"", "\"nobody\""}}), "consumer");
  refused(absl::StrReplaceAll(GrantBody("b4"), {{"person.name", "person.shoe_size"}}),
          "attributes");
  refused(GrantBody("b5", absl::Hours(24 * 800)), "expires_at");
  refused(R"({"request_id":"b6","mode":"SOMETIMES"})", "body");
  EXPECT_EQ(c.Get("/api/consents/not-an-id").status, 400);
  EXPECT_EQ(c.Get("/api/proof/-1").status, 400);
  EXPECT_EQ(c.Get("/api/proof/99999999999999999999999").status, 400);
  EXPECT_EQ(c.Get("/api/proof/999999").status, 404);
  HttpsClient::Response big = c.PostJson("/api/consents", std::string(200 * 1024, ' '));
  EXPECT_EQ(big.status, 413);
}

TEST_F(PortalTest, SigningInAgainReplacesTheOldSession) {
  HttpsClient c = SignedIn(kJaan);
  const std::string old_cookie = c.cookies()["__Host-tellonce-session"];
  ASSERT_EQ(DevSignIn(c, kMari), 200);
  EXPECT_NE(c.cookies()["__Host-tellonce-session"], old_cookie);
  EXPECT_EQ(JsonField(c.Get("/api/session").body, "citizen_id"), kMari);
  HttpsClient replay = Client();
  replay.cookies()["__Host-tellonce-session"] = old_cookie;
  EXPECT_EQ(replay.Get("/api/session").status, 401);
}

TEST_F(PortalTest, SignOutEndsTheSession) {
  HttpsClient c = SignedIn(kJaan);
  ASSERT_EQ(c.Get("/api/session").status, 200);
  const std::string cookie = c.cookies()["__Host-tellonce-session"];
  EXPECT_EQ(c.PostJson("/auth/logout", "{}").status, 204);
  EXPECT_EQ(c.Get("/api/session").status, 401);
  // The old cookie, replayed, is no session either.
  HttpsClient replay = Client();
  replay.cookies()["__Host-tellonce-session"] = cookie;
  EXPECT_EQ(replay.Get("/api/consents").status, 401);
}

TEST_F(PortalTest, OidcSignInVerifiesTheIdTokenAndForwardsIt) {
  HttpsClient c = Client();
  const std::string citizen = CitizenId(4242);
  ASSERT_EQ(OidcSignIn(c, fed_->idp_port, fed_->pki.ca(), citizen), 303);
  HttpsClient::Response session = c.Get("/api/session");
  ASSERT_EQ(session.status, 200);
  EXPECT_EQ(JsonField(session.body, "citizen_id"), citizen);
  EXPECT_EQ(JsonField(session.body, "sign_in_method"), "oidc");
  // The broker accepted the forwarded ID token.
  HttpsClient::Response granted = c.PostJson("/api/consents", GrantBody("oidc-1"));
  ASSERT_EQ(granted.status, 200) << granted.body;
  EXPECT_EQ(JsonField(granted.body, "consent.citizen_id"), citizen);
}

TEST_F(PortalTest, OidcClientAuthenticatesWithItsSecret) {
  // The main portal (with the secret) signed in above; a wrong secret, or none, is
  // refused by the provider's token endpoint and the sign-in fails.
  for (const char* secret : {"wrong-secret", ""}) {
    PortalFederationOptions options;
    options.dev_sign_in = false;
    options.client_secret = secret;
    absl::Status started;
    std::unique_ptr<ServerProcess> p =
        ExtraPortal(absl::StrCat("secret-", std::string(secret).size()), options, &started);
    ASSERT_TRUE(started.ok()) << started;
    HttpsClient c(fed_->pki.ca(), p->port());
    EXPECT_EQ(OidcSignIn(c, fed_->idp_port, fed_->pki.ca(), CitizenId(11)), 401) << secret;
    EXPECT_EQ(c.Get("/api/session").status, 401);
    p->Terminate();
    EXPECT_THAT(p->log(), HasSubstr("invalid_client")) << secret;
  }
}

TEST_F(PortalTest, OidcRequestCarriesPkceStateAndNonce) {
  HttpsClient c = Client();
  HttpsClient::Response login = c.Get("/auth/login");
  ASSERT_EQ(login.status, 302);
  const std::string to = login.header("Location");
  for (const char* part :
       {"response_type=code", "client_id=tellonce-portal", "code_challenge_method=S256",
        "code_challenge=", "state=", "nonce=", "scope=openid", "redirect_uri=https"}) {
    EXPECT_THAT(to, HasSubstr(part));
  }
  // (httplib's client decodes the Location it reads; curl shows redirect_uri encoded.)
  EXPECT_THAT(login.header("Set-Cookie"), HasSubstr("SameSite=Lax"));
}

TEST_F(PortalTest, OidcSignInRefusesBadTokens) {
  for (const char* fault :
       {"expired", "wrong_audience", "bad_signature", "wrong_issuer", "wrong_nonce"}) {
    HttpsClient c = Client();
    EXPECT_EQ(OidcSignIn(c, fed_->idp_port, fed_->pki.ca(), CitizenId(7), fault), 401) << fault;
    EXPECT_EQ(c.Get("/api/session").status, 401) << fault;
  }
  EXPECT_THAT(fed_->portal->log(), HasSubstr("sign-in refused"));
  EXPECT_THAT(fed_->portal->log(), HasSubstr("nonce"));
}

TEST_F(PortalTest, OidcCallbackCannotBeReplayedOrFinishedInAnotherBrowser) {
  HttpsClient c = Client();
  std::string callback;
  ASSERT_EQ(OidcSignIn(c, fed_->idp_port, fed_->pki.ca(), CitizenId(8), "", &callback), 303);
  // The same callback again (a replayed state, and a spent code).
  HttpsClient::Response replay = c.Get(callback);
  EXPECT_EQ(replay.status, 401);
  EXPECT_THAT(replay.body, HasSubstr("state"));
  // A sign-in started in one browser and finished in another (login CSRF): the
  // attacker starts it and has the victim's browser land on the callback.
  HttpsClient attacker = Client();
  std::string attackers_callback;
  ASSERT_EQ(OidcSignIn(attacker, fed_->idp_port, fed_->pki.ca(), CitizenId(9), "",
                       &attackers_callback, /*follow=*/false),
            0);
  HttpsClient victim = Client();
  HttpsClient::Response landed = victim.Get(attackers_callback);
  EXPECT_EQ(landed.status, 401);
  EXPECT_THAT(landed.body, HasSubstr("did not start this sign-in"));
  EXPECT_EQ(victim.Get("/api/session").status, 401);
}

TEST_F(PortalTest, SessionsExpire) {
  PortalFederationOptions options;
  options.oidc = false;
  options.extra_config = "session_lifetime { seconds: 4 }";
  absl::Status started;
  std::unique_ptr<ServerProcess> p = ExtraPortal("short-sessions", options, &started);
  ASSERT_TRUE(started.ok()) << started;
  HttpsClient c(fed_->pki.ca(), p->port());
  ASSERT_EQ(DevSignIn(c, kJaan), 200);
  EXPECT_EQ(c.Get("/api/consents").status, 200);
  absl::SleepFor(absl::Seconds(5));
  EXPECT_EQ(c.Get("/api/consents").status, 401);
}

TEST_F(PortalTest, APortalWithANonPortalCertificateIsRefusedByTheBroker) {
  PortalFederationOptions options;
  options.oidc = false;
  options.portal_agency = "tax";
  absl::Status started;
  std::unique_ptr<ServerProcess> p = ExtraPortal("wrong-cert", options, &started);
  ASSERT_TRUE(started.ok()) << started;
  HttpsClient c(fed_->pki.ca(), p->port());
  ASSERT_EQ(DevSignIn(c, kJaan), 200);
  HttpsClient::Response r = c.Get("/api/consents");
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_THAT(JsonField(r.body, "message"), HasSubstr("portal"));
}

TEST_F(PortalTest, BrowsersThatDoNotTrustThePortalsCaCannotConnect) {
  TempDir other;
  absl::StatusOr<Pki> other_pki = MakePki(other.path() + "/pki", SampleDirectoryFile());
  ASSERT_TRUE(other_pki.ok());
  HttpsClient stranger(other_pki->ca(), fed_->portal_port());
  EXPECT_EQ(stranger.Get("/sign-in").status, -1);
}

TEST_F(PortalTest, DevSignInIsRefusedOnANonLoopbackAddress) {
  const std::string config = fed_->dir + "/public.textproto";
  PortalFederationOptions options;
  options.oidc = false;
  std::ofstream(config) << fed_->PortalConfigText("0.0.0.0:0", options);
  std::string output;
  EXPECT_EQ(RunCommand({PortalBinary(), "--config", config, "--check"}, &output), 1);
  EXPECT_THAT(output, HasSubstr("dev_sign_in"));
  EXPECT_THAT(output, HasSubstr("non-loopback"));
  // The same on loopback starts; without any sign-in it does not.
  std::ofstream(config) << fed_->PortalConfigText("127.0.0.1:0", options);
  EXPECT_EQ(RunCommand({PortalBinary(), "--config", config, "--check"}, &output), 0) << output;
  options.dev_sign_in = false;
  std::ofstream(config) << fed_->PortalConfigText("127.0.0.1:0", options);
  EXPECT_EQ(RunCommand({PortalBinary(), "--config", config, "--check"}, &output), 1);
  EXPECT_THAT(output, HasSubstr("sign-in is required"));
}

// The broker, not only the portal, judges the ID token: once it finds the citizen's
// authentication too old, the portal ends the session and asks them to sign in again.
TEST(PortalSessionTest, ABrokerRefusalOfTheIdTokenEndsTheSession) {
  TempDir dir;
  PortalFederationOptions options;
  options.oidc = false;
  options.idp_max_age_seconds = 5;
  absl::StatusOr<std::unique_ptr<PortalFederation>> fed =
      PortalFederation::Start(dir.path(), options);
  ASSERT_TRUE(fed.ok()) << fed.status();
  HttpsClient c((*fed)->pki.ca(), (*fed)->portal_port());
  ASSERT_EQ(DevSignIn(c, kJaan), 200);
  EXPECT_EQ(c.Get("/api/consents").status, 200);
  absl::SleepFor(absl::Seconds(6));
  HttpsClient::Response r = c.Get("/api/consents");
  EXPECT_EQ(r.status, 401) << r.body;
  EXPECT_EQ(JsonField(r.body, "sign_in"), "true");
  EXPECT_THAT(JsonField(r.body, "message"), HasSubstr("too old"));
  EXPECT_EQ(c.Get("/api/session").status, 401);
}

TEST_F(PortalTest, UsageErrorsExit2) {
  std::string output;
  EXPECT_EQ(RunCommand({PortalBinary(), "--bogus"}, &output), 2);
  EXPECT_THAT(output, HasSubstr("--bogus"));
  EXPECT_EQ(RunCommand({PortalBinary()}, &output), 2);
  EXPECT_EQ(RunCommand({PortalBinary(), "--version"}, &output), 0);
  EXPECT_THAT(output, HasSubstr("tellonce-portal"));
}

}  // namespace
}  // namespace tellonce::testing
