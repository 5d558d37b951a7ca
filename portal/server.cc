#include "portal/server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/json_util.h"
#include "ops/log.h"
#include "portal/broker_client.h"
#include "portal/citizen_api.h"
#include "portal/oidc.h"
#include "portal/sessions.h"
#include "proto/textproto.h"
#include "proto/time.h"

namespace tellonce::portal {

// The web UI, read once at start-up: URL path -> (content type, bytes).
struct StaticFiles {
  std::map<std::string, std::pair<std::string, std::string>> by_path;
};

namespace {

constexpr char kSessionCookie[] = "__Host-tellonce-session";
constexpr char kSignInCookie[] = "__Host-tellonce-signin";
constexpr absl::Duration kSignInWindow = absl::Minutes(10);
constexpr size_t kMaxBodyBytes = 64 * 1024;

// What every answer carries. No inline script or style anywhere: the UI is static files
// from this origin only.
const httplib::Headers& SecurityHeaders() {
  static const auto* headers = new httplib::Headers{
      {"Content-Security-Policy",
       "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"},
      {"Strict-Transport-Security", "max-age=31536000"},
      {"X-Content-Type-Options", "nosniff"},
      {"Referrer-Policy", "no-referrer"},
      {"X-Frame-Options", "DENY"},
      {"Cross-Origin-Opener-Policy", "same-origin"},
      {"Cross-Origin-Resource-Policy", "same-origin"},
      {"Permissions-Policy", "camera=(), microphone=(), geolocation=()"},
  };
  return *headers;
}

std::string ContentType(const std::string& path) {
  if (absl::EndsWith(path, ".html")) return "text/html; charset=utf-8";
  if (absl::EndsWith(path, ".js") || absl::EndsWith(path, ".mjs")) {
    return "text/javascript; charset=utf-8";
  }
  if (absl::EndsWith(path, ".css")) return "text/css; charset=utf-8";
  if (absl::EndsWith(path, ".svg")) return "image/svg+xml";
  if (absl::EndsWith(path, ".json")) return "application/json";
  return "";
}

absl::StatusOr<std::unique_ptr<StaticFiles>> LoadStaticFiles(const std::string& root) {
  auto files = std::make_unique<StaticFiles>();
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    const std::string relative = std::filesystem::relative(it->path(), root).generic_string();
    const std::string type = ContentType(relative);
    if (type.empty()) continue;
    absl::StatusOr<std::string> bytes = ReadFileToString(it->path().string());
    if (!bytes.ok()) return bytes.status();
    files->by_path["/" + relative] = {type, *std::move(bytes)};
  }
  if (ec) return absl::InvalidArgumentError(absl::StrCat("web_root: ", root, ": ", ec.message()));
  return files;
}

int HttpStatus(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return 503;
    default:
      return 500;
  }
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

void SendJson(httplib::Response& res, const google::protobuf::Message& message, int status = 200) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(ToJson(message), "application/json; charset=utf-8");
}

void SendError(httplib::Response& res, const absl::Status& status, bool sign_in = false) {
  tellonce::v1::PortalError error;
  error.set_code(absl::StatusCodeToString(status.code()));
  error.set_message(std::string(status.message()));
  error.set_sign_in(sign_in || status.code() == absl::StatusCode::kUnauthenticated);
  SendJson(res, error, HttpStatus(status.code()));
}

// The value of cookie `name` in the request's Cookie headers; empty when absent.
std::string CookieValue(const httplib::Request& req, std::string_view name) {
  const size_t count = req.get_header_value_count("Cookie");
  for (size_t i = 0; i < count; ++i) {
    for (absl::string_view part : absl::StrSplit(req.get_header_value("Cookie", i), ';')) {
      part = absl::StripAsciiWhitespace(part);
      const size_t eq = part.find('=');
      if (eq == absl::string_view::npos) continue;
      if (part.substr(0, eq) == absl::string_view(name.data(), name.size())) {
        return std::string(part.substr(eq + 1));
      }
    }
  }
  return "";
}

