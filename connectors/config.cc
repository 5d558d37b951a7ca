#include "connectors/config.h"

#include <filesystem>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "certs/identity.h"
#include "proto/identifiers.h"
#include "proto/textproto.h"
#include "tellonce/v1/config.pb.h"

namespace tellonce::connectors {
namespace {

std::string Resolve(const std::filesystem::path& base, const std::string& path) {
  if (path.empty()) return path;
  std::filesystem::path p(path);
  if (p.is_absolute()) return p.lexically_normal().string();
  return (base / p).lexically_normal().string();
}

}  // namespace

absl::StatusOr<ConnectorOptions> LoadConnectorConfig(const std::string& path) {
  tellonce::v1::ConnectorConfig config;
  if (absl::Status s = ParseTextProtoFile(path, &config); !s.ok()) return s;

  auto invalid = [&](absl::string_view field, absl::string_view reason) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", field, ": ", reason));
  };
  auto required = [&](absl::string_view field) { return invalid(field, "required"); };

  if (config.agency_id().empty()) return required("agency_id");
  if (!IsAgencyId(config.agency_id())) {
    return invalid("agency_id", absl::StrCat("must match ", kAgencyIdPattern, ", got \"",
                                             absl::CEscape(config.agency_id()), "\""));
  }
  if (config.listen_address().empty()) return required("listen_address");
  if (!IsListenAddress(config.listen_address())) {
    return invalid("listen_address", absl::StrCat("must be host:port, got \"",
                                                  absl::CEscape(config.listen_address()), "\""));
  }
  if (config.trust_domain().empty()) return required("trust_domain");
  // The broker's SPIFFE id in this trust domain parses only if the domain is well-formed.
  if (!certs::ParseSpiffeId(certs::BrokerSpiffeId(config.trust_domain())).ok()) {
    return invalid("trust_domain", "must be a lower-case DNS-like name");
  }
  if (config.tls().ca_file().empty()) return required("tls.ca_file");
  if (config.tls().cert_file().empty()) return required("tls.cert_file");
  if (config.tls().key_file().empty()) return required("tls.key_file");
  if (!config.broker_address().empty() && !IsHostPort(config.broker_address())) {
    return invalid("broker_address", absl::StrCat("must be host:port, got \"",
                                                  absl::CEscape(config.broker_address()), "\""));
  }

  const std::filesystem::path base = std::filesystem::absolute(path).parent_path();
  ConnectorOptions options;
  options.agency_id = config.agency_id();
  options.listen_address = config.listen_address();
  options.trust_domain = config.trust_domain();
  options.tls.ca_file = Resolve(base, config.tls().ca_file());
  options.tls.cert_file = Resolve(base, config.tls().cert_file());
  options.tls.key_file = Resolve(base, config.tls().key_file());
  options.tls.crl_dir = Resolve(base, config.tls().crl_dir());
  options.tls.refuse_readable_key = !config.allow_readable_private_keys();
  if (config.tls().reload_interval_seconds() > 3600) {
    return invalid("tls.reload_interval_seconds", "at most 3600");
  }
  if (config.tls().reload_interval_seconds() != 0) {
    options.tls_watch.poll_interval = absl::Seconds(config.tls().reload_interval_seconds());
  }
  if (config.tls().expiry_warning_hours() > 8760) {
    return invalid("tls.expiry_warning_hours", "at most 8760");
  }
  if (config.tls().expiry_warning_hours() != 0) {
    options.tls_watch.expiry_warning = absl::Hours(config.tls().expiry_warning_hours());
  }
  options.data_file = Resolve(base, config.data_file());
  options.broker_address = config.broker_address();
  for (int i = 0; i < config.broker_pins_size(); ++i) {
    if (absl::Status s = certs::CheckPinSyntax(config.broker_pins(i)); !s.ok()) {
      return invalid(absl::StrCat("broker_pins[", i, "]"), std::string(s.message()));
    }
    options.broker_pins.push_back(config.broker_pins(i));
  }
  options.seen_events_file = Resolve(base, config.seen_events_file());
  if (config.max_seen_events() != 0) options.max_seen_events = config.max_seen_events();
  options.log = ops::LogOptionsFromConfig(config.log(), options.log.program);
  if (!config.admin().listen_address().empty() && config.admin().listen_address() != "off") {
    if (!IsListenAddress(config.admin().listen_address())) {
      return invalid("admin.listen_address",
                     absl::StrCat("must be host:port, got \"",
                                  absl::CEscape(config.admin().listen_address()), "\""));
    }
    options.admin_address = config.admin().listen_address();
  }
  options.rpc_metrics = !config.admin().unsafe_disable_rpc_metrics();
  return options;
}

}  // namespace tellonce::connectors
