#ifndef TELLONCE_TESTS_INTEGRATION_HARNESS_H_
#define TELLONCE_TESTS_INTEGRATION_HARNESS_H_

// Test harness for integration tests: temp dirs, a dev PKI made by certs/make-dev-pki,
// broker processes started from the built binary on a free loopback port, and mutual
// TLS channels for any agency of the PKI.

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/status.h"
#include "tellonce/v1/consent.pb.h"
#include "tellonce/v1/exchange.pb.h"
#include "tests/testing/temp_dir.h"

namespace tellonce::testing {

// Runs argv[0] with the arguments, waits, and returns its exit code; stdout and
// stderr go to `output` when given.
int RunCommand(const std::vector<std::string>& argv, std::string* output = nullptr);

// A dev PKI in `dir` made by certs/make-dev-pki for the agencies of `directory_file`
// plus `extra_agencies`.
struct Pki {
  std::string dir;
  std::string ca() const { return dir + "/ca.pem"; }
  std::string cert(const std::string& agency) const { return dir + "/agencies/" + agency + ".pem"; }
  std::string key(const std::string& agency) const { return dir + "/agencies/" + agency + ".key"; }
  std::string broker_cert() const { return dir + "/broker.pem"; }
  std::string broker_key() const { return dir + "/broker.key"; }
  // The development citizen identity provider's ES256 key and JWKS.
  std::string idp_key() const { return dir + "/idp/dev-idp.key"; }
  std::string idp_jwks() const { return dir + "/idp/jwks.json"; }
  // The receipt and checkpoint signing key (not the TLS key), its id, and the
  // directory of public signing keys a verifier is given (--signing-keys).
  std::string signing_key() const { return dir + "/signing/broker-signing.key"; }
  std::string signing_key_id() const;
  std::string signing_keys() const { return dir + "/signing-keys"; }
  // base64 SHA-256 of the broker certificate's SubjectPublicKeyInfo (broker_pins).
  std::string broker_pin() const;
};
absl::StatusOr<Pki> MakePki(const std::string& dir, const std::string& directory_file,
                            const std::vector<std::string>& extra_agencies = {});

// An HTTP GET of http://127.0.0.1:<port><path> (plain HTTP, as the admin listener
// serves); the status code, and the body in `body`. -1 when no answer came.
int HttpGet(int port, const std::string& path, std::string* body = nullptr);

// The sample federation directory shipped in deploy/local/.
std::string SampleDirectoryFile();

// A copy of the sample directory written into the PKI's folder, so that its
// identity provider's relative jwks_file finds this PKI's JWKS; its path.
std::string SampleDirectoryFor(const Pki& pki);

// The sample directory's development identity provider and portal client id.
inline constexpr char kDevIdpIssuer[] = "https://eid.tellonce.local";
inline constexpr char kPortalClientId[] = "tellonce-portal";

// A citizen ID token minted by the PKI's dev identity provider: for `citizen`,
// issued `age` ago, for `audience`.
std::string CitizenToken(const Pki& pki, const std::string& citizen,
                         const std::string& audience = kPortalClientId,
                         absl::Duration age = absl::ZeroDuration());
// Adds a fresh citizen ID token for `citizen` to `context`'s metadata, as a portal
// does on citizen-bound calls.
void AddCitizenAssertion(grpc::ClientContext* context, const Pki& pki, const std::string& citizen);

// A valid citizen id under the sample directory's rule (Estonian personal code),
// distinct for each n in [0, 10^6).
std::string CitizenId(int n);

// A server process (the broker or a connector) started from a built binary with
// `--config FILE --port-file FILE`, its stderr in a log file. Killed on destruction.
class ServerProcess {
 public:
  ServerProcess(std::string binary, std::string config_path, std::string log_path,
                std::string port_file);
  virtual ~ServerProcess();

  // Starts and waits until it serves (port file written). Fails with the log if the
  // process exits or does not come up within 30 s.
  absl::Status Start();
  // SIGKILL, then reaps.
  void Kill9();
  // SIGSTOP / SIGCONT: a process that accepts connections but never answers.
  void Pause();
  void Resume();
  // SIGTERM, waits, returns the exit code (or -signal).
  int Terminate();
  // SIGHUP: reload what the process reloads (the directory, TLS files).
  void Hangup();
  // Arguments added after the standard ones at the next Start (e.g. an operator flag).
  void set_extra_args(std::vector<std::string> args) { extra_args_ = std::move(args); }
  bool running() const { return pid_ > 0; }

  int port() const { return port_; }
  std::string address() const;
  // The admin listener's port (/metrics, /healthz, /readyz), read from the
  // --admin-port-file the process was started with; 0 when it has none.
  int admin_port() const { return admin_port_; }
  const std::string& config_path() const { return config_path_; }
  std::string log() const;

