#ifndef TELLONCE_CONNECTORS_EXAMPLES_AGENCY_H_
#define TELLONCE_CONNECTORS_EXAMPLES_AGENCY_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "connectors/records_source.h"
#include "connectors/sdk.h"

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
// until SIGTERM or SIGINT, then shuts down gracefully. Returns the exit code: 0 after a
// clean stop, 1 on a start-up error (printed, naming file and field), 2 on bad usage.
// Call from main() before any thread is started.
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

}  // namespace tellonce::connectors::examples

#endif  // TELLONCE_CONNECTORS_EXAMPLES_AGENCY_H_
