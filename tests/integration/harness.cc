#include "tests/integration/harness.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "certs/citizen_assertion.h"
#include "certs/identity.h"
#include "certs/tls.h"
#include "consent/directory.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "proto/textproto.h"
#include "tellonce/v1/consent.grpc.pb.h"
#include "tellonce/v1/exchange.grpc.pb.h"

namespace tellonce::testing {
namespace {

std::string SourceDir() {
  const char* dir = std::getenv("TELLONCE_SOURCE_DIR");
  return dir != nullptr ? dir : TELLONCE_SOURCE_DIR_DEFAULT;
}

}  // namespace

std::string BrokerBinary() { return TELLONCE_BROKER_BIN; }
std::string CliBinary() { return TELLONCE_CLI_BIN; }
std::string AgencyBinary(const std::string& agency) {
  return absl::StrCat(TELLONCE_CONNECTORS_DIR, "/tellonce-", agency);
}
std::string FaultConnectorBinary() { return TELLONCE_FAULT_CONNECTOR_BIN; }
std::string SampleConnectorFile(const std::string& name) {
  return SourceDir() + "/deploy/local/connectors/" + name;
}
std::string SampleDirectoryFile() { return SourceDir() + "/deploy/local/directory.textproto"; }

int RunCommand(const std::vector<std::string>& argv, std::string* output) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pipe_fds[1], STDOUT_FILENO);
    dup2(pipe_fds[1], STDERR_FILENO);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(pipe_fds[1]);
  std::string collected;
  char buf[4096];
  ssize_t n;
  while ((n = read(pipe_fds[0], buf, sizeof buf)) > 0) collected.append(buf, n);
  close(pipe_fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (output != nullptr) *output = collected;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return -WTERMSIG(status);
}

absl::StatusOr<Pki> MakePki(const std::string& dir, const std::string& directory_file,
                            const std::vector<std::string>& extra_agencies) {
  std::vector<std::string> argv = {SourceDir() + "/certs/make-dev-pki", "--out", dir, "--directory",
                                   directory_file};
  for (const std::string& a : extra_agencies) {
    argv.push_back("--agency");
    argv.push_back(a);
  }
  std::string output;
  int code = RunCommand(argv, &output);
  if (code != 0) {
    return absl::InternalError(absl::StrCat("make-dev-pki failed (", code, "): ", output));
  }
  return Pki{dir};
}

std::string CitizenId(int n) {
  // Estonian personal code: sex/century digit, YYMMDD, serial, check digit. Spread n
  // over dates and serials, then find the check digit the directory's rule accepts.
  int serial = n % 1000;
  int day = (n / 1000) % 28 + 1;
  int month = (n / 28000) % 12 + 1;
  int year = 50 + (n / 336000) % 40;
  std::string prefix = absl::StrFormat("3%02d%02d%02d%03d", year, month, day, serial);
  for (char check = '0'; check <= '9'; ++check) {
    std::string id = prefix + check;
    if (consent::EstonianIsikukoodValid(id)) return id;
  }
  std::abort();
}

ServerProcess::ServerProcess(std::string binary, std::string config_path, std::string log_path,
                             std::string port_file)
    : binary_(std::move(binary)),
      config_path_(std::move(config_path)),
      log_path_(std::move(log_path)),
      port_file_(std::move(port_file)) {}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) Kill9();
}