std::string SetCookie(std::string_view name, std::string_view value, std::string_view same_site,
                      absl::Duration max_age) {
  return absl::StrCat(absl::string_view(name.data(), name.size()), "=",
                      absl::string_view(value.data(), value.size()),
                      "; Path=/; Secure; HttpOnly; SameSite=",
                      absl::string_view(same_site.data(), same_site.size()),
                      "; Max-Age=", std::max<int64_t>(0, absl::ToInt64Seconds(max_age)));
}

// A request body parsed into `message`; INVALID_ARGUMENT naming the problem (unknown
// fields included) otherwise.
absl::Status ParseBody(const httplib::Request& req, google::protobuf::Message* message) {
  if (!absl::StartsWith(absl::AsciiStrToLower(req.get_header_value("Content-Type")),
                        "application/json")) {
    return absl::InvalidArgumentError("the body must be JSON (Content-Type: application/json)");
  }
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto s = google::protobuf::util::JsonStringToMessage(req.body.empty() ? "{}" : req.body, message,
                                                       options);
  if (!s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("body: ", std::string(s.message())));
  }
  return absl::OkStatus();
}

// Query parameters are refused on the API (the citizen never comes from the URL).
absl::Status NoParams(const httplib::Request& req) {
  if (!req.params.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("unexpected query parameter \"",
                                                   req.params.begin()->first.substr(0, 64), "\""));
  }
  return absl::OkStatus();
}

}  // namespace

PortalServer::PortalServer() = default;

PortalServer::~PortalServer() {
  if (http_ != nullptr) http_->stop();
  if (thread_.joinable()) thread_.join();
}

