// tellonce-portal: the reference citizen portal. HTTPS toward citizens' browsers (the
// web UI and its JSON API), gRPC over mutual TLS toward the broker as a portal agency.
//
//   tellonce-portal --config FILE [--check] [--port-file FILE]
//   tellonce-portal --version | --help
//
// SIGTERM or SIGINT: stop serving and exit 0 (sessions are in memory: everyone is
// signed out).

#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "ops/flags.h"
#include "ops/log.h"
#include "ops/version.h"
#include "portal/config.h"
#include "portal/server.h"

namespace {

const std::vector<tellonce::ops::FlagSpec>& FlagTable() {
  static const auto* table = new std::vector<tellonce::ops::FlagSpec>{
      {"config", "FILE", "portal configuration (text-format tellonce.v1.PortalConfig); required"},
      {"check", "", "load and check everything, start on a free loopback port, then exit"},
      {"port-file", "FILE", "write the bound HTTPS port to FILE once serving; default none"},
      tellonce::ops::VersionFlag(),
      tellonce::ops::HelpFlag(),
  };
  return *table;
}

int UsageError(absl::string_view what) {
  std::fprintf(stderr, "tellonce-portal: %.*s (see tellonce-portal --help)\n",
               static_cast<int>(what.size()), what.data());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using tellonce::ops::LogError;
  using tellonce::ops::LogInfo;
  absl::StatusOr<tellonce::ops::ParsedFlags> flags =
      tellonce::ops::ParseFlags(std::vector<std::string>(argv + 1, argv + argc), FlagTable());
  if (!flags.ok()) return UsageError(flags.status().message());
  if (flags->Has("help")) {
    std::fputs(absl::StrCat("usage: tellonce-portal --config FILE [--check] [--port-file FILE]\n",
                            tellonce::ops::FlagHelp(FlagTable()),
                            "Exit codes: 0 clean stop, 1 start-up error, 2 usage error.\n")
                   .c_str(),
               stdout);
    return 0;
  }
  if (flags->Has("version")) {
    std::fputs(tellonce::ops::VersionLine("tellonce-portal").c_str(), stdout);
    return 0;
  }
  if (!flags->positional.empty()) {
    return UsageError(absl::StrCat("unexpected argument \"", flags->positional[0], "\""));
  }
  if (flags->Get("config").empty()) return UsageError("--config FILE is required");
  tellonce::ops::ConfigureLogging({.program = "tellonce-portal"});
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // A browser that goes away mid-answer must not kill the process.
  signal(SIGPIPE, SIG_IGN);

  absl::StatusOr<tellonce::portal::PortalOptions> options =
      tellonce::portal::LoadPortalConfig(flags->Get("config"));
  if (!options.ok()) {
    LogError(absl::StrCat("configuration: ", options.status().message()));
    return 1;
  }
  tellonce::ops::ConfigureLogging(
      tellonce::ops::LogOptionsFromConfig(options->config.log(), "tellonce-portal"));
  const bool check = flags->Has("check");
  if (check) options->config.set_listen_address("127.0.0.1:0");
  const bool dev = options->config.has_dev_sign_in();
  absl::StatusOr<std::unique_ptr<tellonce::portal::PortalServer>> server =
      tellonce::portal::PortalServer::Start(*std::move(options));
  if (!server.ok()) {
    LogError(absl::StrCat("start-up failed: ", server.status().message()));
    return 1;
  }
  if (check) {
    std::printf("configuration OK\n");
    return 0;
  }
  LogInfo(absl::StrCat("serving citizens on https://127.0.0.1:", (*server)->port(),
                       dev ? " (DEVELOPMENT sign-in: synthetic citizens only)" : ""));
  if (const std::string path = flags->Get("port-file"); !path.empty()) {
    const std::string tmp = path + ".tmp";
    std::ofstream(tmp) << (*server)->port() << "\n";
    std::rename(tmp.c_str(), path.c_str());
  }
  int signal = 0;
  while (sigwait(&signals, &signal) != 0) {
  }
  LogInfo(absl::StrCat("received ", strsignal(signal), ", stopping"));
  server->reset();
  LogInfo("stopped cleanly");
  return 0;
}
