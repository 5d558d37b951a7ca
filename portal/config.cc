#include "portal/config.h"

#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "certs/citizen_assertion.h"
#include "proto/textproto.h"

#ifndef TELLONCE_PORTAL_WEB_ROOT
#define TELLONCE_PORTAL_WEB_ROOT "portal/web"
#endif

namespace tellonce::portal {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view reason) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", reason));
}

void Resolve(const std::string& base_dir, std::string* path) {
  if (path->empty() || base_dir.empty() || (*path)[0] == '/') return;
  *path = (std::filesystem::path(base_dir) / *path).lexically_normal().string();
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

bool IsHttpsUrl(const std::string& url) { return url.rfind("https://", 0) == 0 && url.size() > 8; }

absl::Status CheckFile(absl::string_view field, const std::string& path) {
  if (path.empty()) return Invalid(field, "required");
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return Invalid(field, absl::StrCat(path, ": not a readable file"));
  }
  return absl::OkStatus();
}

}  // namespace

bool IsLoopbackAddress(const std::string& address) {
  std::string host = address;
  const size_t colon = address.rfind(':');
  if (colon != std::string::npos) host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost" || host == "::1") return true;
  std::vector<std::string> parts = absl::StrSplit(host, '.');
  if (parts.size() != 4 || parts[0] != "127") return false;
  for (const std::string& p : parts) {
    int v = -1;
    if (p.empty() || p.size() > 3 || !absl::SimpleAtoi(p, &v) || v < 0 || v > 255) return false;
  }
  return true;
}

