#ifndef TELLONCE_PORTAL_CONFIG_H_
#define TELLONCE_PORTAL_CONFIG_H_

// The portal's configuration: a text-format tellonce.v1.PortalConfig
// (proto/tellonce/v1/portal.proto), read and checked once at start-up.

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tellonce/v1/directory.pb.h"
#include "tellonce/v1/portal.pb.h"

namespace tellonce::portal {

// A checked configuration: defaults filled in, relative paths resolved against the
// configuration file's folder, the directory file parsed.
struct PortalOptions {
  tellonce::v1::PortalConfig config;
  // The directory named by config.directory_file.
  tellonce::v1::Directory directory;
  absl::Duration session_lifetime;
  absl::Duration broker_timeout;
  absl::Duration oidc_max_age;
};

// Reads and checks `path`. INVALID_ARGUMENT "<file>:<line>:<col>: ..." for a syntax
// error, "<field>: <reason>" for a missing or bad value (e.g. "dev_sign_in: only on a
// loopback listen_address"), the file's own error for an unreadable file.
absl::StatusOr<PortalOptions> LoadPortalConfig(const std::string& path);

// The same checks on a configuration already parsed; `base_dir` resolves relative
// paths (empty: leave them).
absl::StatusOr<PortalOptions> CheckPortalConfig(tellonce::v1::PortalConfig config,
                                                const std::string& base_dir);

// True when the host of `address` (host:port, [v6]:port) is a loopback address:
// 127.0.0.0/8, ::1 or "localhost".
bool IsLoopbackAddress(const std::string& address);

}  // namespace tellonce::portal

#endif  // TELLONCE_PORTAL_CONFIG_H_
