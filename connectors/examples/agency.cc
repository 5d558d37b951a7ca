#include "connectors/examples/agency.h"

#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "connectors/config.h"
#include "connectors/sdk.h"

namespace tellonce::connectors::examples {
namespace {

// "<RFC 3339 UTC time> <level> <program>: <text>" on stderr, one write per line.
void Log(char level, const std::string& program, absl::string_view text) {
  std::string line = absl::StrCat(
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()), " ",
      std::string(1, level), " ", program, ": ", text, "\n");
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

struct Flags {
  std::string config;
  std::string port_file;
};

std::string Usage(const std::string& program) {
  return absl::StrCat(
      "usage: ", program, " --config FILE [--port-file FILE]\n",
      "  --config FILE     connector configuration (text-format tellonce.v1.ConnectorConfig)\n",
      "  --port-file FILE  write the bound port to FILE once serving (for port 0)\n");
}

// False on bad usage (reported). Exits 0 for --help.
bool ParseFlags(const std::string& program, int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    if (arg == "--config") {
      if (!value(&flags->config)) break;
    } else if (arg == "--port-file") {
      if (!value(&flags->port_file)) break;
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(Usage(program).c_str(), stdout);
      std::exit(0);
    } else {
      std::fprintf(stderr, "%s: unknown argument %s\n%s", program.c_str(), arg.c_str(),
                   Usage(program).c_str());
      return false;
    }
  }
  if (flags->config.empty()) {
    std::fprintf(stderr, "%s: --config FILE is required\n%s", program.c_str(),
                 Usage(program).c_str());
    return false;
  }
  return true;
}

// A consumer-only agency holds no citizen data, so every fetch is NOT_FOUND. Change
// notifications (issue 5) are what such a connector will be for.
class NoRecordsSource final : public AttributeSource {
 public:
  absl::StatusOr<tellonce::v1::FetchAttributesResponse> Fetch(const FetchContext&) override {
    return absl::NotFoundError("this agency provides no attributes");
  }
};

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

// The source of an example agency: its records file, or nothing for a consumer.
absl::StatusOr<std::unique_ptr<AttributeSource>> ProfileSource(const AgencyProfile& profile,
                                                               const ConnectorOptions& options,
                                                               std::string* serves) {
  if (profile.attributes.empty()) {
    *serves = "no attributes (consumer)";
    return std::make_unique<NoRecordsSource>();
  }
  if (options.data_file.empty()) return absl::InvalidArgumentError("data_file: required");
  absl::StatusOr<std::unique_ptr<RecordsFileSource>> records =
      RecordsFileSource::Load(options.data_file, profile.attributes);
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

int RunConnector(const std::string& program, const std::string& description,
                 const SourceFactory& make_source, int argc, char** argv) {
  Flags flags;
  if (!ParseFlags(program, argc, argv, &flags)) return 2;

  // Block the signals before any thread starts, so every thread inherits the mask and
  // only the sigwait below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<ConnectorOptions> options = LoadConnectorConfig(flags.config);
  if (!options.ok()) {
    Log('E', program, absl::StrCat("configuration: ", options.status().message()));
    return 1;
  }

  std::string serves;
  absl::StatusOr<std::unique_ptr<AttributeSource>> source = make_source(*options, &serves);
  if (!source.ok()) {
    Log('E', program,
        absl::StrCat("configuration: ", flags.config, ": ", source.status().message()));
    return 1;
  }

  absl::StatusOr<std::unique_ptr<ConnectorServer>> server =
      ConnectorServer::Start(*options, source->get());
  if (!server.ok()) {
    Log('E', program, absl::StrCat("start-up failed: ", server.status().message()));
    return 1;
  }
  if (!flags.port_file.empty() && !WritePortFile(flags.port_file, (*server)->port())) {
    Log('E', program, absl::StrCat("cannot write --port-file ", flags.port_file));
    return 1;
  }
  Log('I', program,
      absl::StrCat(description, " (agency ", options->agency_id, ") serving ConnectorService on ",
                   options->listen_address, " (port ", (*server)->port(), "), trust domain ",
                   options->trust_domain, ": ", serves));

  int signal = 0;
  while (sigwait(&signals, &signal) != 0) {
  }
  Log('I', program, absl::StrCat("received ", strsignal(signal), ", draining"));
  (*server)->Shutdown();
  server->reset();
  Log('I', program, "stopped cleanly");
  return 0;
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
