#ifndef TELLONCE_CONNECTORS_CONFIG_H_
#define TELLONCE_CONNECTORS_CONFIG_H_

#include <string>

#include "absl/status/statusor.h"
#include "connectors/sdk.h"

namespace tellonce::connectors {

// Reads a text-format tellonce.v1.ConnectorConfig into ConnectorOptions: resolves
// relative paths (tls files, data_file, seen_events_file) against the folder holding the
// file and checks the required fields (agency_id, listen_address, trust_domain,
// tls.ca_file, tls.cert_file, tls.key_file) and their form, and broker_address's
// (host:port) when set. data_file and broker_address are optional here: whether an
// agency needs them is the agency's call. Does not open the TLS or data files (Start and
// RecordsFileSource::Load do). Errors: INVALID_ARGUMENT "<path>:<line>:<column>: ..." for
// syntax, "<path>: <field>: <reason>" for content ("bank.textproto: tls.cert_file:
// required"); NOT_FOUND and friends, naming the path, when the file cannot be read.
absl::StatusOr<ConnectorOptions> LoadConnectorConfig(const std::string& path);

}  // namespace tellonce::connectors

#endif  // TELLONCE_CONNECTORS_CONFIG_H_