absl::Status ServerProcess::Start() {
  std::filesystem::remove(port_file_);
  if (!admin_port_file_.empty()) std::filesystem::remove(admin_port_file_);
  pid_t pid = fork();
  if (pid == 0) {
    FILE* log = std::freopen(log_path_.c_str(), "a", stderr);
    (void)log;
    dup2(STDERR_FILENO, STDOUT_FILENO);
    std::vector<std::string> argv = {binary_, "--config", config_path_, "--port-file", port_file_};
    if (!admin_port_file_.empty()) {
      argv.push_back("--admin-port-file");
      argv.push_back(admin_port_file_);
    }
    argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
    std::vector<char*> args;
    for (std::string& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  pid_ = pid;
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::InternalError(absl::StrCat(binary_, " exited at start-up: ", log()));
    }
    std::ifstream in(port_file_);
    if (in >> port_ && port_ > 0) {
      // The admin port file is written before the port file.
      admin_port_ = 0;
      if (!admin_port_file_.empty()) std::ifstream(admin_port_file_) >> admin_port_;
      return absl::OkStatus();
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  Kill9();
  return absl::DeadlineExceededError(absl::StrCat(binary_, " did not start: ", log()));
}

void ServerProcess::Kill9() {
  if (pid_ <= 0) return;
  kill(pid_, SIGCONT);
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

void ServerProcess::Hangup() {
  if (pid_ > 0) kill(pid_, SIGHUP);
}

void ServerProcess::Pause() {
  if (pid_ <= 0) return;
  kill(pid_, SIGSTOP);
  // kill() returns before every thread has stopped: a thread running on the other core
  // may still answer a call for a moment. Wait until the kernel reports every thread
  // stopped ("T" in /proc/<pid>/task/<tid>/stat), at most 2 s.
  const std::string tasks = "/proc/" + std::to_string(pid_) + "/task";
  const absl::Time give_up = absl::Now() + absl::Seconds(2);
  while (absl::Now() < give_up) {
    bool all_stopped = true;
    std::error_code error;
    for (const auto& task : std::filesystem::directory_iterator(tasks, error)) {
      std::ifstream stat(task.path() / "stat");
      std::string line;
      std::getline(stat, line);
      const size_t paren = line.rfind(')');
      if (paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] != 'T') {
        all_stopped = false;
        break;
      }
    }
    if (all_stopped && !error) return;
    absl::SleepFor(absl::Milliseconds(1));
  }
}

void ServerProcess::Resume() {
  if (pid_ > 0) kill(pid_, SIGCONT);
}

int ServerProcess::Terminate() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGCONT);
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return -WTERMSIG(status);
}

std::string ServerProcess::address() const { return absl::StrCat("127.0.0.1:", port_); }

std::string ServerProcess::log() const {
  absl::StatusOr<std::string> text = ReadFileToString(log_path_);
  return text.ok() ? *text : std::string("(no log)");
}

namespace {

// The first line of `path`, or "" when it cannot be read.
std::string FirstLine(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return "";
  return text->substr(0, text->find('\n'));
}

}  // namespace

std::string Pki::signing_key_id() const { return FirstLine(dir + "/signing/key_id"); }
std::string Pki::broker_pin() const { return FirstLine(dir + "/broker.pin"); }