absl::StatusOr<PortalOptions> CheckPortalConfig(tellonce::v1::PortalConfig c,
                                                const std::string& base_dir) {
  PortalOptions o;
  if (c.listen_address().empty()) c.set_listen_address("127.0.0.1:8443");
  {
    const size_t colon = c.listen_address().rfind(':');
    int port = -1;
    if (colon == std::string::npos || colon == 0 ||
        !absl::SimpleAtoi(c.listen_address().substr(colon + 1), &port) || port < 0 ||
        port > 65535) {
      return Invalid("listen_address", "must be host:port");
    }
  }
  for (std::string* p :
       {c.mutable_https_cert_file(), c.mutable_https_key_file(), c.mutable_directory_file(),
        c.mutable_signing_keys_dir(), c.mutable_web_root(),
        c.mutable_broker_tls()->mutable_ca_file(), c.mutable_broker_tls()->mutable_cert_file(),
        c.mutable_broker_tls()->mutable_key_file(), c.mutable_oidc()->mutable_jwks_file(),
        c.mutable_oidc()->mutable_client_secret_file(), c.mutable_oidc()->mutable_ca_file(),
        c.mutable_dev_sign_in()->mutable_idp_key_file()}) {
    Resolve(base_dir, p);
  }
  if (absl::Status s = CheckFile("https_cert_file", c.https_cert_file()); !s.ok()) return s;
  if (absl::Status s = CheckFile("https_key_file", c.https_key_file()); !s.ok()) return s;
  if (c.broker_address().empty()) return Invalid("broker_address", "required");
  if (absl::Status s = CheckFile("broker_tls.ca_file", c.broker_tls().ca_file()); !s.ok()) return s;
  if (absl::Status s = CheckFile("broker_tls.cert_file", c.broker_tls().cert_file()); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckFile("broker_tls.key_file", c.broker_tls().key_file()); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckFile("directory_file", c.directory_file()); !s.ok()) return s;
  if (absl::Status s = ParseTextProtoFile(c.directory_file(), &o.directory); !s.ok()) {
    return Invalid("directory_file", s.message());
  }
  if (c.signing_keys_dir().empty()) return Invalid("signing_keys_dir", "required");
  if (c.web_root().empty()) c.set_web_root(TELLONCE_PORTAL_WEB_ROOT);
  {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(c.web_root() + "/index.html", ec)) {
      return Invalid("web_root", absl::StrCat(c.web_root(), ": holds no index.html"));
    }
  }

  const bool has_oidc = c.has_oidc() && !c.oidc().issuer().empty();
  const bool has_dev = c.has_dev_sign_in() && !c.dev_sign_in().idp_key_file().empty();
  if (!has_oidc && !has_dev) {
    return Invalid("oidc", "a sign-in is required: oidc, or dev_sign_in for development");
  }
  if (has_oidc) {
    tellonce::v1::OidcProviderConfig* oidc = c.mutable_oidc();
    if (!IsHttpsUrl(oidc->authorization_endpoint())) {
      return Invalid("oidc.authorization_endpoint", "required, an https URL");
    }
    if (!IsHttpsUrl(oidc->token_endpoint())) {
      return Invalid("oidc.token_endpoint", "required, an https URL");
    }
    if (oidc->jwks_file().empty() == oidc->jwks_uri().empty()) {
      return Invalid("oidc.jwks_file", "exactly one of jwks_file and jwks_uri is required");
    }
    if (!oidc->jwks_uri().empty() && !IsHttpsUrl(oidc->jwks_uri())) {
      return Invalid("oidc.jwks_uri", "must be an https URL");
    }
    if (oidc->client_id().empty()) return Invalid("oidc.client_id", "required");
    if (!IsHttpsUrl(oidc->redirect_uri())) {
      return Invalid("oidc.redirect_uri", "required, an https URL ending in /auth/callback");
    }
    if (oidc->scopes().empty()) oidc->add_scopes("openid");
    if (oidc->citizen_claim().empty()) oidc->set_citizen_claim("sub");
    if (oidc->algorithms().empty()) {
      oidc->add_algorithms("ES256");
      oidc->add_algorithms("RS256");
    }
    for (int i = 0; i < oidc->algorithms_size(); ++i) {
      if (!certs::ParseJwsAlgorithm(oidc->algorithms(i))) {
        return Invalid(absl::StrCat("oidc.algorithms[", i, "]"), "must be ES256 or RS256");
      }
    }
    o.oidc_max_age = oidc->has_max_age() ? FromProto(oidc->max_age()) : absl::Minutes(15);
    if (o.oidc_max_age <= absl::ZeroDuration() || o.oidc_max_age > absl::Hours(24)) {
      return Invalid("oidc.max_age", "must be between 1 second and 24 hours");
    }
  } else {
    c.clear_oidc();
  }
  if (has_dev) {
    tellonce::v1::DevSignInConfig* dev = c.mutable_dev_sign_in();
    if (!IsLoopbackAddress(c.listen_address())) {
      return Invalid("dev_sign_in",
                     "the development sign-in is refused on a non-loopback listen_address");
    }
    if (absl::Status s = CheckFile("dev_sign_in.idp_key_file", dev->idp_key_file()); !s.ok()) {
      return s;
    }
    if (dev->issuer().empty()) dev->set_issuer("https://eid.tellonce.local");
    if (dev->audience().empty()) dev->set_audience("tellonce-portal");
    if (dev->citizens().empty()) return Invalid("dev_sign_in.citizens", "at least one");
    for (int i = 0; i < dev->citizens_size(); ++i) {
      if (dev->citizens(i).citizen_id().empty()) {
        return Invalid(absl::StrCat("dev_sign_in.citizens[", i, "].citizen_id"), "required");
      }
    }
  } else {
    c.clear_dev_sign_in();
  }

  o.session_lifetime =
      c.has_session_lifetime() ? FromProto(c.session_lifetime()) : absl::Minutes(15);
  if (o.session_lifetime < absl::Seconds(1) || o.session_lifetime > absl::Hours(12)) {
    return Invalid("session_lifetime", "must be between 1 second and 12 hours");
  }
  o.broker_timeout = c.has_broker_timeout() ? FromProto(c.broker_timeout()) : absl::Seconds(10);
  if (o.broker_timeout <= absl::ZeroDuration() || o.broker_timeout > absl::Minutes(5)) {
    return Invalid("broker_timeout", "must be between 1 ms and 5 minutes");
  }
  if (c.max_sessions() == 0) c.set_max_sessions(10000);
  o.config = std::move(c);
  return o;
}

absl::StatusOr<PortalOptions> LoadPortalConfig(const std::string& path) {
  tellonce::v1::PortalConfig config;
  if (absl::Status s = ParseTextProtoFile(path, &config); !s.ok()) return s;
  absl::StatusOr<PortalOptions> options =
      CheckPortalConfig(std::move(config), std::filesystem::path(path).parent_path().string());
  if (!options.ok()) {
    return absl::Status(options.status().code(),
                        absl::StrCat(path, ": ", options.status().message()));
  }
  return options;
}

}  // namespace tellonce::portal
