#include "portal/oidc.h"

#include <httplib.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "openssl/evp.h"
#include "proto/textproto.h"

namespace tellonce::portal {
namespace {

constexpr size_t kMaxProviderAnswer = 256 * 1024;
// How long a JWKS fetched from jwks_uri is kept before a token with an unknown kid may
// fetch it again.
constexpr absl::Duration kJwksRefreshInterval = absl::Minutes(1);

absl::Status SignInFailed(absl::string_view reason) {
  return absl::UnauthenticatedError(absl::StrCat("sign-in: ", reason));
}

std::vector<certs::JwsAlgorithm> Algorithms(
    const google::protobuf::RepeatedPtrField<std::string>& names) {
  std::vector<certs::JwsAlgorithm> out;
  for (const std::string& n : names) {
    if (auto a = certs::ParseJwsAlgorithm(n)) out.push_back(*a);
  }
  return out;
}

}  // namespace

absl::StatusOr<HttpsUrl> ParseHttpsUrl(std::string_view url) {
  constexpr std::string_view kScheme = "https://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return absl::InvalidArgumentError("not an https URL");
  }
  std::string_view rest = url.substr(kScheme.size());
  const size_t slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  HttpsUrl out;
  out.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (!out.path.empty() && out.path[0] == '?') out.path = "/" + out.path;
  if (authority.empty() || authority.find('@') != std::string_view::npos) {
    return absl::InvalidArgumentError("URL has no host (or has user info)");
  }
  size_t colon = authority.rfind(':');
  if (authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return absl::InvalidArgumentError("bad IPv6 host");
    colon = authority.find(':', close);
  }
  if (colon != std::string_view::npos) {
    if (!absl::SimpleAtoi(
            absl::string_view(authority.data() + colon + 1, authority.size() - colon - 1),
            &out.port) ||
        out.port <= 0 || out.port > 65535) {
      return absl::InvalidArgumentError("bad port");
    }
    authority = authority.substr(0, colon);
  }
  out.host = std::string(authority);
  return out;
}

std::string FormEncode(std::string_view value) {
  std::string out;
  for (unsigned char c : value) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(&out, "%", absl::string_view("0123456789ABCDEF" + (c >> 4), 1),
                      absl::string_view("0123456789ABCDEF" + (c & 15), 1));
    }
  }
  return out;
}

std::string PkceChallenge(std::string_view code_verifier) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(code_verifier.data(), code_verifier.size(), digest, &length, EVP_sha256(), nullptr);
  return certs::Base64UrlEncode(std::string_view(reinterpret_cast<char*>(digest), length));
}

// ---------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<OidcRelyingParty>> OidcRelyingParty::Create(
    const tellonce::v1::OidcProviderConfig& config, absl::Duration max_age) {
  std::unique_ptr<OidcRelyingParty> rp(new OidcRelyingParty(config, max_age));
  if (!config.client_secret_file().empty()) {
    absl::StatusOr<std::string> secret = ReadFileToString(config.client_secret_file());
    if (!secret.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("oidc.client_secret_file: ", secret.status().message()));
    }
    rp->client_secret_ = std::string(absl::StripAsciiWhitespace(*secret));
  }
  for (const std::string* url : {&config.authorization_endpoint(), &config.token_endpoint()}) {
    if (absl::StatusOr<HttpsUrl> u = ParseHttpsUrl(*url); !u.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("oidc: ", *url, ": ", u.status().message()));
    }
  }
  if (!config.jwks_file().empty()) {
    absl::StatusOr<certs::Jwks> jwks = certs::Jwks::FromFile(config.jwks_file());
    if (!jwks.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("oidc.jwks_file: ", jwks.status().message()));
    }
    absl::MutexLock lock(&rp->mu_);
    rp->jwks_ = *std::move(jwks);
  } else if (absl::Status s = rp->RefreshJwks(absl::Now()); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("oidc.jwks_uri: ", s.message()));
  }
  return rp;
}