namespace {

std::string Prepared(const std::string& dir) {
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace

BrokerProcess::BrokerProcess(std::string dir, const Pki& pki, std::string directory_file,
                             std::string extra_config, std::string binary)
    : ServerProcess(binary.empty() ? BrokerBinary() : std::move(binary),
                    Prepared(dir) + "/broker.textproto", dir + "/broker.log", dir + "/port"),
      data_dir_(dir + "/data") {
  admin_port_file_ = dir + "/admin-port";
  std::ofstream(config_path()) << "listen_address: \"127.0.0.1:0\"\n"
                               << "admin { listen_address: \"127.0.0.1:0\" }\n"
                               << "tls {\n"
                               << "  ca_file: \"" << pki.ca() << "\"\n"
                               << "  cert_file: \"" << pki.broker_cert() << "\"\n"
                               << "  key_file: \"" << pki.broker_key() << "\"\n"
                               << "  crl_dir: \"" << pki.dir << "/crl\"\n"
                               << "}\n"
                               << "signing {\n"
                               << "  key_file: \"" << pki.signing_key() << "\"\n"
                               << "  key_id: \"" << pki.signing_key_id() << "\"\n"
                               << "}\n"
                               << "data_dir: \"" << data_dir_ << "\"\n"
                               << "directory_file: \"" << directory_file << "\"\n"
                               << "shutdown_grace_seconds: 5\n"
                               << extra_config;
}

ConnectorProcess::ConnectorProcess(std::string binary, std::string dir, const Pki& pki,
                                   const std::string& agency, const std::string& data_file,
                                   int port, const std::string& extra_config)
    : ServerProcess(std::move(binary), Prepared(dir) + "/connector.textproto",
                    dir + "/connector.log", dir + "/port") {
  admin_port_file_ = dir + "/admin-port";
  std::ofstream out(config_path());
  out << extra_config << "\n";
  out << "agency_id: \"" << agency << "\"\n"
      << "listen_address: \"127.0.0.1:" << port << "\"\n"
      << "trust_domain: \"tellonce.local\"\n"
      << "tls {\n"
      << "  ca_file: \"" << pki.ca() << "\"\n"
      << "  cert_file: \"" << pki.cert(agency) << "\"\n"
      << "  key_file: \"" << pki.key(agency) << "\"\n"
      << "}\n";
  if (!data_file.empty()) out << "data_file: \"" << data_file << "\"\n";
}

absl::StatusOr<SampleConnectors> StartSampleConnectors(const std::string& dir, const Pki& pki,
                                                       const std::string& registry_extra,
                                                       const std::string& bank_extra) {
  SampleConnectors c;
  c.registry = std::make_unique<ConnectorProcess>(
      AgencyBinary("registry"), dir + "/registry", pki, "registry",
      SampleConnectorFile("registry-records.textproto"), FreePort(), registry_extra);
  c.bank = std::make_unique<ConnectorProcess>(AgencyBinary("bank"), dir + "/bank", pki, "bank",
                                              SampleConnectorFile("bank-records.textproto"),
                                              FreePort(), bank_extra);
  if (absl::Status s = c.registry->Start(); !s.ok()) return s;
  if (absl::Status s = c.bank->Start(); !s.ok()) return s;
  c.directory_file = dir + "/directory.textproto";
  if (absl::Status s = WriteDirectoryWithPorts(
          c.directory_file, {{"registry", c.registry->port()}, {"bank", c.bank->port()}});
      !s.ok()) {
    return s;
  }
  return c;
}

int HttpGet(int port, const std::string& path, std::string* body) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  timeval timeout{.tv_sec = 10, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  if (send(fd, request.data(), request.size(), 0) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return -1;
  }
  std::string response;
  char buf[8192];
  for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;)
    response.append(buf, static_cast<size_t>(n));
  close(fd);
  // "HTTP/1.1 200 OK\r\n...\r\n\r\nbody"
  int code = -1;
  if (response.size() < 12 || !absl::SimpleAtoi(response.substr(9, 3), &code)) return -1;
  const size_t head_end = response.find("\r\n\r\n");
  if (body != nullptr) *body = head_end == std::string::npos ? "" : response.substr(head_end + 4);
  return code;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::abort();
  }
  close(fd);
  return ntohs(addr.sin_port);
}

absl::Status WriteDirectoryWithPorts(const std::string& path,
                                     const std::vector<std::pair<std::string, int>>& ports) {
  absl::StatusOr<std::string> text = ReadFileToString(SampleDirectoryFile());
  if (!text.ok()) return text.status();
  const std::vector<std::pair<std::string, std::string>> sample = {
      {"registry", "127.0.0.1:7501"}, {"bank", "127.0.0.1:7502"}, {"tax", "127.0.0.1:7503"}};
  for (const auto& [agency, port] : ports) {
    for (const auto& [sample_agency, endpoint] : sample) {
      if (agency != sample_agency) continue;
      size_t at = text->find(endpoint);
      if (at == std::string::npos) {
        return absl::NotFoundError(absl::StrCat("sample directory has no ", endpoint));
      }
      text->replace(at, endpoint.size(), absl::StrCat("127.0.0.1:", port));
    }
  }
  std::ofstream(path) << *text;
  return absl::OkStatus();
}

std::shared_ptr<grpc::Channel> AgencyChannel(const Pki& pki, const std::string& agency,
                                             const std::string& address) {
  absl::StatusOr<std::string> broker_pem = ReadFileToString(pki.broker_cert());
  absl::StatusOr<certs::SpiffeId> broker_id =
      broker_pem.ok() ? certs::CertificateSpiffeId(*broker_pem)
                      : absl::StatusOr<certs::SpiffeId>(broker_pem.status());
  if (!broker_id.ok()) std::abort();
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      certs::MakeChannelCredentials({.ca_file = pki.ca(),
                                     .cert_file = pki.cert(agency),
                                     .key_file = pki.key(agency),
                                     .crl_dir = ""},
                                    broker_id->ToString());
  if (!creds.ok()) std::abort();
  grpc::ChannelArguments args;
  // Each test channel gets its own connection, so one test's TLS session never serves
  // another identity.
  args.SetInt("grpc.use_local_subchannel_pool", 1);
  return grpc::CreateCustomChannel(address, *creds, args);
}