absl::StatusOr<std::unique_ptr<PortalServer>> PortalServer::Start(PortalOptions options) {
  std::unique_ptr<PortalServer> p(new PortalServer);
  p->options_ = std::move(options);
  const tellonce::v1::PortalConfig& c = p->options_.config;

  absl::StatusOr<std::unique_ptr<BrokerClient>> broker =
      BrokerClient::Connect(c.broker_address(),
                            certs::TlsPaths{.ca_file = c.broker_tls().ca_file(),
                                            .cert_file = c.broker_tls().cert_file(),
                                            .key_file = c.broker_tls().key_file(),
                                            .crl_dir = c.broker_tls().crl_dir()},
                            c.broker_id(), p->options_.broker_timeout);
  if (!broker.ok()) return broker.status();
  p->broker_ = *std::move(broker);
  absl::StatusOr<tellonce::v1::SigningKeyList> keys = LoadSigningKeys(c.signing_keys_dir());
  if (!keys.ok()) return keys.status();
  p->api_ = std::make_unique<CitizenApi>(p->broker_.get(), p->options_.directory, *keys);
  if (c.has_oidc()) {
    absl::StatusOr<std::unique_ptr<OidcRelyingParty>> oidc =
        OidcRelyingParty::Create(c.oidc(), p->options_.oidc_max_age);
    if (!oidc.ok()) return oidc.status();
    p->oidc_ = *std::move(oidc);
  }
  if (c.has_dev_sign_in()) {
    absl::StatusOr<std::unique_ptr<DevSignIn>> dev = DevSignIn::Create(c.dev_sign_in());
    if (!dev.ok()) return dev.status();
    p->dev_ = *std::move(dev);
  }
  p->sessions_ = std::make_unique<SessionStore>(c.max_sessions());
  p->pending_ = std::make_unique<PendingSignIns>();
  absl::StatusOr<std::unique_ptr<StaticFiles>> files = LoadStaticFiles(c.web_root());
  if (!files.ok()) return files.status();
  p->files_ = *std::move(files);

  std::string tls_error;
  p->http_ = std::make_unique<httplib::SSLServer>([&](SSL_CTX& ctx) {
    SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(&ctx, c.https_cert_file().c_str()) != 1) {
      tls_error = absl::StrCat("https_cert_file: ", c.https_cert_file(), ": not a PEM certificate");
      return false;
    }
    if (SSL_CTX_use_PrivateKey_file(&ctx, c.https_key_file().c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(&ctx) != 1) {
      tls_error = absl::StrCat("https_key_file: ", c.https_key_file(),
                               ": not a PEM key matching https_cert_file");
      return false;
    }
    return true;
  });
  ERR_clear_error();
  if (!p->http_->is_valid()) return absl::InvalidArgumentError(tls_error);
  httplib::SSLServer& http = *p->http_;
  http.new_task_queue = [] { return new httplib::ThreadPool(8); };
  http.set_read_timeout(10, 0);
  http.set_write_timeout(10, 0);
  http.set_payload_max_length(kMaxBodyBytes);
  http.set_default_headers(SecurityHeaders());
  http.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  p->Routes();

  const std::string& address = c.listen_address();
  const size_t colon = address.rfind(':');
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  int port = 0;
  (void)absl::SimpleAtoi(address.substr(colon + 1), &port);
  if (port == 0) {
    port = http.bind_to_any_port(host);
    if (port <= 0) port = -1;
  } else if (!http.bind_to_port(host, port)) {
    port = -1;
  }
  if (port < 0) {
    return absl::UnavailableError(absl::StrCat("listen_address: cannot listen on ", address));
  }
  p->port_ = port;
  auto ended = std::make_shared<std::atomic<bool>>(false);
  p->thread_ = std::thread([&http, ended] {
    http.listen_after_bind();
    ended->store(true);
  });
  while (!http.is_running() && !ended->load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return p;
}

void PortalServer::Routes() {
  httplib::SSLServer& http = *http_;
  const absl::Duration lifetime = options_.session_lifetime;

  // The session of a request, if any.
  auto session_of = [this](const httplib::Request& req) -> std::optional<Session> {
    const std::string id = CookieValue(req, kSessionCookie);
    if (id.empty()) return std::nullopt;
    return sessions_->Find(id, absl::Now());
  };
  // The browser's Origin, when it sent one, must be this portal's own.
  auto same_origin = [](const httplib::Request& req) -> bool {
    if (!req.has_header("Origin")) return true;
    return req.get_header_value("Origin") == absl::StrCat("https://", req.get_header_value("Host"));
  };
  // A broker refusal of the ID token ends the session: the citizen signs in again.
  auto fail = [this](const httplib::Request& req, httplib::Response& res, const absl::Status& s) {
    if (s.code() == absl::StatusCode::kUnauthenticated) {
      sessions_->Remove(CookieValue(req, kSessionCookie));
      res.set_header("Set-Cookie", SetCookie(kSessionCookie, "", "Strict", absl::ZeroDuration()));
    }
    ops::LogDebug("request refused", {{"path", req.path}, {"reason", s.ToString()}});
    SendError(res, s);
  };

  // GET with a session, no query parameters.
  using Reader = std::function<void(const Session&, const httplib::Request&, httplib::Response&)>;
  auto get = [&http, session_of, fail](const std::string& pattern, Reader reader) {
    http.Get(pattern,
             [session_of, fail, reader](const httplib::Request& req, httplib::Response& res) {
               std::optional<Session> session = session_of(req);
               if (!session) return SendError(res, absl::UnauthenticatedError("sign in first"));
               if (absl::Status s = NoParams(req); !s.ok()) return fail(req, res, s);
               reader(*session, req, res);
             });
  };
  // POST with a session, its CSRF token and this origin.
  auto post = [&http, session_of, same_origin, fail](const std::string& pattern, Reader writer) {
    http.Post(pattern, [session_of, same_origin, fail, writer](const httplib::Request& req,
                                                               httplib::Response& res) {
      std::optional<Session> session = session_of(req);
      if (!session) return SendError(res, absl::UnauthenticatedError("sign in first"));
      if (!same_origin(req)) {
        return SendError(res, absl::PermissionDeniedError("cross-site request refused"));
      }
      if (!SecretsEqual(req.get_header_value("X-CSRF-Token"), session->csrf_token)) {
        return SendError(
            res, absl::PermissionDeniedError("missing or wrong X-CSRF-Token (reload the page)"));
      }
      if (absl::Status s = NoParams(req); !s.ok()) return fail(req, res, s);
      writer(*session, req, res);
    });
  };

  // --- pages -------------------------------------------------------------------------
  auto page = [this](const std::string& file, httplib::Response& res) {
    auto it = files_->by_path.find(file);
    if (it == files_->by_path.end()) {
      res.status = 404;
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_content(it->second.second, it->second.first);
  };
  // Pages of a signed-in citizen: without a session, the sign-in page.
  for (const auto& [path, file] :
       std::vector<std::pair<std::string, std::string>>{{"/", "/index.html"},
                                                        {"/grant", "/grant.html"},
                                                        {"/history", "/history.html"},
                                                        {"/told-once", "/told-once.html"}}) {
    http.Get(path, [session_of, page, file](const httplib::Request& req, httplib::Response& res) {
      if (!session_of(req)) {
        res.status = 303;
        res.set_header("Location", "/sign-in");
        return;
      }
      page(file, res);
    });
  }
  http.Get("/sign-in",
           [page](const httplib::Request&, httplib::Response& res) { page("/sign-in.html", res); });
  http.Get("/signed-in", [page](const httplib::Request&, httplib::Response& res) {
    page("/signed-in.html", res);
  });
  http.Get(R"(/(js|css|strings)/[A-Za-z0-9_.-]+)",
           [this](const httplib::Request& req, httplib::Response& res) {
             auto it = files_->by_path.find(req.path);
             if (it == files_->by_path.end() || absl::EndsWith(req.path, ".html")) {
               res.status = 404;
               res.set_content("not found\n", "text/plain; charset=utf-8");
               return;
             }
             res.set_header("Cache-Control", "no-cache");
             res.set_content(it->second.second, it->second.first);
           });

  // --- sign-in -----------------------------------------------------------------------
  http.Get("/api/sign-in-options", [this](const httplib::Request&, httplib::Response& res) {
    tellonce::v1::SignInOptions options;
    options.set_oidc(oidc_ != nullptr);
    options.set_dev_sign_in(dev_ != nullptr);
    if (dev_ != nullptr) *options.mutable_dev_citizens() = dev_->config().citizens();
    SendJson(res, options);
  });
  // Public: the keys the browser verifies receipts and checkpoints with.
  http.Get("/api/keys", [this](const httplib::Request&, httplib::Response& res) {
    SendJson(res, api_->keys());
  });

  // A new session for a verified ID token; the browser gets the cookie.
  // A new session (never the browser's old one, which ends here) for a verified ID token.
  auto start_session = [this, lifetime](const SignedInCitizen& who, const std::string& method,
                                        const httplib::Request& req,
                                        httplib::Response& res) -> Session {
    if (const std::string old = CookieValue(req, kSessionCookie); !old.empty()) {
      sessions_->Remove(old);
    }
    Session session;
    session.citizen_id = who.evidence.citizen_id;
    session.id_token = who.id_token;
    session.sign_in_method = method;
    const absl::Time now = absl::Now();
    session.expires_at = std::min(now + lifetime, who.evidence.expires_at);
    const std::string id = sessions_->Create(session, now);
    std::optional<Session> stored = sessions_->Find(id, now);
    res.set_header("Set-Cookie", SetCookie(kSessionCookie, id, "Strict", session.expires_at - now));
    ops::LogInfo("citizen signed in", {{"method", method}});
    return stored.value_or(session);
  };
  auto session_json = [this](const Session& s) {
    tellonce::v1::PortalSession out;
    out.set_citizen_id(s.citizen_id);
    *out.mutable_expires_at() = ToProtoTime(s.expires_at);
    out.set_csrf_token(s.csrf_token);
    out.set_sign_in_method(s.sign_in_method);
    out.set_dev_sign_in(dev_ != nullptr);
    return out;
  };

  http.Post("/auth/dev", [this, same_origin, start_session, session_json, lifetime](
                             const httplib::Request& req, httplib::Response& res) {
    if (dev_ == nullptr) {
      return SendError(res, absl::NotFoundError("the development sign-in is off"));
    }
    // No session yet, so no CSRF token: the request must be JSON (a cross-site form
    // cannot send that without a CORS preflight, which this server never answers) from
    // this origin.
    if (!same_origin(req) || !req.has_header("Origin")) {
      return SendError(res, absl::PermissionDeniedError("cross-site request refused"));
    }
    tellonce::v1::DevCitizen body;
    if (absl::Status s = ParseBody(req, &body); !s.ok()) return SendError(res, s);
    absl::StatusOr<SignedInCitizen> who = dev_->SignIn(body.citizen_id(), lifetime, absl::Now());
    if (!who.ok()) return SendError(res, who.status());
    SendJson(res, session_json(start_session(*who, "dev", req, res)));
  });

  http.Get("/auth/login", [this](const httplib::Request&, httplib::Response& res) {
    if (oidc_ == nullptr) {
      return SendError(res, absl::NotFoundError("OpenID Connect sign-in is not configured"));
    }
    OidcRelyingParty::Redirect r = oidc_->Begin();
    r.pending.browser_binding = RandomToken();
    r.pending.expires_at = absl::Now() + kSignInWindow;
    const std::string binding = r.pending.browser_binding;
    pending_->Put(r.state, std::move(r.pending), absl::Now());
    // Lax: the provider's redirect back is a cross-site top-level navigation.
    res.set_header("Set-Cookie", SetCookie(kSignInCookie, binding, "Lax", kSignInWindow));
    res.set_header("Cache-Control", "no-store");
    res.status = 302;
    res.set_header("Location", r.url);
  });

  http.Get("/auth/callback", [this, start_session](const httplib::Request& req,
                                                   httplib::Response& res) {
    auto refuse = [&](const absl::Status& s) {
      ops::LogInfo("sign-in refused", {{"reason", std::string(s.message())}});
      res.set_header("Set-Cookie", SetCookie(kSignInCookie, "", "Lax", absl::ZeroDuration()));
      res.status = HttpStatus(s.code());
      res.set_header("Cache-Control", "no-store");
      res.set_content(absl::StrCat("Sign-in failed: ", s.message(), "\nStart again at /sign-in.\n"),
                      "text/plain; charset=utf-8");
    };
    if (oidc_ == nullptr) return refuse(absl::NotFoundError("OpenID Connect is not configured"));
    if (req.has_param("error")) {
      return refuse(absl::UnauthenticatedError(absl::StrCat(
          "sign-in: the identity provider answered ", req.get_param_value("error").substr(0, 64))));
    }
    // One use: a replayed state finds nothing.
    std::optional<PendingSignIn> pending =
        pending_->Take(req.get_param_value("state"), absl::Now());
    if (!pending) {
      return refuse(absl::UnauthenticatedError("sign-in: unknown, expired or already used state"));
    }
    if (!SecretsEqual(CookieValue(req, kSignInCookie), pending->browser_binding)) {
      return refuse(absl::UnauthenticatedError("sign-in: this browser did not start this sign-in"));
    }
    absl::StatusOr<SignedInCitizen> who =
        oidc_->Complete(req.get_param_value("code"), *pending, absl::Now());
    if (!who.ok()) return refuse(who.status());
    start_session(*who, "oidc", req, res);
    // The session cookie is SameSite=Strict, so the navigation that came from the
    // provider does not send it: a page of ours continues from this origin.
    res.status = 303;
    res.set_header("Location", "/signed-in");
  });

  http.Post("/auth/logout", [this, session_of, same_origin](const httplib::Request& req,
                                                            httplib::Response& res) {
    std::optional<Session> session = session_of(req);
    if (session) {
      if (!same_origin(req) ||
          !SecretsEqual(req.get_header_value("X-CSRF-Token"), session->csrf_token)) {
        return SendError(res, absl::PermissionDeniedError("missing or wrong X-CSRF-Token"));
      }
      sessions_->Remove(CookieValue(req, kSessionCookie));
    }
    res.set_header("Set-Cookie", SetCookie(kSessionCookie, "", "Strict", absl::ZeroDuration()));
    res.status = 204;
  });

  // --- API ---------------------------------------------------------------------------
  get("/api/session", [session_json](const Session& s, const httplib::Request&,
                                     httplib::Response& res) { SendJson(res, session_json(s)); });
  get("/api/directory", [this](const Session&, const httplib::Request&, httplib::Response& res) {
    SendJson(res, api_->directory_view());
  });
  get("/api/consents",
      [this, fail](const Session& s, const httplib::Request& req, httplib::Response& res) {
        absl::StatusOr<tellonce::v1::ConsentList> out = api_->Consents(s);
        if (!out.ok()) return fail(req, res, out.status());
        SendJson(res, *out);
      });
  get(R"(/api/consents/([^/]+))",
      [this, fail](const Session& s, const httplib::Request& req, httplib::Response& res) {
        absl::StatusOr<tellonce::v1::GetConsentResponse> out = api_->Consent(s, req.matches[1]);
        if (!out.ok()) return fail(req, res, out.status());
        SendJson(res, *out);
      });
  post("/api/consents", [this, fail](const Session& s, const httplib::Request& req,
                                     httplib::Response& res) {
    tellonce::v1::GrantRequest body;
    if (absl::Status st = ParseBody(req, &body); !st.ok()) return fail(req, res, st);
    absl::StatusOr<tellonce::v1::GrantConsentResponse> out = api_->Grant(s, body);
    if (!out.ok()) return fail(req, res, out.status());
    ops::LogInfo("consent granted through the portal", {{"consent", out->consent().consent_id()}});
    SendJson(res, *out);
  });
  post(R"(/api/consents/([^/]+)/revoke)",
       [this, fail](const Session& s, const httplib::Request& req, httplib::Response& res) {
         tellonce::v1::RevokeRequest body;
         if (absl::Status st = ParseBody(req, &body); !st.ok()) return fail(req, res, st);
         absl::StatusOr<tellonce::v1::Consent> out = api_->Revoke(s, req.matches[1], body);
         if (!out.ok()) return fail(req, res, out.status());
         ops::LogInfo("consent revoked through the portal", {{"consent", out->consent_id()}});
         SendJson(res, *out);
       });
  get("/api/history",
      [this, fail](const Session& s, const httplib::Request& req, httplib::Response& res) {
        absl::StatusOr<tellonce::v1::AccessHistory> out = api_->History(s);
        if (!out.ok()) return fail(req, res, out.status());
        SendJson(res, *out);
      });
  get(R"(/api/proof/([^/]+))", [this, fail](const Session& s, const httplib::Request& req,
                                            httplib::Response& res) {
    uint64_t index = 0;
    const std::string text = req.matches[1];
    if (text.empty() || text.size() > 20 || !absl::SimpleAtoi(text, &index) ||
        !std::all_of(text.begin(), text.end(), absl::ascii_isdigit)) {
      return fail(req, res, absl::InvalidArgumentError("index: must be a non-negative integer"));
    }
    absl::StatusOr<tellonce::v1::EntryProof> out = api_->Proof(s, index);
    if (!out.ok()) return fail(req, res, out.status());
    SendJson(res, *out);
  });
  get("/api/told-once",
      [this, fail](const Session& s, const httplib::Request& req, httplib::Response& res) {
        absl::StatusOr<tellonce::v1::ToldOnce> out = api_->ToldOnceSummary(s);
        if (!out.ok()) return fail(req, res, out.status());
        SendJson(res, *out);
      });

  // Anything else under /api: 401 without a session, 404 with one.
  auto api_fallback = [session_of](const httplib::Request& req, httplib::Response& res) {
    if (!session_of(req)) return SendError(res, absl::UnauthenticatedError("sign in first"));
    SendError(res, absl::NotFoundError("no such API endpoint"));
  };
  http.Get(R"(/api/.*)", api_fallback);
  http.Post(R"(/api/.*)", api_fallback);
  http.Put(R"(/api/.*)", api_fallback);
  http.Delete(R"(/api/.*)", api_fallback);
  http.Patch(R"(/api/.*)", api_fallback);

  http.set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        res.set_content(absl::StrCat("HTTP ", res.status, "\n"), "text/plain; charset=utf-8");
        return httplib::Server::HandlerResponse::Handled;
      }));
}

}  // namespace tellonce::portal
