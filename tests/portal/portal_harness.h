#ifndef TELLONCE_TESTS_PORTAL_PORTAL_HARNESS_H_
#define TELLONCE_TESTS_PORTAL_PORTAL_HARNESS_H_

// A federation for the portal's tests: a dev PKI, the sample registry and bank
// connectors, a broker, the test OpenID Connect provider (test_oidc_provider, HTTPS,
// signing with the dev identity provider's key the sample directory trusts), and
// tellonce-portal with both sign-ins, all on 127.0.0.1 and free ports. Also an HTTPS
// client that keeps cookies like a browser.

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tests/integration/harness.h"

namespace tellonce::testing {

// The synthetic citizens the test portal offers (sample registry records).
inline constexpr char kJaan[] = "37605030299";
inline constexpr char kMari[] = "49403136526";

// A child process with arbitrary arguments, its output in `log_path`; waits for
// `port_file`. Killed on destruction.
class ChildProcess {
 public:
  ChildProcess(std::vector<std::string> argv, std::string log_path, std::string port_file);
  ~ChildProcess();
  absl::Status Start();
  int Terminate();
  int port() const { return port_; }
  std::string log() const;

 private:
  std::vector<std::string> argv_;
  std::string log_path_;
  std::string port_file_;
  pid_t pid_ = -1;
  int port_ = 0;
};

struct PortalFederationOptions {
  bool dev_sign_in = true;
  bool oidc = true;
  // The agency whose certificate the portal uses toward the broker.
  std::string portal_agency = "portal";
  // Appended to the generated PortalConfig.
  std::string extra_config;
  // When > 0: the directory's development identity provider accepts authentications at
  // most this old (max_age; the sample says 900 s).
  int idp_max_age_seconds = 0;
  // The portal's OpenID Connect client secret (the test provider requires
  // kOidcClientSecret); empty: a public client.
  std::string client_secret = "test-client-secret";
};

inline constexpr char kOidcClientSecret[] = "test-client-secret";

class PortalFederation {
 public:
  static absl::StatusOr<std::unique_ptr<PortalFederation>> Start(
      const std::string& dir, const PortalFederationOptions& options = {});

  // A PortalConfig text for this federation: listening on `listen_address`
  // (127.0.0.1:<port>; the OpenID Connect redirect URI names that port).
  std::string PortalConfigText(const std::string& listen_address,
                               const PortalFederationOptions& options) const;

  std::string portal_url() const;  // https://127.0.0.1:<port>
  int portal_port() const { return portal->port(); }
  std::string broker_address() const { return broker->address(); }

  std::string dir;
  Pki pki;
  SampleConnectors connectors;
  std::unique_ptr<BrokerProcess> broker;
  std::unique_ptr<ChildProcess> idp;
  std::unique_ptr<ServerProcess> portal;
  int idp_port = 0;
  int chosen_portal_port = 0;
};

// Paths of the built binaries.
std::string PortalBinary();
std::string OidcProviderBinary();

// An HTTPS client that trusts the dev PKI's CA and keeps cookies (name -> value) from
// Set-Cookie, sending them back like a browser on the same origin. Sends
// Origin: https://127.0.0.1:<port> on POST unless told otherwise.
class HttpsClient {
 public:
  HttpsClient(const std::string& ca_file, int port);

  struct Response {
    int status = -1;  // -1: no answer
    std::string body;
    std::multimap<std::string, std::string> headers;
    std::string header(const std::string& name) const;
  };
  Response Get(const std::string& path);
  // POST of a JSON body, with the CSRF token (when set) and the Origin.
  Response PostJson(const std::string& path, const std::string& json,
                    const std::map<std::string, std::string>& extra_headers = {});
  // Any request, headers exactly as given (plus cookies when `with_cookies`).
  Response Send(const std::string& method, const std::string& path, const std::string& body,
                const std::string& content_type, const std::map<std::string, std::string>& headers,
                bool with_cookies = true);

  std::map<std::string, std::string>& cookies() { return cookies_; }
  void set_csrf_token(std::string token) { csrf_token_ = std::move(token); }
  const std::string& csrf_token() const { return csrf_token_; }
  std::string origin() const;

 private:
  std::string ca_file_;
  int port_;
  std::map<std::string, std::string> cookies_;
  std::string csrf_token_;
};

// Signs `client` in through the development sign-in as `citizen`; the status of
// /auth/dev (200 when signed in), with the CSRF token taken from the answer.
int DevSignIn(HttpsClient& client, const std::string& citizen);

// Signs in through the test OpenID Connect provider as `citizen`, with `fault` (empty
// for none) applied to the ID token; the status of the portal's callback (303 when
// signed in). `callback_url` gets the callback's path and query, for replays; with
// `follow` false the callback is not visited and 0 is returned.
int OidcSignIn(HttpsClient& client, int idp_port, const std::string& ca_file,
               const std::string& citizen, const std::string& fault = "",
               std::string* callback_url = nullptr, bool follow = true);

// The value of "field":"..." in a JSON text (first occurrence); empty when absent.
std::string JsonField(const std::string& json, const std::string& field);

}  // namespace tellonce::testing

#endif  // TELLONCE_TESTS_PORTAL_PORTAL_HARNESS_H_
