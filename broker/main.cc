// tellonce-broker: serves the broker's gRPC services over mutual TLS.
//
//   tellonce-broker --config FILE [--check] [--port-file FILE] [--admin-port-file FILE]
//   tellonce-broker --config FILE --migrate
//   tellonce-broker --version | --help
//
// SIGTERM or SIGINT: drain in-flight calls and close the database cleanly.
// SIGHUP: reload the directory file and the TLS files (a bad file is reported and the
// old one kept).

#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string_view>
#include <vector>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "broker/broker.h"
#include "broker/config.h"
#include "ops/flags.h"
#include "ops/log.h"
#include "ops/version.h"
#include "storage/postgres/postgres_storage.h"

namespace {

// The flags, their parser and their help text (ops/flags.h).
const std::vector<tellonce::ops::FlagSpec>& FlagTable() {
  static const auto* table = new std::vector<tellonce::ops::FlagSpec>{
      {"config", "FILE", "broker configuration (text-format tellonce.v1.BrokerConfig); required"},
      {"check", "", "validate the configuration, directory and TLS files, then exit"},
      {"migrate", "",
       "apply the missing schema migrations to storage.postgres's database, then exit"},
      {"port-file", "FILE", "write the bound port to FILE once serving (for port 0); default none"},
      {"admin-port-file", "FILE",
       "write the admin listener's bound port to FILE once serving (0 when it is off); default "
       "none"},
      tellonce::ops::VersionFlag(),
      tellonce::ops::HelpFlag(),
  };
  return *table;
}

std::string Usage() {
  return absl::StrCat(
      "usage: tellonce-broker --config FILE [--check] [--port-file FILE] "
      "[--admin-port-file FILE]\n"
      "       tellonce-broker --config FILE --migrate\n",
                      tellonce::ops::FlagHelp(FlagTable()),
                      "Exit codes: 0 clean stop, 1 start-up error, 2 usage error.\n");
}

struct Flags {
  std::string config;
  std::string port_file;
  std::string admin_port_file;
  bool check = false;
  bool migrate = false;
};

// One line on stderr naming the problem; the caller exits 2.
bool UsageError(absl::string_view what) {
  std::fprintf(stderr, "tellonce-broker: %.*s (see tellonce-broker --help)\n",
               static_cast<int>(what.size()), what.data());
  return false;
}

// False on bad usage (reported). Exits 0 for --help and --version.
bool ParseFlags(int argc, char** argv, Flags* flags) {
  absl::StatusOr<tellonce::ops::ParsedFlags> parsed =
      tellonce::ops::ParseFlags(std::vector<std::string>(argv + 1, argv + argc), FlagTable());
  if (!parsed.ok()) return UsageError(parsed.status().message());
  if (parsed->Has("help")) {
    std::fputs(Usage().c_str(), stdout);
    std::exit(0);
  }
  if (parsed->Has("version")) {
    std::fputs(tellonce::ops::VersionLine("tellonce-broker").c_str(), stdout);
    std::exit(0);
  }
  if (!parsed->positional.empty()) {
    return UsageError(absl::StrCat("unexpected argument \"", parsed->positional[0], "\""));
  }
  flags->config = parsed->Get("config");
  flags->port_file = parsed->Get("port-file");
  flags->admin_port_file = parsed->Get("admin-port-file");
  flags->check = parsed->Has("check");
  flags->migrate = parsed->Has("migrate");
  if (flags->check && flags->migrate) return UsageError("--check and --migrate exclude each other");
  if (flags->config.empty()) return UsageError("--config FILE is required");
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
  if (flags.migrate) {
    if (options->postgres.conninfo.empty()) {
      LogError("--migrate: the configuration has no storage.postgres (RocksDB needs no migration)");
      return 1;
    }
    absl::StatusOr<std::vector<int>> applied =
        tellonce::storage::postgres::MigratePostgres(options->postgres.conninfo);
    if (!applied.ok()) {
      LogError(absl::StrCat("migration failed: ", applied.status().message()));
      return 1;
    }
    std::printf("%s\n", applied->empty()
                            ? "schema up to date"
                            : absl::StrCat("schema migrated to version ", applied->back()).c_str());
    return 0;
  }
  if (flags.check) {
    // Start on a free loopback port to exercise every check, then stop at once.
    options->listen_address = "127.0.0.1:0";
    if (!options->admin_address.empty()) options->admin_address = "127.0.0.1:0";
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
  // Written atomically (a reader never sees half a file): the admin port first, so a
  // test that waits for the gRPC port finds both.
  auto write_port = [](const std::string& path, int port) {
    if (path.empty()) return;
    const std::string tmp = path + ".tmp";
    std::ofstream(tmp) << port << "\n";
    std::rename(tmp.c_str(), path.c_str());
  };
  write_port(flags.admin_port_file, (*broker)->admin_port());
  write_port(flags.port_file, (*broker)->port());

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
