// tellonce-broker: serves the broker's gRPC services over mutual TLS.
//
//   tellonce-broker --config FILE [--check] [--accept-log-rollback] [--port-file FILE]
//                   [--admin-port-file FILE]
//   tellonce-broker --config FILE --migrate
//   tellonce-broker --check-directory FILE
//   tellonce-broker --version | --help
//
// SIGTERM or SIGINT: drain in-flight calls and close the database cleanly.
// SIGHUP: reload the directory file and the TLS files (a bad file is reported and the
// old one kept).

#include <signal.h>
#include <sys/stat.h>

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
#include "broker/check.h"
#include "broker/config.h"
#include "consent/directory.h"
#include "ops/flags.h"
#include "ops/log.h"
#include "ops/version.h"
#include "storage/postgres/postgres_storage.h"

namespace {

// The flags, their parser and their help text (ops/flags.h).
const std::vector<tellonce::ops::FlagSpec>& FlagTable() {
  static const auto* table = new std::vector<tellonce::ops::FlagSpec>{
      {"config", "FILE", "broker configuration (text-format tellonce.v1.BrokerConfig); required"},
      {"check", "",
       "check the configuration, directory, keys, certificates and data directory without "
       "starting (safe beside a running broker: no lock, nothing written), then exit"},
      {"check-directory", "FILE",
       "validate FILE as the federation directory (before replacing the one in force), then "
       "exit; needs no --config"},
      {"accept-log-rollback", "",
       "start even though the data's access log is behind the checkpoint already signed (a "
       "restored backup); the rollback is logged and recorded in the access log"},
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
      "usage: tellonce-broker --config FILE [--check] [--accept-log-rollback] "
      "[--port-file FILE] [--admin-port-file FILE]\n"
      "       tellonce-broker --config FILE --migrate\n"
      "       tellonce-broker --check-directory FILE\n",
                      tellonce::ops::FlagHelp(FlagTable()),
                      "Exit codes: 0 clean stop, 1 start-up error, 2 usage error.\n");
}

struct Flags {
  std::string config;
  std::string port_file;
  std::string admin_port_file;
  std::string check_directory;
  bool check = false;
  bool accept_log_rollback = false;
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
  flags->check_directory = parsed->Get("check-directory");
  flags->accept_log_rollback = parsed->Has("accept-log-rollback");
  flags->migrate = parsed->Has("migrate");
  if (flags->check && flags->migrate) return UsageError("--check and --migrate exclude each other");
  if (flags->config.empty() && flags->check_directory.empty()) {
    return UsageError("--config FILE is required");
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  using tellonce::ops::LogError;
  using tellonce::ops::LogInfo;
  // Everything the broker creates (database files, the signed checkpoint file, backups)
  // is for its own user only: the data holds citizen ids.
  umask(077);
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) return 2;
  tellonce::ops::ConfigureLogging({.program = "tellonce-broker"});
  if (!flags.check_directory.empty()) {
    absl::StatusOr<std::shared_ptr<const tellonce::consent::Directory>> directory =
        tellonce::consent::Directory::LoadFile(flags.check_directory);
    if (!directory.ok()) {
      std::fprintf(stderr, "directory NOT OK: %s\n",
                   std::string(directory.status().message()).c_str());
      return 1;
    }
    std::printf("directory OK: %s: trust domain %s, %d agencies, %d attributes\n",
                flags.check_directory.c_str(), (*directory)->trust_domain().c_str(),
                (*directory)->proto().agencies_size(), (*directory)->proto().attributes_size());
    return 0;
  }
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
  options->accept_log_rollback = flags.accept_log_rollback;
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
    // Offline: nothing is started, locked or written (broker/check.h).
    const tellonce::broker::CheckReport report = tellonce::broker::CheckBroker(*options);
    for (const std::string& note : report.notes) std::printf("ok: %s\n", note.c_str());
    for (const std::string& problem : report.problems) {
      std::printf("PROBLEM: %s\n", problem.c_str());
    }
    if (!report.ok()) {
      LogError(absl::StrCat("--check: ", report.problems.size(), " problem(s) in ", flags.config,
                            ": ", report.problems.front()));
      return 1;
    }
    std::printf("configuration OK\n");
    return 0;
  }
  absl::StatusOr<std::unique_ptr<tellonce::broker::Broker>> broker =
      tellonce::broker::Broker::Start(*options);
  if (!broker.ok()) {
    LogError(absl::StrCat("start-up failed: ", broker.status().message()));
    return 1;
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
