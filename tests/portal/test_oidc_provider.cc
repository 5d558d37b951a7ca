// A small OpenID Connect provider for the portal's tests: authorization code flow with
// PKCE (S256), real ES256 ID tokens signed with a key given on the command line, served
// over HTTPS. Not for anything but tests.
//
//   test_oidc_provider --issuer URL --signing-key FILE --tls-cert FILE --tls-key FILE
//       --client-id ID --redirect-uri-prefix URL [--client-secret S] [--port-file FILE]
//
// POST /token needs the client secret (HTTP Basic) when --client-secret is given.
// GET  /authorize   with login_hint=<citizen id>: issues a code and redirects back at
//                   once; without: a form asking for the citizen id (and a fault).
//                   test_fault=<fault> makes this sign-in's ID token bad on purpose:
//                   expired, wrong_audience, bad_signature, wrong_issuer, wrong_nonce.
// POST /token       redeems a code once (redirect_uri, client_id and the PKCE verifier
//                   checked), answers {"id_token": ...}.
// GET  /jwks.json   the signing key's JWK Set.
// Stops on SIGTERM.

#include <httplib.h>
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "certs/citizen_assertion.h"
#include "ops/flags.h"
#include "portal/oidc.h"
#include "portal/sessions.h"

namespace {

using tellonce::certs::CitizenAssertionClaims;
using tellonce::certs::CitizenAssertionSigner;

struct Grant {
  std::string redirect_uri;
  std::string challenge;
  std::string nonce;
  std::string citizen;
  std::string fault;
};

std::string Html(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<tellonce::ops::FlagSpec> specs = {
      {"issuer", "URL", "issuer of the tokens; required"},
      {"signing-key", "FILE", "EC P-256 key that signs ID tokens; required"},
      {"kid", "ID", "key id; default the key file's base name"},
      {"tls-cert", "FILE", "HTTPS certificate; required"},
      {"tls-key", "FILE", "HTTPS key; required"},
      {"client-id", "ID", "the one client; required"},
      {"redirect-uri-prefix", "URL",
       "redirect URIs the client may use start with this (tests run several portals); required"},
      {"client-secret", "SECRET", "when set, /token requires it (client_secret_basic)"},
      {"port-file", "FILE", "write the bound port here"},
  };
  absl::StatusOr<tellonce::ops::ParsedFlags> flags =
      tellonce::ops::ParseFlags(std::vector<std::string>(argv + 1, argv + argc), specs);
  if (!flags.ok()) {
    std::fprintf(stderr, "test_oidc_provider: %s\n", std::string(flags.status().message()).c_str());
    return 2;
  }
  for (const char* required :
       {"issuer", "signing-key", "tls-cert", "tls-key", "client-id", "redirect-uri-prefix"}) {
    if (!flags->Has(required)) {
      std::fprintf(stderr, "test_oidc_provider: --%s is required\n", required);
      return 2;
    }
  }
  absl::StatusOr<CitizenAssertionSigner> signer =
      CitizenAssertionSigner::FromPemFile(flags->Get("signing-key"), flags->Get("kid"));
  absl::StatusOr<CitizenAssertionSigner> impostor =
      CitizenAssertionSigner::GenerateEs256(signer.ok() ? signer->kid() : "x");
  if (!signer.ok() || !impostor.ok()) {
    std::fprintf(stderr, "test_oidc_provider: %s\n",
                 std::string(signer.status().message()).c_str());
    return 1;
  }
  const std::string issuer = flags->Get("issuer");
  const std::string client_id = flags->Get("client-id");
  const std::string redirect_prefix = flags->Get("redirect-uri-prefix");
  const std::string client_secret = flags->Get("client-secret");

  std::mutex mu;
  std::map<std::string, Grant> codes;

  httplib::SSLServer server(flags->Get("tls-cert").c_str(), flags->Get("tls-key").c_str());
  if (!server.is_valid()) {
    std::fprintf(stderr, "test_oidc_provider: bad TLS files\n");
    return 1;
  }
  server.Get("/jwks.json", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(signer->JwksJson(), "application/json");
  });
  server.Get("/authorize", [&](const httplib::Request& req, httplib::Response& res) {
    auto param = [&](const char* name) { return req.get_param_value(name); };
    if (param("response_type") != "code" || param("client_id") != client_id ||
        !absl::StartsWith(param("redirect_uri"), redirect_prefix) ||
        param("code_challenge_method") != "S256" || param("code_challenge").empty() ||
        param("state").empty() || param("nonce").empty()) {
      res.status = 400;
      res.set_content("bad authorization request\n", "text/plain");
      return;
    }
    if (!req.has_param("login_hint")) {
      std::string hidden;
      for (const auto& [k, v] : req.params) {
        hidden += absl::StrCat("<input type=\"hidden\" name=\"", Html(k), "\" value=\"", Html(v),
                               "\">\n");
      }
      res.set_content(
          absl::StrCat("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                       "<title>Test eID</title></head><body><main><h1>Test eID</h1>"
                       "<form method=\"get\" action=\"/authorize\">",
                       hidden,
                       "<p><label for=\"login_hint\">Citizen id</label> "
                       "<input id=\"login_hint\" name=\"login_hint\"></p>"
                       "<p><label for=\"test_fault\">Fault</label> <select id=\"test_fault\" "
                       "name=\"test_fault\"><option value=\"\">none</option>"
                       "<option>expired</option><option>wrong_audience</option>"
                       "<option>bad_signature</option><option>wrong_issuer</option>"
                       "<option>wrong_nonce</option></select></p>"
                       "<p><button id=\"approve\" type=\"submit\">Sign in</button></p>"
                       "</form></main></body></html>"),
          "text/html; charset=utf-8");
      return;
    }
    const std::string code = tellonce::portal::RandomToken();
    {
      std::lock_guard<std::mutex> lock(mu);
      codes[code] = Grant{param("redirect_uri"), param("code_challenge"), param("nonce"),
                          param("login_hint"), param("test_fault")};
    }
    res.status = 302;
    res.set_header("Location", absl::StrCat(param("redirect_uri"), "?code=", code, "&state=",
                                            tellonce::portal::FormEncode(param("state"))));
  });
  server.Post("/token", [&](const httplib::Request& req, httplib::Response& res) {
    auto param = [&](const char* name) { return req.get_param_value(name); };
    auto refuse = [&](const char* error) {
      res.status = 400;
      res.set_content(absl::StrCat("{\"error\":\"", error, "\"}"), "application/json");
    };
    if (!client_secret.empty()) {
      // client_secret_basic (RFC 6749 2.3.1): form-encoded id and secret.
      const std::string expected = absl::StrCat(
          "Basic ", absl::Base64Escape(absl::StrCat(tellonce::portal::FormEncode(client_id), ":",
                                                    tellonce::portal::FormEncode(client_secret))));
      if (req.get_header_value("Authorization") != expected) {
        res.status = 401;
        res.set_content("{\"error\":\"invalid_client\"}", "application/json");
        return;
      }
    }
    Grant grant;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = codes.find(param("code"));
      if (it == codes.end()) return refuse("invalid_grant");
      grant = it->second;
      codes.erase(it);  // one use
    }
    if (param("grant_type") != "authorization_code" || param("client_id") != client_id ||
        param("redirect_uri") != grant.redirect_uri) {
      return refuse("invalid_request");
    }
    if (tellonce::portal::PkceChallenge(param("code_verifier")) != grant.challenge) {
      return refuse("invalid_grant");
    }
    CitizenAssertionClaims claims;
    claims.issuer = issuer;
    claims.audience = client_id;
    claims.citizen_id = grant.citizen;
    claims.issued_at = absl::Now();
    claims.lifetime = absl::Minutes(10);
    claims.nonce = grant.nonce;
    const CitizenAssertionSigner* key = &*signer;
    if (grant.fault == "expired") {
      claims.issued_at = absl::Now() - absl::Minutes(30);
      claims.lifetime = absl::Minutes(5);
    } else if (grant.fault == "wrong_audience") {
      claims.audience = "another-portal";
    } else if (grant.fault == "bad_signature") {
      key = &*impostor;
    } else if (grant.fault == "wrong_issuer") {
      claims.issuer = "https://impostor.example";
    } else if (grant.fault == "wrong_nonce") {
      claims.nonce = tellonce::portal::RandomToken();
    }
    absl::StatusOr<std::string> token = key->Mint(claims);
    if (!token.ok()) return refuse("server_error");
    res.set_header("Cache-Control", "no-store");
    res.set_content(absl::StrCat("{\"access_token\":\"unused\",\"token_type\":\"Bearer\","
                                 "\"expires_in\":600,\"id_token\":\"",
                                 *token, "\"}"),
                    "application/json");
  });

  const int port = server.bind_to_any_port("127.0.0.1");
  if (port <= 0) return 1;
  if (flags->Has("port-file")) {
    const std::string tmp = flags->Get("port-file") + ".tmp";
    std::ofstream(tmp) << port << "\n";
    std::rename(tmp.c_str(), flags->Get("port-file").c_str());
  }
  // SIGTERM stops the listener; the default action would do too, but a clean stop lets
  // the test see exit code 0.
  static httplib::SSLServer* running = &server;
  signal(SIGTERM, [](int) { running->stop(); });
  server.listen_after_bind();
  return 0;
}
