#include "broker/config.h"

#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "certs/signing.h"
#include "proto/textproto.h"
#include "tellonce/v1/config.pb.h"

namespace tellonce::broker {
namespace {

std::string Resolve(const std::filesystem::path& base, const std::string& path) {
  if (path.empty()) return path;
  std::filesystem::path p(path);
  if (p.is_absolute()) return p.lexically_normal().string();
  return (base / p).lexically_normal().string();
}

absl::Status CheckHostPort(const std::string& source, const std::string& address,
                           absl::string_view field = "listen_address") {
  size_t colon = address.rfind(':');
  int port = -1;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": ", field, ": must be host:port, got \"", address, "\""));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<BrokerOptions> LoadBrokerConfig(const std::string& path) {
  tellonce::v1::BrokerConfig config;
  if (absl::Status s = ParseTextProtoFile(path, &config); !s.ok()) return s;

  std::filesystem::path base = std::filesystem::absolute(path).parent_path();
  BrokerOptions options;
  auto required = [&](const std::string& field) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", field, ": required"));
  };

  if (!config.listen_address().empty()) options.listen_address = config.listen_address();
  if (absl::Status s = CheckHostPort(path, options.listen_address); !s.ok()) return s;

  if (config.tls().ca_file().empty()) return required("tls.ca_file");
  if (config.tls().cert_file().empty()) return required("tls.cert_file");
  if (config.tls().key_file().empty()) return required("tls.key_file");
  options.tls.ca_file = Resolve(base, config.tls().ca_file());
  options.tls.cert_file = Resolve(base, config.tls().cert_file());
  options.tls.key_file = Resolve(base, config.tls().key_file());
  options.tls.crl_dir = Resolve(base, config.tls().crl_dir());
  if (config.tls().reload_interval_seconds() > 3600) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": tls.reload_interval_seconds: at most 3600"));
  }
  if (config.tls().reload_interval_seconds() != 0) {
    options.tls_watch.poll_interval = absl::Seconds(config.tls().reload_interval_seconds());
  }
  if (config.tls().expiry_warning_hours() > 8760) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": tls.expiry_warning_hours: at most 8760"));
  }
  if (config.tls().expiry_warning_hours() != 0) {
    options.tls_watch.expiry_warning = absl::Hours(config.tls().expiry_warning_hours());
  }

  if (config.data_dir().empty()) return required("data_dir");
  options.data_dir = Resolve(base, config.data_dir());
  if (config.directory_file().empty()) return required("directory_file");
  options.directory_file = Resolve(base, config.directory_file());

  const tellonce::v1::BrokerLimits& limits = config.limits();
  if (limits.max_receive_message_bytes() != 0) {
    if (limits.max_receive_message_bytes() < 1024) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": limits.max_receive_message_bytes: must be at least 1024"));
    }
    options.max_receive_message_bytes = limits.max_receive_message_bytes();
  }
  if (limits.max_string_bytes() != 0) options.limits.max_string_bytes = limits.max_string_bytes();
  if (limits.max_page_size() != 0) options.limits.max_page_size = limits.max_page_size();

  if (config.group_commit_wait_us() > 10000) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": group_commit_wait_us: at most 10000"));
  }
  if (config.group_commit_wait_us() != 0) {
    options.group_commit_wait = absl::Microseconds(config.group_commit_wait_us());
  }
  if (config.checkpoint_interval_seconds() != 0) {
    options.checkpoint_interval = absl::Seconds(config.checkpoint_interval_seconds());
  }
  options.unsafe_disable_access_log = config.unsafe_disable_access_log();
  const tellonce::v1::NotificationDelivery& n = config.notifications();
  if (n.max_attempts() != 0) options.dispatch.max_attempts = static_cast<int>(n.max_attempts());
  if (n.max_age_seconds() != 0) options.dispatch.max_age = absl::Seconds(n.max_age_seconds());
  if (n.initial_backoff_ms() != 0) {
    options.dispatch.initial_backoff = absl::Milliseconds(n.initial_backoff_ms());
  }
  if (n.max_backoff_ms() != 0) options.dispatch.max_backoff = absl::Milliseconds(n.max_backoff_ms());
  if (n.window() != 0) {
    if (n.window() > 1024) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": notifications.window: at most 1024"));
    }
    options.dispatch.window = static_cast<int>(n.window());
  }
  if (options.dispatch.initial_backoff > options.dispatch.max_backoff) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": notifications.initial_backoff_ms: larger than max_backoff_ms"));
  }
  const tellonce::v1::ExchangeLimits& exchange = config.exchange();
  if (exchange.default_deadline_ms() != 0) {
    options.exchange_default_deadline = absl::Milliseconds(exchange.default_deadline_ms());
  }
  if (exchange.max_value_bytes() != 0) options.exchange_max_value_bytes = exchange.max_value_bytes();
  if (exchange.max_attributes_per_request() != 0) {
    if (exchange.max_attributes_per_request() > 1024) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": exchange.max_attributes_per_request: at most 1024"));
    }
    options.exchange_max_attributes = exchange.max_attributes_per_request();
  }
  if (exchange.max_fetches_per_batch() != 0) {
    if (exchange.max_fetches_per_batch() > 256) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": exchange.max_fetches_per_batch: at most 256"));
    }
    options.max_fetches_per_batch = exchange.max_fetches_per_batch();
  }
  if (exchange.max_in_flight() != 0) options.exchange_max_in_flight = exchange.max_in_flight();
  if (exchange.connector_batches_in_flight() != 0) {
    if (exchange.connector_batches_in_flight() > 1024) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": exchange.connector_batches_in_flight: at most 1024"));
    }
    options.connector_batches_in_flight = exchange.connector_batches_in_flight();
  }
  if (config.shutdown_grace_seconds() != 0) {
    options.shutdown_grace = absl::Seconds(config.shutdown_grace_seconds());
  }
  if (config.block_cache_mb() != 0) options.block_cache_mb = config.block_cache_mb();

  options.log = ops::LogOptionsFromConfig(config.log(), "tellonce-broker");
  if (config.admin().listen_address() == "off") {
    options.admin_address.clear();
  } else if (!config.admin().listen_address().empty()) {
    options.admin_address = config.admin().listen_address();
    if (absl::Status s = CheckHostPort(path, options.admin_address, "admin.listen_address");
        !s.ok()) {
      return s;
    }
  }
  options.rpc_metrics = !config.admin().unsafe_disable_rpc_metrics();

  // No fallback to the TLS key: receipts and checkpoints are signed by a key of their
  // own, or the broker does not start (broker/README.md, "Keys").
  if (config.signing().key_file().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": signing.key_file: required (the receipt and checkpoint signing key, separate "
              "from tls.key_file; make-dev-pki writes signing/broker-signing.key)"));
  }
  if (config.signing().key_id().empty()) return required("signing.key_id");
  if (absl::Status s = certs::CheckKeyId(config.signing().key_id()); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": signing.key_id: ", s.message()));
  }
  options.signing_key_file = Resolve(base, config.signing().key_file());
  options.signing_key_id = config.signing().key_id();
  return options;
}

}  // namespace tellonce::broker