OidcRelyingParty::Redirect OidcRelyingParty::Begin() const {
  Redirect r;
  r.state = RandomToken();
  r.pending.nonce = RandomToken();
  r.pending.code_verifier = RandomToken();
  const std::string& endpoint = config_.authorization_endpoint();
  r.url = absl::StrCat(endpoint, endpoint.find('?') == std::string::npos ? "?" : "&",
                       "response_type=code&client_id=", FormEncode(config_.client_id()),
                       "&redirect_uri=", FormEncode(config_.redirect_uri()),
                       "&scope=", FormEncode(absl::StrJoin(config_.scopes(), " ")),
                       "&state=", r.state, "&nonce=", r.pending.nonce,
                       "&code_challenge=", PkceChallenge(r.pending.code_verifier),
                       "&code_challenge_method=S256");
  return r;
}

namespace {

std::unique_ptr<httplib::SSLClient> ClientFor(const HttpsUrl& url, const std::string& ca_file) {
  auto client = std::make_unique<httplib::SSLClient>(url.host, url.port);
  if (!ca_file.empty()) client->set_ca_cert_path(ca_file.c_str());
  client->enable_server_certificate_verification(true);
  client->set_connection_timeout(5, 0);
  client->set_read_timeout(10, 0);
  client->set_write_timeout(10, 0);
  return client;
}

}  // namespace

absl::StatusOr<std::string> OidcRelyingParty::Post(const std::string& url,
                                                   const std::string& form) const {
  absl::StatusOr<HttpsUrl> u = ParseHttpsUrl(url);
  if (!u.ok()) return u.status();
  std::unique_ptr<httplib::SSLClient> client = ClientFor(*u, config_.ca_file());
  if (!client_secret_.empty()) {
    client->set_basic_auth(FormEncode(config_.client_id()).c_str(),
                           FormEncode(client_secret_).c_str());
  }
  httplib::Result res = client->Post(u->path.c_str(), form, "application/x-www-form-urlencoded");
  if (!res) {
    return absl::UnavailableError(
        absl::StrCat("identity provider unreachable: ", httplib::to_string(res.error())));
  }
  if (res->body.size() > kMaxProviderAnswer) {
    return SignInFailed("the identity provider's answer is too large");
  }
  if (res->status != 200) {
    // RFC 6749 5.2: {"error": "invalid_grant", ...}; the code, never the description.
    google::protobuf::Struct error;
    std::string code = "unknown";
    if (google::protobuf::util::JsonStringToMessage(res->body, &error).ok()) {
      auto it = error.fields().find("error");
      if (it != error.fields().end() && it->second.has_string_value() &&
          it->second.string_value().size() < 64) {
        code = it->second.string_value();
      }
    }
    return SignInFailed(absl::StrCat("the identity provider refused the code (HTTP ", res->status,
                                     ", ", code, ")"));
  }
  return res->body;
}

absl::StatusOr<std::string> OidcRelyingParty::Get(const std::string& url) const {
  absl::StatusOr<HttpsUrl> u = ParseHttpsUrl(url);
  if (!u.ok()) return u.status();
  std::unique_ptr<httplib::SSLClient> client = ClientFor(*u, config_.ca_file());
  httplib::Result res = client->Get(u->path.c_str());
  if (!res) {
    return absl::UnavailableError(absl::StrCat("unreachable: ", httplib::to_string(res.error())));
  }
  if (res->status != 200) return absl::UnavailableError(absl::StrCat("HTTP ", res->status));
  if (res->body.size() > certs::kMaxJwksBytes) return absl::InvalidArgumentError("too large");
  return res->body;
}

absl::Status OidcRelyingParty::RefreshJwks(absl::Time now) {
  {
    absl::MutexLock lock(&mu_);
    if (now - jwks_fetched_ < kJwksRefreshInterval) return absl::OkStatus();
    jwks_fetched_ = now;
  }
  absl::StatusOr<std::string> body = Get(config_.jwks_uri());
  if (!body.ok()) return body.status();
  absl::StatusOr<certs::Jwks> jwks = certs::Jwks::Parse(*body);
  if (!jwks.ok()) return jwks.status();
  absl::MutexLock lock(&mu_);
  jwks_ = *std::move(jwks);
  return absl::OkStatus();
}

