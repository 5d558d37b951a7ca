#ifndef TELLONCE_PORTAL_SERVER_H_
#define TELLONCE_PORTAL_SERVER_H_

// Design: tellonce-portal's HTTPS face toward citizens' browsers (cpp-httplib from
// Debian, OpenSSL), over the CitizenApi core. It owns the pieces of a running portal:
// the broker client, the sign-ins (OpenID Connect, development), the sessions, and the
// web UI's static files (read once at start-up).
//
// What every response carries: a strict Content-Security-Policy (scripts, styles and
// connections from this origin only; no inline script, no framing), HSTS, nosniff, no
// referrer. API answers are JSON (proto3 JSON mapping of proto/tellonce/v1/portal.proto),
// never cached.
//
// Sessions: an HttpOnly, Secure, SameSite=Strict cookie `__Host-tellonce-session`.
// Every /api call without a live session is 401; every state-changing request (POST)
// must carry the session's CSRF token in `X-CSRF-Token` and, when the browser sends
// one, an `Origin` equal to this portal's; the development sign-in, made before any
// session exists, must come as JSON from this origin. Requests are served on a pool of
// the server's own threads; broker calls are made from them.

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "portal/config.h"

namespace httplib {
class SSLServer;
}

namespace tellonce::portal {

class BrokerClient;
class CitizenApi;
class DevSignIn;
class OidcRelyingParty;
class PendingSignIns;
class SessionStore;
struct StaticFiles;

class PortalServer {
 public:
  // Loads everything (TLS files, signing keys, web files, the provider's JWKS), binds
  // and serves. Errors name the configuration field; UNAVAILABLE when the address
  // cannot be bound.
  static absl::StatusOr<std::unique_ptr<PortalServer>> Start(PortalOptions options);
  // Stops serving and joins the server's threads.
  ~PortalServer();

  int port() const { return port_; }

 private:
  PortalServer();
  void Routes();

  PortalOptions options_;
  std::unique_ptr<BrokerClient> broker_;
  std::unique_ptr<CitizenApi> api_;
  std::unique_ptr<OidcRelyingParty> oidc_;
  std::unique_ptr<DevSignIn> dev_;
  std::unique_ptr<SessionStore> sessions_;
  std::unique_ptr<PendingSignIns> pending_;
  std::unique_ptr<StaticFiles> files_;
  std::unique_ptr<httplib::SSLServer> http_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace tellonce::portal

#endif  // TELLONCE_PORTAL_SERVER_H_
