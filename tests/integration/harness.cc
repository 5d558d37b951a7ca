#include "tests/integration/harness.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "certs/identity.h"
#include "certs/tls.h"
#include "consent/directory.h"
#include "grpcpp/create_channel.h"
#include "proto/textproto.h"

namespace tellonce::testing {
namespace {

std::string SourceDir() {
  const char* dir = std::getenv("TELLONCE_SOURCE_DIR");
  return dir != nullptr ? dir : TELLONCE_SOURCE_DIR_DEFAULT;
}

}  // namespace

std::string BrokerBinary() { return TELLONCE_BROKER_BIN; }
std::string CliBinary() { return TELLONCE_CLI_BIN; }
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
  std::vector<std::string> argv = {SourceDir() + "/certs/make-dev-pki", "--out", dir,
                                   "--directory", directory_file};
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

BrokerProcess::BrokerProcess(std::string dir, const Pki& pki, std::string directory_file,
                             std::string extra_config)
    : dir_(std::move(dir)) {
  std::filesystem::create_directories(dir_);
  config_path_ = dir_ + "/broker.textproto";
  data_dir_ = dir_ + "/data";
  log_path_ = dir_ + "/broker.log";
  port_file_ = dir_ + "/port";
  std::ofstream(config_path_) << "listen_address: \"127.0.0.1:0\"\n"
                              << "tls {\n"
                              << "  ca_file: \"" << pki.ca() << "\"\n"
                              << "  cert_file: \"" << pki.broker_cert() << "\"\n"
                              << "  key_file: \"" << pki.broker_key() << "\"\n"
                              << "  crl_dir: \"" << pki.dir << "/crl\"\n"
                              << "}\n"
                              << "data_dir: \"" << data_dir_ << "\"\n"
                              << "directory_file: \"" << directory_file << "\"\n"
                              << "shutdown_grace_seconds: 5\n"
                              << extra_config;
}

BrokerProcess::~BrokerProcess() {
  if (pid_ > 0) Kill9();
}

absl::Status BrokerProcess::Start() {
  std::filesystem::remove(port_file_);
  pid_t pid = fork();
  if (pid == 0) {
    FILE* log = std::freopen(log_path_.c_str(), "a", stderr);
    (void)log;
    dup2(STDERR_FILENO, STDOUT_FILENO);
    std::string bin = BrokerBinary();
    execl(bin.c_str(), bin.c_str(), "--config", config_path_.c_str(), "--port-file",
          port_file_.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  pid_ = pid;
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::InternalError(absl::StrCat("broker exited at start-up: ", log()));
    }
    std::ifstream in(port_file_);
    if (in >> port_ && port_ > 0) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(20));
  }
  Kill9();
  return absl::DeadlineExceededError(absl::StrCat("broker did not start: ", log()));
}

void BrokerProcess::Kill9() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

int BrokerProcess::Terminate() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return -WTERMSIG(status);
}

std::string BrokerProcess::address() const { return absl::StrCat("127.0.0.1:", port_); }

std::string BrokerProcess::log() const {
  absl::StatusOr<std::string> text = ReadFileToString(log_path_);
  return text.ok() ? *text : std::string("(no log)");
}

std::shared_ptr<grpc::Channel> AgencyChannel(const Pki& pki, const std::string& agency,
                                             const std::string& address) {
  absl::StatusOr<std::string> broker_pem = ReadFileToString(pki.broker_cert());
  absl::StatusOr<certs::SpiffeId> broker_id =
      broker_pem.ok() ? certs::CertificateSpiffeId(*broker_pem)
                      : absl::StatusOr<certs::SpiffeId>(broker_pem.status());
  if (!broker_id.ok()) std::abort();
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds = certs::MakeChannelCredentials(
      {.ca_file = pki.ca(), .cert_file = pki.cert(agency), .key_file = pki.key(agency)},
      broker_id->ToString());
  if (!creds.ok()) std::abort();
  grpc::ChannelArguments args;
  // Each test channel gets its own connection, so one test's TLS session never serves
  // another identity.
  args.SetInt("grpc.use_local_subchannel_pool", 1);
  return grpc::CreateCustomChannel(address, *creds, args);
}

}  // namespace tellonce::testing
