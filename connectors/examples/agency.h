#ifndef TELLONCE_CONNECTORS_EXAMPLES_AGENCY_H_
#define TELLONCE_CONNECTORS_EXAMPLES_AGENCY_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "connectors/records_source.h"
#include "connectors/sdk.h"
#include "grpcpp/channel.h"

namespace tellonce::connectors::examples {

// What distinguishes one example agency's binary from another.
struct AgencyProfile {
  // Program name, e.g. "tellonce-bank", used in usage and log lines.
  std::string program;
  // Who the agency is, e.g. "Nordbank".
  std::string description;
  // The attributes it is authoritative for, served from its data_file. Empty for a
  // consumer-only agency: it then needs no data_file and answers NOT_FOUND to fetches.
  std::vector<HeldAttribute> attributes;
};

// The whole process of an example agency:
//
//   <program> --config FILE [--port-file FILE]
//
// Loads the ConnectorConfig (and the records for a provider), serves ConnectorService
// until SIGTERM or SIGINT, then shuts down gracefully. A provider's records are followed
// while serving (LiveRecordsFileSource): a replaced data_file is served from the next
// fetch on, and the reload is logged. Returns the exit code: 0 after a clean stop, 1 on
// a start-up error (printed, naming file and field), 2 on bad usage. Call from main()
// before any thread is started.
int RunAgency(const AgencyProfile& profile, int argc, char** argv);

// Makes the source a connector serves from its loaded configuration (typically from
// options.data_file) and sets `serves` to a few words on what it serves, for the
// start-up log line. An error stops start-up; its message should name the field
// ("data_file: ...").
using SourceFactory = std::function<absl::StatusOr<std::unique_ptr<AttributeSource>>(
    const ConnectorOptions& options, std::string* serves)>;

// RunAgency's process around any source, for connectors that do not serve a records
// file (test connectors, an agency's own source): same flags, signals, port file, log
// lines and exit codes. `description` names the agency in the log ("Nordbank").
int RunConnector(const std::string& program, const std::string& description,
                 const SourceFactory& make_source, int argc, char** argv);

// What a connector serves: a source of attributes, a handler of change notifications, or
// both (see ConnectorServer::Start), and a few words on it for the start-up log line.
struct ConnectorParts {
  std::unique_ptr<AttributeSource> source;
  std::unique_ptr<ChangeHandler> handler;
  std::string serves;
};
using PartsFactory = std::function<absl::StatusOr<ConnectorParts>(const ConnectorOptions& options)>;

// RunConnector for a connector that may take change notifications (a subscriber, such
// as tellonce-tax or the integration tests' subscriber). Same flags, signals, port
// file, log lines and exit codes.
int RunConnectorParts(const std::string& program, const std::string& description,
                      const PartsFactory& make_parts, int argc, char** argv);

// A mutual TLS channel to options.broker_address with the agency's certificate,
// accepting only a server presenting spiffe://<trust_domain>/broker. Reconnects by
// itself with a short back-off (100 ms at first, at most 1 s). INVALID_ARGUMENT "broker_address:
// required" when the configuration names no broker; the TLS files' errors otherwise.
absl::StatusOr<std::shared_ptr<grpc::Channel>> BrokerChannel(const ConnectorOptions& options);

}  // namespace tellonce::connectors::examples

#endif  // TELLONCE_CONNECTORS_EXAMPLES_AGENCY_H_