absl::StatusOr<certs::VerifiedCitizenAssertion> OidcRelyingParty::Verify(std::string_view id_token,
                                                                         std::string_view nonce,
                                                                         absl::Time now) {
  certs::CitizenAssertionPolicy policy;
  policy.issuer = config_.issuer();
  policy.audience = config_.client_id();
  policy.algorithms = Algorithms(config_.algorithms());
  policy.citizen_claim = config_.citizen_claim();
  policy.max_age = max_age_;
  policy.nonce = std::string(nonce);
  if (policy.nonce.empty()) return SignInFailed("no nonce to check the token against");
  certs::Jwks keys;
  {
    absl::MutexLock lock(&mu_);
    keys = jwks_;
  }
  absl::StatusOr<certs::VerifiedCitizenAssertion> verified =
      certs::VerifyIdToken(id_token, keys, policy, now);
  if (!verified.ok() && !config_.jwks_uri().empty() &&
      absl::StrContains(verified.status().message(), "unknown key")) {
    // The provider may have rotated its keys: fetch them again (rate-limited).
    if (RefreshJwks(now).ok()) {
      absl::MutexLock lock(&mu_);
      keys = jwks_;
    }
    verified = certs::VerifyIdToken(id_token, keys, policy, now);
  }
  if (!verified.ok()) return SignInFailed(verified.status().message());
  return verified;
}

absl::StatusOr<SignedInCitizen> OidcRelyingParty::Complete(std::string_view code,
                                                           const PendingSignIn& pending,
                                                           absl::Time now) {
  if (code.empty() || code.size() > 2048) return SignInFailed("code: missing or too long");
  const std::string form = absl::StrCat("grant_type=authorization_code&code=", FormEncode(code),
                                        "&redirect_uri=", FormEncode(config_.redirect_uri()),
                                        "&client_id=", FormEncode(config_.client_id()),
                                        "&code_verifier=", FormEncode(pending.code_verifier));
  absl::StatusOr<std::string> body = Post(config_.token_endpoint(), form);
  if (!body.ok()) return body.status();
  google::protobuf::Struct answer;
  if (!google::protobuf::util::JsonStringToMessage(*body, &answer).ok()) {
    return SignInFailed("the token endpoint's answer is not JSON");
  }
  auto it = answer.fields().find("id_token");
  if (it == answer.fields().end() || !it->second.has_string_value()) {
    return SignInFailed("the token endpoint's answer has no id_token");
  }
  SignedInCitizen out;
  out.id_token = it->second.string_value();
  absl::StatusOr<certs::VerifiedCitizenAssertion> verified =
      Verify(out.id_token, pending.nonce, now);
  if (!verified.ok()) return verified.status();
  out.evidence = *std::move(verified);
  return out;
}

// ---------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<DevSignIn>> DevSignIn::Create(
    const tellonce::v1::DevSignInConfig& config) {
  absl::StatusOr<certs::CitizenAssertionSigner> signer =
      certs::CitizenAssertionSigner::FromPemFile(config.idp_key_file(), config.key_id());
  if (!signer.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("dev_sign_in.idp_key_file: ", signer.status().message()));
  }
  absl::StatusOr<certs::Jwks> jwks = certs::Jwks::Parse(signer->JwksJson());
  if (!jwks.ok()) return jwks.status();
  return std::unique_ptr<DevSignIn>(new DevSignIn(config, *std::move(signer), *std::move(jwks)));
}

absl::StatusOr<SignedInCitizen> DevSignIn::SignIn(std::string_view citizen_id,
                                                  absl::Duration lifetime, absl::Time now) const {
  bool offered = false;
  for (const tellonce::v1::DevCitizen& c : config_.citizens()) {
    if (c.citizen_id() == citizen_id) offered = true;
  }
  if (!offered) {
    return absl::InvalidArgumentError("citizen_id: not one of the development sign-in's citizens");
  }
  certs::CitizenAssertionClaims claims;
  claims.issuer = config_.issuer();
  claims.audience = config_.audience();
  claims.citizen_id = std::string(citizen_id);
  claims.issued_at = now;
  claims.lifetime = lifetime;
  claims.nonce = RandomToken();
  absl::StatusOr<std::string> token = signer_.Mint(claims);
  if (!token.ok()) return token.status();
  certs::CitizenAssertionPolicy policy;
  policy.issuer = config_.issuer();
  policy.audience = config_.audience();
  policy.algorithms = {signer_.algorithm()};
  policy.max_age = lifetime;
  policy.nonce = claims.nonce;
  absl::StatusOr<certs::VerifiedCitizenAssertion> verified =
      certs::VerifyIdToken(*token, jwks_, policy, now);
  if (!verified.ok()) return verified.status();
  return SignedInCitizen{*std::move(token), *std::move(verified)};
}

}  // namespace tellonce::portal