 private:
  std::string binary_;
  std::string config_path_;
  std::string log_path_;
  std::string port_file_;
  pid_t pid_ = -1;
  int port_ = 0;
  int admin_port_ = 0;
  std::vector<std::string> extra_args_;

 protected:
  // Passed as --admin-port-file when set.
  std::string admin_port_file_;
};

// A tellonce-broker with its own config, data dir and log under `dir`, its admin
// listener on a free loopback port. `binary` empty: the one built in this tree.
class BrokerProcess : public ServerProcess {
 public:
  BrokerProcess(std::string dir, const Pki& pki, std::string directory_file,
                std::string extra_config = "", std::string binary = "");
  const std::string& data_dir() const { return data_dir_; }

 private:
  std::string data_dir_;
};

// An example agency's connector (tellonce-registry, tellonce-bank, tellonce-tax, or a
// test connector) on a free port, with its own config under `dir`. `extra_config` is
// appended to the generated ConnectorConfig.
class ConnectorProcess : public ServerProcess {
 public:
  // `port` 0 picks a free port at each start; a fixed port survives restarts.
  // `extra_config` is appended to the config (e.g. `log { format: JSON }`).
  ConnectorProcess(std::string binary, std::string dir, const Pki& pki, const std::string& agency,
                   const std::string& data_file, int port = 0,
                   const std::string& extra_config = "");
};

// The sample federation's civil registry and bank connectors (their deploy/local
// records) started on free ports under `dir`/registry and `dir`/bank, and a copy of
// the sample directory at `dir`/directory.textproto that points the broker at them.
// The extra configs are appended to each connector's config. Owned by the caller.
struct SampleConnectors {
  std::unique_ptr<ConnectorProcess> registry;
  std::unique_ptr<ConnectorProcess> bank;
  std::string directory_file;
};
absl::StatusOr<SampleConnectors> StartSampleConnectors(const std::string& dir, const Pki& pki,
                                                       const std::string& registry_extra = "",
                                                       const std::string& bank_extra = "");

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreePort();

// Writes a copy of the sample directory to `path` with each agency's connector
// endpoint replaced by 127.0.0.1:<port> from `ports` (agency id -> port).
absl::Status WriteDirectoryWithPorts(const std::string& path,
                                     const std::vector<std::pair<std::string, int>>& ports);

// A mutual TLS channel to `address` as `agency` (its cert and key from `pki`),
// verifying the broker's SPIFFE id.
std::shared_ptr<grpc::Channel> AgencyChannel(const Pki& pki, const std::string& agency,
                                             const std::string& address);

// A consent as a portal records it in tests.
struct ConsentTerms {
  std::string citizen;
  std::string consumer;
  std::vector<std::string> attributes;
  std::string purpose;
  tellonce::v1::ConsentMode mode = tellonce::v1::UNTIL_EXPIRY;
  absl::Duration lifetime = absl::Hours(24);
  // Empty: a request id of its own for each grant.
  std::string request_id;
};

// Grants `terms` through the broker at `address`, as the portal, with a fresh ID
// token of the citizen; the consent id.
absl::StatusOr<std::string> GrantConsent(const Pki& pki, const std::string& address,
                                         const ConsentTerms& terms);
// Revokes a consent through the broker at `address`, as the portal, with a fresh ID
// token of the citizen.
grpc::Status RevokeConsent(const Pki& pki, const std::string& address, const std::string& citizen,
                           const std::string& consent_id);
// ConsentService.GetConsent at `address` as the portal, with a fresh ID token of the
// citizen.
grpc::Status GetConsentAsPortal(const Pki& pki, const std::string& address,
                                const std::string& citizen, const std::string& consent_id);
// ExchangeService.GetAttributes at `address` as `consumer`.
grpc::Status GetAttributes(const Pki& pki, const std::string& address, const std::string& consumer,
                           const std::string& citizen, const std::vector<std::string>& attributes,
                           const std::string& purpose,
                           tellonce::v1::GetAttributesResponse* response,
                           absl::Duration deadline = absl::Seconds(10),
                           const std::string& request_id = "fetch");

// Paths of the built binaries.
std::string BrokerBinary();
std::string CliBinary();
// tellonce-registry, tellonce-bank, tellonce-tax, and the fault-injecting test connector.
std::string AgencyBinary(const std::string& agency);
std::string FaultConnectorBinary();
// deploy/local/connectors/<name>.
std::string SampleConnectorFile(const std::string& name);

}  // namespace tellonce::testing

#endif  // TELLONCE_TESTS_INTEGRATION_HARNESS_H_