std::string SampleDirectoryFor(const Pki& pki) {
  std::ifstream in(SampleDirectoryFile());
  std::stringstream text;
  text << in.rdbuf();
  std::string directory = text.str();
  // The sample names pki/idp/jwks.json relative to deploy/local; this copy sits in
  // the PKI's own folder.
  absl::StrReplaceAll({{"jwks_file: \"pki/idp/jwks.json\"", "jwks_file: \"idp/jwks.json\""}},
                      &directory);
  const std::string path = pki.dir + "/directory.textproto";
  std::ofstream(path) << directory;
  return path;
}

std::string CitizenToken(const Pki& pki, const std::string& citizen, const std::string& audience,
                         absl::Duration age) {
  absl::StatusOr<certs::CitizenAssertionSigner> signer =
      certs::CitizenAssertionSigner::FromPemFile(pki.idp_key());
  if (!signer.ok()) return "";
  certs::CitizenAssertionClaims claims;
  claims.issuer = kDevIdpIssuer;
  claims.audience = audience;
  claims.citizen_id = citizen;
  claims.issued_at = absl::Now() - age;
  absl::StatusOr<std::string> token = signer->Mint(claims);
  return token.ok() ? *token : "";
}

void AddCitizenAssertion(grpc::ClientContext* context, const Pki& pki, const std::string& citizen) {
  context->AddMetadata(certs::kCitizenAssertionMetadataKey, CitizenToken(pki, citizen));
}

absl::StatusOr<std::string> GrantConsent(const Pki& pki, const std::string& address,
                                         const ConsentTerms& terms) {
  static std::atomic<int> n{0};
  tellonce::v1::GrantConsentRequest r;
  r.set_request_id(terms.request_id.empty() ? absl::StrCat("harness-grant-", n++)
                                            : terms.request_id);
  r.set_citizen_id(terms.citizen);
  r.set_consumer(terms.consumer);
  for (const std::string& a : terms.attributes) r.add_attributes(a);
  r.set_purpose(terms.purpose);
  *r.mutable_expires_at() = google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
      absl::ToUnixNanos(absl::Now() + terms.lifetime));
  r.set_mode(terms.mode);
  auto stub = tellonce::v1::ConsentService::NewStub(AgencyChannel(pki, "portal", address));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  AddCitizenAssertion(&context, pki, terms.citizen);
  tellonce::v1::GrantConsentResponse response;
  grpc::Status status = stub->GrantConsent(&context, r, &response);
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  }
  return response.consent().consent_id();
}

grpc::Status RevokeConsent(const Pki& pki, const std::string& address, const std::string& citizen,
                           const std::string& consent_id) {
  auto stub = tellonce::v1::ConsentService::NewStub(AgencyChannel(pki, "portal", address));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  tellonce::v1::RevokeConsentRequest r;
  r.set_citizen_id(citizen);
  r.set_consent_id(consent_id);
  AddCitizenAssertion(&context, pki, citizen);
  tellonce::v1::RevokeConsentResponse response;
  return stub->RevokeConsent(&context, r, &response);
}

grpc::Status GetConsentAsPortal(const Pki& pki, const std::string& address,
                                const std::string& citizen, const std::string& consent_id) {
  auto stub = tellonce::v1::ConsentService::NewStub(AgencyChannel(pki, "portal", address));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  AddCitizenAssertion(&context, pki, citizen);
  tellonce::v1::GetConsentRequest request;
  request.set_citizen_id(citizen);
  request.set_consent_id(consent_id);
  tellonce::v1::GetConsentResponse response;
  return stub->GetConsent(&context, request, &response);
}

grpc::Status GetAttributes(const Pki& pki, const std::string& address, const std::string& consumer,
                           const std::string& citizen, const std::vector<std::string>& attributes,
                           const std::string& purpose,
                           tellonce::v1::GetAttributesResponse* response, absl::Duration deadline,
                           const std::string& request_id) {
  auto stub = tellonce::v1::ExchangeService::NewStub(AgencyChannel(pki, consumer, address));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  tellonce::v1::GetAttributesRequest r;
  r.set_request_id(request_id);
  r.set_citizen_id(citizen);
  for (const std::string& a : attributes) r.add_attributes(a);
  r.set_purpose(purpose);
  return stub->GetAttributes(&context, r, response);
}

}  // namespace tellonce::testing
