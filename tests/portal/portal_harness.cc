#include "tests/portal/portal_harness.h"

#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "proto/textproto.h"

namespace tellonce::testing {

std::string PortalBinary() { return TELLONCE_PORTAL_BIN; }
std::string OidcProviderBinary() { return TELLONCE_OIDC_PROVIDER_BIN; }

ChildProcess::ChildProcess(std::vector<std::string> argv, std::string log_path,
                           std::string port_file)
    : argv_(std::move(argv)), log_path_(std::move(log_path)), port_file_(std::move(port_file)) {}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

absl::Status ChildProcess::Start() {
  std::filesystem::remove(port_file_);
  pid_t pid = fork();
  if (pid == 0) {
    FILE* log = std::freopen(log_path_.c_str(), "a", stderr);
    (void)log;
    dup2(STDERR_FILENO, STDOUT_FILENO);
    std::vector<char*> args;
    for (std::string& a : argv_) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  pid_ = pid;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::InternalError(absl::StrCat(argv_[0], " exited at start-up: ", log()));
    }
    std::ifstream in(port_file_);
    if (in >> port_ && port_ > 0) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(absl::StrCat(argv_[0], " did not start: ", log()));
}

int ChildProcess::Terminate() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

std::string ChildProcess::log() const {
  absl::StatusOr<std::string> text = ReadFileToString(log_path_);
  return text.ok() ? *text : "(no log)";
}

std::string PortalFederation::PortalConfigText(const std::string& listen_address,
                                               const PortalFederationOptions& options) const {
  std::string text = absl::StrCat(
      "listen_address: \"", listen_address, "\"\n", "https_cert_file: \"", pki.cert("portal"),
      "\"\n", "https_key_file: \"", pki.key("portal"), "\"\n", "broker_address: \"",
      broker->address(), "\"\n", "broker_tls { ca_file: \"", pki.ca(), "\" cert_file: \"",
      pki.cert(options.portal_agency), "\" key_file: \"", pki.key(options.portal_agency), "\" }\n",
      "directory_file: \"", connectors.directory_file, "\"\n", "signing_keys_dir: \"",
      pki.signing_keys(), "\"\n");
  if (options.dev_sign_in) {
    absl::StrAppend(&text, "dev_sign_in {\n  idp_key_file: \"", pki.idp_key(), "\"\n",
                    "  citizens { citizen_id: \"", kJaan, "\" label: \"Jaan Tamm (sample)\" }\n",
                    "  citizens { citizen_id: \"", kMari,
                    "\" label: \"Mari Kask (sample)\" }\n}\n");
  }
  if (options.oidc) {
    const std::string idp = absl::StrCat("https://127.0.0.1:", idp_port);
    const std::string port = listen_address.substr(listen_address.rfind(':') + 1);
    absl::StrAppend(&text, "oidc {\n  issuer: \"", kDevIdpIssuer, "\"\n",
                    "  authorization_endpoint: \"", idp, "/authorize\"\n", "  token_endpoint: \"",
                    idp, "/token\"\n", "  jwks_uri: \"", idp, "/jwks.json\"\n", "  client_id: \"",
                    kPortalClientId, "\"\n", "  redirect_uri: \"https://127.0.0.1:", port,
                    "/auth/callback\"\n", "  ca_file: \"", pki.ca(), "\"\n");
    if (!options.client_secret.empty()) {
      const std::string secret_file =
          absl::StrCat(dir, "/client-secret-", std::hash<std::string>()(options.client_secret));
      std::ofstream(secret_file) << options.client_secret << "\n";
      absl::StrAppend(&text, "  client_secret_file: \"", secret_file, "\"\n");
    }
    absl::StrAppend(&text, "}\n");
  }
  absl::StrAppend(&text, options.extra_config, "\n");
  return text;
}

absl::StatusOr<std::unique_ptr<PortalFederation>> PortalFederation::Start(
    const std::string& dir, const PortalFederationOptions& options) {
  auto f = std::make_unique<PortalFederation>();
  f->dir = dir;
  std::filesystem::create_directories(dir);
  absl::StatusOr<Pki> pki = MakePki(dir + "/pki", SampleDirectoryFile(), {"eid"});
  if (!pki.ok()) return pki.status();
  f->pki = *pki;
  absl::StatusOr<SampleConnectors> connectors = StartSampleConnectors(dir, f->pki);
  if (!connectors.ok()) return connectors.status();
  f->connectors = *std::move(connectors);
  if (options.idp_max_age_seconds > 0) {
    absl::StatusOr<std::string> text = ReadFileToString(f->connectors.directory_file);
    if (!text.ok()) return text.status();
    std::string edited = absl::StrReplaceAll(
        *text, {{"max_age { seconds: 900 }",
                 absl::StrCat("max_age { seconds: ", options.idp_max_age_seconds, " }")}});
    if (edited == *text) return absl::InternalError("sample directory has no max_age 900");
    std::ofstream(f->connectors.directory_file) << edited;
  }
  f->broker =
      std::make_unique<BrokerProcess>(dir + "/broker", f->pki, f->connectors.directory_file);
  if (absl::Status s = f->broker->Start(); !s.ok()) return s;

  f->chosen_portal_port = FreePort();
  f->idp = std::make_unique<ChildProcess>(
      std::vector<std::string>{OidcProviderBinary(), "--issuer", kDevIdpIssuer, "--signing-key",
                               f->pki.idp_key(), "--tls-cert", f->pki.cert("eid"), "--tls-key",
                               f->pki.key("eid"), "--client-id", kPortalClientId,
                               "--redirect-uri-prefix", "https://127.0.0.1:", "--client-secret",
                               kOidcClientSecret, "--port-file", dir + "/idp.port"},
      dir + "/idp.log", dir + "/idp.port");
  if (absl::Status s = f->idp->Start(); !s.ok()) return s;
  f->idp_port = f->idp->port();

  const std::string config = dir + "/portal.textproto";
  std::ofstream(config) << f->PortalConfigText(absl::StrCat("127.0.0.1:", f->chosen_portal_port),
                                               options);
  f->portal = std::make_unique<ServerProcess>(PortalBinary(), config, dir + "/portal.log",
                                              dir + "/portal.port");
  if (absl::Status s = f->portal->Start(); !s.ok()) return s;
  return f;
}

std::string PortalFederation::portal_url() const {
  return absl::StrCat("https://127.0.0.1:", portal->port());
}

// ---------------------------------------------------------------------------------

HttpsClient::HttpsClient(const std::string& ca_file, int port) : ca_file_(ca_file), port_(port) {}

std::string HttpsClient::origin() const { return absl::StrCat("https://127.0.0.1:", port_); }

std::string HttpsClient::Response::header(const std::string& name) const {
  for (const auto& [k, v] : headers) {
    if (absl::EqualsIgnoreCase(k, name)) return v;
  }
  return "";
}

HttpsClient::Response HttpsClient::Send(const std::string& method, const std::string& path,
                                        const std::string& body, const std::string& content_type,
                                        const std::map<std::string, std::string>& headers,
                                        bool with_cookies) {
  httplib::SSLClient client("127.0.0.1", port_);
  client.set_ca_cert_path(ca_file_.c_str());
  client.enable_server_certificate_verification(true);
  client.set_read_timeout(30, 0);
  httplib::Headers h;
  for (const auto& [k, v] : headers) h.emplace(k, v);
  if (with_cookies && !cookies_.empty()) {
    std::string cookie;
    for (const auto& [k, v] : cookies_)
      absl::StrAppend(&cookie, cookie.empty() ? "" : "; ", k, "=", v);
    h.emplace("Cookie", cookie);
  }
  httplib::Result r = method == "GET"   ? client.Get(path.c_str(), h)
                      : method == "PUT" ? client.Put(path.c_str(), h, body, content_type.c_str())
                                        : client.Post(path.c_str(), h, body, content_type.c_str());
  Response out;
  if (!r) return out;
  out.status = r->status;
  out.body = r->body;
  for (const auto& [k, v] : r->headers) {
    out.headers.emplace(k, v);
    if (absl::EqualsIgnoreCase(k, "Set-Cookie")) {
      std::vector<std::string> parts = absl::StrSplit(v, ';');
      const size_t eq = parts[0].find('=');
      if (eq == std::string::npos) continue;
      const std::string name = parts[0].substr(0, eq);
      const std::string value = parts[0].substr(eq + 1);
      if (value.empty() || absl::StrContains(v, "Max-Age=0")) {
        cookies_.erase(name);
      } else {
        cookies_[name] = value;
      }
    }
  }
  return out;
}

HttpsClient::Response HttpsClient::Get(const std::string& path) {
  return Send("GET", path, "", "", {});
}

HttpsClient::Response HttpsClient::PostJson(const std::string& path, const std::string& json,
                                            const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> headers = {{"Origin", origin()}};
  if (!csrf_token_.empty()) headers["X-CSRF-Token"] = csrf_token_;
  for (const auto& [k, v] : extra) headers[k] = v;
  return Send("POST", path, json, "application/json", headers);
}

std::string JsonField(const std::string& json, const std::string& field) {
  google::protobuf::Struct object;
  if (!google::protobuf::util::JsonStringToMessage(json, &object).ok()) return "";
  const google::protobuf::Struct* at = &object;
  std::vector<std::string> path = absl::StrSplit(field, '.');
  for (size_t i = 0; i < path.size(); ++i) {
    auto it = at->fields().find(path[i]);
    if (it == at->fields().end()) return "";
    if (i + 1 == path.size()) {
      if (it->second.has_string_value()) return it->second.string_value();
      if (it->second.has_bool_value()) return it->second.bool_value() ? "true" : "false";
      if (it->second.has_number_value()) return absl::StrCat(it->second.number_value());
      return "";
    }
    if (!it->second.has_struct_value()) return "";
    at = &it->second.struct_value();
  }
  return "";
}

int DevSignIn(HttpsClient& client, const std::string& citizen) {
  HttpsClient::Response r =
      client.PostJson("/auth/dev", absl::StrCat("{\"citizen_id\":\"", citizen, "\"}"));
  if (r.status == 200) client.set_csrf_token(JsonField(r.body, "csrf_token"));
  return r.status;
}

int OidcSignIn(HttpsClient& client, int idp_port, const std::string& ca_file,
               const std::string& citizen, const std::string& fault, std::string* callback_url,
               bool follow) {
  HttpsClient::Response login = client.Get("/auth/login");
  if (login.status != 302) return login.status;
  const std::string location = login.header("Location");
  const std::string prefix = absl::StrCat("https://127.0.0.1:", idp_port);
  if (!absl::StartsWith(location, prefix)) return -2;
  // The citizen at the provider: it redirects back with a code.
  httplib::SSLClient idp("127.0.0.1", idp_port);
  idp.set_ca_cert_path(ca_file.c_str());
  idp.enable_server_certificate_verification(true);
  std::string path = absl::StrCat(location.substr(prefix.size()), "&login_hint=", citizen);
  if (!fault.empty()) absl::StrAppend(&path, "&test_fault=", fault);
  httplib::Result approved = idp.Get(path.c_str());
  if (!approved || approved->status != 302) return -3;
  const std::string back = approved->get_header_value("Location");
  const std::string portal_prefix = client.origin();
  if (!absl::StartsWith(back, portal_prefix)) return -4;
  const std::string callback = back.substr(portal_prefix.size());
  if (callback_url != nullptr) *callback_url = callback;
  if (!follow) return 0;
  HttpsClient::Response r = client.Get(callback);
  if (r.status == 303) {
    HttpsClient::Response session = client.Get("/api/session");
    client.set_csrf_token(JsonField(session.body, "csrf_token"));
  }
  return r.status;
}

}  // namespace tellonce::testing
