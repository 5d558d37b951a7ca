// tellonce-broker: serves the broker's gRPC services over mutual TLS.
//
//   tellonce-broker --config FILE [--check] [--port-file FILE]
//
// SIGTERM or SIGINT: drain in-flight calls and close the database cleanly.
// SIGHUP: reload the directory file and the TLS files (a bad file is reported and the
// old one kept).

#include <signal.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "broker/broker.h"
#include "broker/config.h"
#include "ops/log.h"
#include "ops/version.h"

namespace {

constexpr char kUsage[] =
    "usage: tellonce-broker --config FILE [--check] [--port-file FILE]\n"
    "  --config FILE     broker configuration (text-format tellonce.v1.BrokerConfig)\n"
    "  --check           validate the configuration, directory and TLS files, then exit\n"
    "  --port-file FILE  write the bound port to FILE once serving (for port 0)\n";

struct Flags {
  std::string config;
  std::string port_file;
  bool check = false;
};

bool ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    if (arg == "--config") {
      if (!value(&flags->config)) return false;
    } else if (arg == "--port-file") {
      if (!value(&flags->port_file)) return false;
    } else if (arg == "--check") {
      flags->check = true;
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else {
      std::fprintf(stderr, "tellonce-broker: unknown argument %s\n%s", arg.c_str(), kUsage);
      return false;
    }
  }
  if (flags->config.empty()) {
    std::fprintf(stderr, "tellonce-broker: --config is required\n%s", kUsage);
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  using tellonce::ops::LogError;
  using tellonce::ops::LogInfo;
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) return 2;
  tellonce::ops::ConfigureLogging({.program = "tellonce-broker"});
  // Debian's abseil is built with Mutex deadlock detection on, which keeps a lock graph
  // on every acquisition; the broker's lock order is fixed by design, so skip it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  // Block the signals before any thread starts, so every thread inherits the mask and
  // only the sigwait below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<tellonce::broker::BrokerOptions> options =
      tellonce::broker::LoadBrokerConfig(flags.config);
  if (!options.ok()) {
    LogError(absl::StrCat("configuration: ", options.status().message()));
    return 1;
  }
  tellonce::ops::ConfigureLogging(options->log);
  if (flags.check) {
    // Start on a free loopback port to exercise every check, then stop at once.
    options->listen_address = "127.0.0.1:0";
  }
  absl::StatusOr<std::unique_ptr<tellonce::broker::Broker>> broker =
      tellonce::broker::Broker::Start(*options);
  if (!broker.ok()) {
    LogError(absl::StrCat("start-up failed: ", broker.status().message()));
    return 1;
  }
  if (flags.check) {
    (*broker)->Shutdown();
    std::printf("configuration OK\n");
    return 0;
  }
  if (!flags.port_file.empty()) {
    std::string tmp = flags.port_file + ".tmp";
    std::ofstream(tmp) << (*broker)->port() << "\n";
    std::rename(tmp.c_str(), flags.port_file.c_str());
  }

  while (true) {
    int signal = 0;
    if (sigwait(&signals, &signal) != 0) continue;
    if (signal == SIGHUP) {
      // The TLS watcher logs its own refusal, naming the file.
      if ((*broker)->ReloadTls().ok()) LogInfo("TLS files re-read");
      absl::Status reloaded = (*broker)->ReloadDirectory();
      if (reloaded.ok()) {
        LogInfo("directory reloaded");
      } else {
        LogError(absl::StrCat("directory reload refused, keeping the current one: ",
                              reloaded.message()));
      }
      continue;
    }
    LogInfo(absl::StrCat("received ", strsignal(signal), ", draining"));
    break;
  }
  (*broker)->Shutdown();
  LogInfo("stopped cleanly");
  return 0;
}
