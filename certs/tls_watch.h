#ifndef TELLONCE_CERTS_TLS_WATCH_H_
#define TELLONCE_CERTS_TLS_WATCH_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "certs/tls.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "ops/log.h"
#include "ops/metrics.h"

namespace tellonce::certs {

namespace internal {
struct CrlSet;
struct TlsMaterial;
class CrlHolder;
}  // namespace internal

// What operators see of a process's TLS material (metrics, /readyz, admin status).
struct TlsStatus {
  // notAfter of the certificate in use (leaf of cert_file).
  absl::Time cert_not_after = absl::InfiniteFuture();
  // Serial number of that certificate, upper-case hex.
  std::string cert_serial;
  // The earliest nextUpdate of the CRLs in use; nullopt when there is no crl_dir.
  std::optional<absl::Time> crl_next_update;
  // OK while the material in use can complete handshakes; FAILED_PRECONDITION naming
  // the file otherwise ("CRL /etc/tellonce/crl/1a2b3c4d.r0 expired at ...": every
  // client is then refused until a current CRL is on disk).
  absl::Status usable;
  // Successful reloads after start, and reloads refused (the old material stayed).
  uint64_t reloads = 0;
  uint64_t refused_reloads = 0;
  // When the material in use was loaded.
  absl::Time last_load = absl::InfinitePast();
};

// Design: owns one process's TLS files (TlsPaths) for the life of the process and
// serves them to gRPC without a restart.
//
// Start loads and checks them (as MakeServerCredentials does); afterwards a poll
// thread re-reads them every `poll_interval`, and Reload() does at once (SIGHUP).
// A changed set of files is checked as a whole: a file that does not parse, a key that
// does not match its certificate, a CRL not signed by its CA is refused with one ERROR
// line naming the file, and the material in use stays. Accepted material is written
// atomically (temp file + rename) into a private staging directory (mode 0700) that a
// gRPC FileWatcherCertificateProvider re-reads every second, so new handshakes use it
// within about a second and established connections are not touched. Invalid material
// never reaches gRPC.
//
// Revocation is checked by PeerCertificateCheck in the handshake against the CRL set in
// memory, swapped atomically on reload (gRPC's crl_directory is not used: it caches the
// CRL forever and lets a missing CRL pass). A CRL past its nextUpdate fails closed:
// every peer is refused, status().usable says why, and the first poll or Reload that
// finds a current CRL on disk recovers. An expired CRL on disk is accepted on reload
// (it is what the CA published; refusing it would only keep an older one).
//
// One WARN line, at most once per hour, when the certificate or a CRL comes within
// `expiry_warning` of its end; ERROR, at most once per hour, once it is past.
//
// Thread-safe. Credentials made from the watcher stay valid after it is destroyed but
// then keep the last material (the staging directory is removed).
class TlsMaterialWatcher {
 public:
  struct Options {
    // How often the files are re-read. Zero: never (Reload only). Default 5 s.
    absl::Duration poll_interval = absl::Seconds(5);
    // How long before the certificate's notAfter or a CRL's nextUpdate to warn.
    // Default 168 h (7 days).
    absl::Duration expiry_warning = absl::Hours(168);
    // Where the private staging directory is created. Empty (default): $TMPDIR, else
    // /tmp.
    std::string staging_parent;
  };

  // Loads and checks the files; errors as MakeServerCredentials (INVALID_ARGUMENT
  // naming field and path; an expired CRL too), or the staging directory that could
  // not be made. Starts the poll thread.
  static absl::StatusOr<std::unique_ptr<TlsMaterialWatcher>> Start(const TlsPaths& paths,
                                                                   const Options& options);
  static absl::StatusOr<std::unique_ptr<TlsMaterialWatcher>> Start(const TlsPaths& paths) {
    return Start(paths, Options());
  }

  // Stops the poll thread and removes the staging directory.
  ~TlsMaterialWatcher();
  TlsMaterialWatcher(const TlsMaterialWatcher&) = delete;
  TlsMaterialWatcher& operator=(const TlsMaterialWatcher&) = delete;

  // Re-reads the files now. OK when they were accepted or had not changed; the
  // refusal (naming the file) when they were refused, in which case the material in
  // use stays. Logs either way. Thread-safe; blocks while another reload runs.
  absl::Status Reload() ABSL_LOCKS_EXCLUDED(reload_mu_, mu_);

  // A snapshot; thread-safe, cheap.
  TlsStatus status() const ABSL_LOCKS_EXCLUDED(mu_);

  // Mutual-TLS server credentials over the watched material: require and verify a
  // client certificate against ca_file and the CRLs, and, when `admit` is set, that it
  // returns OK for the certificate's one URI SAN (called in every handshake, on a gRPC
  // thread; it must be quick and thread-safe). Thread-safe.
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
      std::function<absl::Status(std::string_view spiffe_id)> admit = nullptr) const;

  // Channel credentials over the watched material, as MakeChannelCredentials: the
  // server must present exactly `expected_server_spiffe_id` (required here) and not be
  // revoked, and, when `server_pins` is not empty, carry one of those keys. Thread-safe.
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(
      const std::string& expected_server_spiffe_id,
      const std::vector<std::string>& server_pins = {}) const;

  const TlsPaths& paths() const { return paths_; }

 private:
  TlsMaterialWatcher(TlsPaths paths, Options options);

  // Reads every watched file, for change detection.
  std::string Fingerprint() const;
  // Writes the material into the staging directory, each file atomically.
  absl::Status Stage(const internal::TlsMaterial& m) const;
  // Loads if the fingerprint changed (or `forced`) and installs on success.
  absl::Status ReloadIfChanged(bool forced) ABSL_EXCLUSIVE_LOCKS_REQUIRED(reload_mu_);
  void WarnAboutExpiry() ABSL_LOCKS_EXCLUDED(mu_);
  void PollLoop() ABSL_LOCKS_EXCLUDED(mu_);

  const TlsPaths paths_;
  const Options options_;
  std::string staging_dir_;
  std::shared_ptr<grpc::experimental::FileWatcherCertificateProvider> provider_;
  // The CRLs the handshake checks read; shared with the verifiers.
  std::shared_ptr<internal::CrlHolder> crls_;

  absl::Mutex reload_mu_;  // serializes reloads (poll thread, Reload)
  std::string fingerprint_ ABSL_GUARDED_BY(reload_mu_);
  std::string refused_fingerprint_ ABSL_GUARDED_BY(reload_mu_);

  mutable absl::Mutex mu_;
  TlsStatus status_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::string, absl::Time>> crl_next_updates_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;

  ops::LogThrottle cert_expiring_{absl::Hours(1)};
  ops::LogThrottle crl_expiring_{absl::Hours(1)};
  ops::LogThrottle expired_{absl::Hours(1)};
  std::thread poller_;
};

// Writes `status` as metrics (broker and connectors alike):
//   tellonce_tls_certificate_expiry_seconds  seconds until the certificate expires
//   tellonce_tls_crl_expiry_seconds          seconds until the earliest CRL's nextUpdate
//   tellonce_tls_usable                      1 while handshakes can complete
//   tellonce_tls_reloads_total{result}       accepted and refused reloads
void WriteTlsMetrics(const TlsStatus& status, ops::MetricsWriter& w);

}  // namespace tellonce::certs

#endif  // TELLONCE_CERTS_TLS_WATCH_H_
