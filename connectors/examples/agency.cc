#include "connectors/examples/agency.h"

#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "certs/identity.h"
#include "certs/tls.h"
#include "connectors/config.h"
#include "connectors/sdk.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/support/channel_arguments.h"
#include "ops/flags.h"
#include "ops/log.h"

namespace tellonce::connectors::examples {

absl::StatusOr<std::shared_ptr<grpc::Channel>> BrokerChannel(const ConnectorOptions& options) {
  if (options.broker_address.empty()) {
    return absl::InvalidArgumentError("broker_address: required");
  }
  const std::string broker_id = certs::BrokerSpiffeId(options.trust_domain);
  // Over the process's watched material when there is one, so that the channel's new
  // connections follow a reloaded certificate and CRL.
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      options.tls_watcher != nullptr
          ? options.tls_watcher->ChannelCredentials(broker_id, options.broker_pins)
          : certs::MakeChannelCredentials(options.tls, broker_id, options.broker_pins);
  if (!credentials.ok()) return credentials.status();
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // GRPC_ARG_MIN_RECONNECT_BACKOFF_MS stays at its default: gRPC takes it as the minimum
  // connect timeout, and a short one abandons TLS handshakes a busy broker is slow to
  // finish.
  return grpc::CreateCustomChannel(options.broker_address, *credentials, args);
}

namespace {

struct Flags {
  std::string config;
  std::string port_file;
  std::string admin_port_file;
};

const std::vector<ops::FlagSpec>& FlagTable() {
  static const auto* table = new std::vector<ops::FlagSpec>{
      {"config", "FILE",
       "connector configuration (text-format tellonce.v1.ConnectorConfig); required"},
      {"port-file", "FILE", "write the bound port to FILE once serving (for port 0); default none"},
      {"admin-port-file", "FILE",
       "write the admin listener's bound port to FILE once serving (0 without one); default "
       "none"},
      ops::VersionFlag(),
      ops::HelpFlag(),
  };
  return *table;
}

std::string Usage(const std::string& program) {
  return absl::StrCat(
      "usage: ", program, " --config FILE [--port-file FILE] [--admin-port-file FILE]\n",
      ops::FlagHelp(FlagTable()), "Exit codes: 0 clean stop, 1 start-up error, 2 usage error.\n");
}

// False on bad usage (one line on stderr naming the flag). Exits 0 for --help and
// --version.
bool ParseFlags(const std::string& program, int argc, char** argv, Flags* flags) {
  auto usage_error = [&](absl::string_view what) {
    std::fprintf(stderr, "%s: %.*s (see %s --help)\n", program.c_str(),
                 static_cast<int>(what.size()), what.data(), program.c_str());
    return false;
  };
  absl::StatusOr<ops::ParsedFlags> parsed =
      ops::ParseFlags(std::vector<std::string>(argv + 1, argv + argc), FlagTable());
  if (!parsed.ok()) return usage_error(parsed.status().message());
  if (parsed->Has("help")) {
    std::fputs(Usage(program).c_str(), stdout);
    std::exit(0);
  }
  if (parsed->Has("version")) {
    std::fputs(ops::VersionLine(program).c_str(), stdout);
    std::exit(0);
  }
  if (!parsed->positional.empty()) {
    return usage_error(absl::StrCat("unexpected argument \"", parsed->positional[0], "\""));
  }
  flags->config = parsed->Get("config");
  flags->port_file = parsed->Get("port-file");
  flags->admin_port_file = parsed->Get("admin-port-file");
  if (flags->config.empty()) return usage_error("--config FILE is required");
  return true;
}

// Writes the port atomically (write, then rename), so a reader never sees half a file.
bool WritePortFile(const std::string& path, int port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << port << "\n";
    if (!out.good()) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

// A consumer-only agency holds no citizen data, so every fetch is NOT_FOUND.
class NoRecordsSource final : public AttributeSource {
 public:
  absl::StatusOr<tellonce::v1::FetchAttributesResponse> Fetch(const FetchContext&) override {
    return absl::NotFoundError("this agency provides no attributes");
  }
};

// The source of an example agency: its records file, followed while serving, or
// nothing for a consumer.
absl::StatusOr<std::unique_ptr<AttributeSource>> ProfileSource(const AgencyProfile& profile,
                                                               const ConnectorOptions& options,
                                                               std::string* serves) {
  if (profile.attributes.empty()) {
    *serves = "no attributes (consumer)";
    return std::make_unique<NoRecordsSource>();
  }
  if (options.data_file.empty()) return absl::InvalidArgumentError("data_file: required");
  const std::string program = profile.program;
  const std::string path = options.data_file;
  absl::StatusOr<std::unique_ptr<LiveRecordsFileSource>> records = LiveRecordsFileSource::Load(
      options.data_file, profile.attributes,
      [program, path](const absl::Status& status, size_t citizens) {
        if (status.ok()) {
          ops::LogInfo(
              absl::StrCat("data_file ", path, " changed: now serving ", citizens, " citizens"));
        } else {
          ops::LogWarning(
              absl::StrCat("data_file changed but cannot be loaded, still serving the previous "
                           "version: ",
                           status.message()));
        }
      });
  if (!records.ok()) {
    return absl::Status(records.status().code(),
                        absl::StrCat("data_file: ", records.status().message()));
  }
  std::vector<std::string> names;
  for (const HeldAttribute& a : profile.attributes) names.push_back(a.name);
  *serves = absl::StrCat(absl::StrJoin(names, ", "), " for ", (*records)->size(), " citizens");
  return std::unique_ptr<AttributeSource>(*std::move(records));
}

}  // namespace

int RunConnectorParts(const std::string& program, const std::string& description,
                      const PartsFactory& make_parts, int argc, char** argv) {
  Flags flags;
  if (!ParseFlags(program, argc, argv, &flags)) return 2;
  ops::ConfigureLogging({.program = program});
  // Debian's abseil keeps a lock graph on every Mutex acquisition (deadlock detection);
  // the SDK's lock order is fixed, so skip it, as the broker does.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  // Block the signals before any thread starts, so every thread inherits the mask and
  // only the sigwait below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<ConnectorOptions> options = LoadConnectorConfig(flags.config);
  if (!options.ok()) {
    ops::LogError(absl::StrCat("configuration: ", options.status().message()));
    return 1;
  }
  options->log.program = program;
  ops::ConfigureLogging(options->log);
  // One watcher of the TLS files for the server and the channels to the broker.
  absl::StatusOr<std::unique_ptr<certs::TlsMaterialWatcher>> tls =
      certs::TlsMaterialWatcher::Start(options->tls, options->tls_watch);
  if (!tls.ok()) {
    ops::LogError(absl::StrCat("start-up failed: ", tls.status().message()));
    return 1;
  }
  options->tls_watcher = *std::move(tls);

  absl::StatusOr<ConnectorParts> parts = make_parts(*options);
  if (!parts.ok()) {
    ops::LogError(absl::StrCat("configuration: ", flags.config, ": ", parts.status().message()));
    return 1;
  }

  absl::StatusOr<std::unique_ptr<ConnectorServer>> server =
      ConnectorServer::Start(*options, parts->source.get(), parts->handler.get());
  if (!server.ok()) {
    ops::LogError(absl::StrCat("start-up failed: ", server.status().message()));
    return 1;
  }
  // The admin port first: whoever waits for the port file finds both.
  if (!flags.admin_port_file.empty() &&
      !WritePortFile(flags.admin_port_file, (*server)->admin_port())) {
    ops::LogError(absl::StrCat("cannot write --admin-port-file ", flags.admin_port_file));
    return 1;
  }
  if (!flags.port_file.empty() && !WritePortFile(flags.port_file, (*server)->port())) {
    ops::LogError(absl::StrCat("cannot write --port-file ", flags.port_file));
    return 1;
  }
  ops::LogInfo(absl::StrCat(description, " (agency ", options->agency_id,
                            ") serving ConnectorService on ", options->listen_address, " (port ",
                            (*server)->port(), "), trust domain ", options->trust_domain, ": ",
                            parts->serves));

  int signal = 0;
  while (true) {
    if (sigwait(&signals, &signal) != 0) continue;
    if (signal != SIGHUP) break;
    // SIGHUP: re-read the TLS files now (a refusal is logged by the watcher).
    if (options->tls_watcher->Reload().ok()) ops::LogInfo("TLS files reloaded");
  }
  ops::LogInfo(absl::StrCat("received ", strsignal(signal), ", draining"));
  (*server)->Shutdown();
  server->reset();
  ops::LogInfo("stopped cleanly");
  return 0;
}

int RunConnector(const std::string& program, const std::string& description,
                 const SourceFactory& make_source, int argc, char** argv) {
  return RunConnectorParts(
      program, description,
      [&make_source](const ConnectorOptions& options) -> absl::StatusOr<ConnectorParts> {
        ConnectorParts parts;
        absl::StatusOr<std::unique_ptr<AttributeSource>> source =
            make_source(options, &parts.serves);
        if (!source.ok()) return source.status();
        if (*source == nullptr) return absl::InvalidArgumentError("no source to serve");
        parts.source = *std::move(source);
        return parts;
      },
      argc, argv);
}

int RunAgency(const AgencyProfile& profile, int argc, char** argv) {
  return RunConnector(
      profile.program, profile.description,
      [&profile](const ConnectorOptions& options, std::string* serves) {
        return ProfileSource(profile, options, serves);
      },
      argc, argv);
}

}  // namespace tellonce::connectors::examples
