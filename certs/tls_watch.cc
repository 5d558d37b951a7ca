#include "certs/tls_watch.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "certs/tls_material.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/security/tls_certificate_verifier.h"
#include "grpcpp/security/tls_credentials_options.h"
#include "proto/textproto.h"

namespace tellonce::certs {
namespace internal {

// The CRL set in force, swapped whole on reload.
class CrlHolder {
 public:
  std::shared_ptr<const CrlSet> Get() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return crls_;
  }
  void Set(std::shared_ptr<const CrlSet> crls) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    crls_ = std::move(crls);
  }

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const CrlSet> crls_ ABSL_GUARDED_BY(mu_);
};

}  // namespace internal

namespace {

using ::grpc::experimental::ExternalCertificateVerifier;
using internal::PeerCertificateCheck;
using internal::TlsMaterial;

constexpr char kStagedCa[] = "ca.pem";
constexpr char kStagedCert[] = "cert.pem";
constexpr char kStagedKey[] = "key.pem";
// How often gRPC re-reads the staging directory.
constexpr unsigned kProviderRefreshSeconds = 1;

// Writes `contents` to dir/name through a temporary file and rename(2), mode 0600.
absl::Status WriteAtomically(const std::string& dir, const std::string& name,
                             const std::string& contents) {
  const std::string path = absl::StrCat(dir, "/", name);
  const std::string tmp = absl::StrCat(path, ".tmp");
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("TLS staging ", tmp));
  size_t done = 0;
  while (done < contents.size()) {
    const ssize_t n = write(fd, contents.data() + done, contents.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      close(fd);
      return absl::ErrnoToStatus(err, absl::StrCat("TLS staging ", tmp));
    }
    done += static_cast<size_t>(n);
  }
  if (close(fd) != 0) return absl::ErrnoToStatus(errno, absl::StrCat("TLS staging ", tmp));
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("TLS staging ", path));
  }
  return absl::OkStatus();
}

void AppendFile(const std::string& path, std::string* out) {
  absl::StatusOr<std::string> contents = ReadFileToString(path);
  absl::StrAppend(out, path, "\n", contents.ok() ? contents->size() : 0, "\n",
                  contents.ok() ? *contents : std::string(contents.status().message()), "\n");
}

}  // namespace

TlsMaterialWatcher::TlsMaterialWatcher(TlsPaths paths, Options options)
    : paths_(std::move(paths)),
      options_(std::move(options)),
      crls_(std::make_shared<internal::CrlHolder>()) {}

absl::StatusOr<std::unique_ptr<TlsMaterialWatcher>> TlsMaterialWatcher::Start(
    const TlsPaths& paths, const Options& options) {
  std::unique_ptr<TlsMaterialWatcher> w(new TlsMaterialWatcher(paths, options));
  const std::string fingerprint = w->Fingerprint();
  absl::StatusOr<TlsMaterial> material =
      internal::LoadTlsMaterial(paths, /*allow_expired_crl=*/false);
  if (!material.ok()) return material.status();

  std::string parent = options.staging_parent;
  if (parent.empty()) {
    const char* tmpdir = std::getenv("TMPDIR");
    parent = (tmpdir != nullptr && *tmpdir != '\0') ? tmpdir : "/tmp";
  }
  std::string tmpl = absl::StrCat(parent, "/tellonce-tls.XXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) {  // mode 0700
    return absl::ErrnoToStatus(errno, absl::StrCat("TLS staging directory in ", parent));
  }
  w->staging_dir_ = tmpl;
  if (absl::Status s = w->Stage(*material); !s.ok()) return s;
  w->provider_ = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      absl::StrCat(w->staging_dir_, "/", kStagedKey),
      absl::StrCat(w->staging_dir_, "/", kStagedCert),
      absl::StrCat(w->staging_dir_, "/", kStagedCa), kProviderRefreshSeconds);
  w->crls_->Set(material->crls);
  {
    absl::MutexLock lock(&w->reload_mu_);
    w->fingerprint_ = fingerprint;
  }
  {
    absl::MutexLock lock(&w->mu_);
    w->status_.cert_not_after = material->cert_not_after;
    w->status_.cert_serial = material->cert_serial;
    w->status_.last_load = absl::Now();
    if (material->crls != nullptr) {
      for (const internal::Crl& c : material->crls->crls) {
        w->crl_next_updates_.emplace_back(c.path, c.next_update);
      }
    }
  }
  ops::LogInfo("TLS material loaded",
               {{"cert_file", paths.cert_file},
                {"serial", material->cert_serial},
                {"not_after", internal::TimeString(material->cert_not_after)}});
  w->WarnAboutExpiry();
  if (options.poll_interval > absl::ZeroDuration()) {
    w->poller_ = std::thread([raw = w.get()] { raw->PollLoop(); });
  }
  return w;
}

TlsMaterialWatcher::~TlsMaterialWatcher() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (poller_.joinable()) poller_.join();
  provider_.reset();
  if (!staging_dir_.empty()) {
    for (const char* name : {kStagedCa, kStagedCert, kStagedKey}) {
      unlink(absl::StrCat(staging_dir_, "/", name).c_str());
    }
    rmdir(staging_dir_.c_str());
  }
}

std::string TlsMaterialWatcher::Fingerprint() const {
  std::string out;
  AppendFile(paths_.ca_file, &out);
  AppendFile(paths_.cert_file, &out);
  AppendFile(paths_.key_file, &out);
  if (!paths_.crl_dir.empty()) {
    std::vector<std::string> names;
    if (DIR* dir = opendir(paths_.crl_dir.c_str()); dir != nullptr) {
      while (const dirent* e = readdir(dir)) {
        if (e->d_name[0] != '.') names.emplace_back(e->d_name);
      }
      closedir(dir);
    }
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) AppendFile(absl::StrCat(paths_.crl_dir, "/", name), &out);
  }
  return out;
}

absl::Status TlsMaterialWatcher::Stage(const TlsMaterial& m) const {
  // Key first, then certificate: gRPC reads both on its next refresh, and a reader
  // between the two renames sees a pair that does not match for at most one refresh.
  if (absl::Status s = WriteAtomically(staging_dir_, kStagedKey, m.key_pem); !s.ok()) return s;
  if (absl::Status s = WriteAtomically(staging_dir_, kStagedCert, m.cert_pem); !s.ok()) return s;
  return WriteAtomically(staging_dir_, kStagedCa, m.ca_pem);
}

absl::Status TlsMaterialWatcher::Reload() {
  absl::MutexLock lock(&reload_mu_);
  return ReloadIfChanged(/*forced=*/true);
}

absl::Status TlsMaterialWatcher::ReloadIfChanged(bool forced) {
  const std::string fingerprint = Fingerprint();
  if (fingerprint == fingerprint_) return absl::OkStatus();
  // Refused already: say so again only when an operator asks.
  if (!forced && fingerprint == refused_fingerprint_) return absl::OkStatus();

  absl::StatusOr<TlsMaterial> material =
      internal::LoadTlsMaterial(paths_, /*allow_expired_crl=*/true);
  absl::Status staged = material.ok() ? Stage(*material) : material.status();
  if (!staged.ok()) {
    refused_fingerprint_ = fingerprint;
    {
      absl::MutexLock lock(&mu_);
      ++status_.refused_reloads;
    }
    const std::string reason(staged.message());
    ops::LogError("TLS reload refused, the material in use stays", {{"error", reason}});
    return staged;
  }
  fingerprint_ = fingerprint;
  refused_fingerprint_.clear();
  crls_->Set(material->crls);
  {
    absl::MutexLock lock(&mu_);
    ++status_.reloads;
    status_.cert_not_after = material->cert_not_after;
    status_.cert_serial = material->cert_serial;
    status_.last_load = absl::Now();
    crl_next_updates_.clear();
    if (material->crls != nullptr) {
      for (const internal::Crl& c : material->crls->crls) {
        crl_next_updates_.emplace_back(c.path, c.next_update);
      }
    }
  }
  ops::LogInfo("TLS material reloaded",
               {{"cert_file", paths_.cert_file},
                {"serial", material->cert_serial},
                {"not_after", internal::TimeString(material->cert_not_after)}});
  return absl::OkStatus();
}

TlsStatus TlsMaterialWatcher::status() const {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  TlsStatus s = status_;
  s.usable = absl::OkStatus();
  if (s.cert_not_after < now) {
    s.usable = absl::FailedPreconditionError(absl::StrCat(
        "certificate ", paths_.cert_file, " expired at ", internal::TimeString(s.cert_not_after)));
  }
  if (!paths_.crl_dir.empty()) {
    absl::Time earliest = absl::InfiniteFuture();
    for (const auto& [path, next_update] : crl_next_updates_) {
      earliest = std::min(earliest, next_update);
      if (next_update < now && s.usable.ok()) {
        s.usable = absl::FailedPreconditionError(
            absl::StrCat("CRL ", path, " expired at ", internal::TimeString(next_update),
                         ": every peer is refused until a current CRL is on disk"));
      }
    }
    s.crl_next_update = earliest;
  }
  return s;
}

void TlsMaterialWatcher::WarnAboutExpiry() {
  const TlsStatus s = status();
  const absl::Time now = absl::Now();
  if (!s.usable.ok()) {
    const std::string reason(s.usable.message());
    expired_.Log(ops::LogLevel::kError, "TLS material not usable", {{"error", reason}});
  }
  if (s.cert_not_after >= now && s.cert_not_after - now < options_.expiry_warning) {
    cert_expiring_.Log(
        ops::LogLevel::kWarning, "TLS certificate expires soon",
        {{"cert_file", paths_.cert_file}, {"not_after", internal::TimeString(s.cert_not_after)}});
  }
  if (s.crl_next_update.has_value() && *s.crl_next_update >= now &&
      *s.crl_next_update - now < options_.expiry_warning) {
    crl_expiring_.Log(
        ops::LogLevel::kWarning,
        "CRL next update is near: every peer will be refused after it unless a "
        "newer CRL is on disk",
        {{"crl_dir", paths_.crl_dir}, {"next_update", internal::TimeString(*s.crl_next_update)}});
  }
}

void TlsMaterialWatcher::PollLoop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_; };
      mu_.AwaitWithTimeout(absl::Condition(&stopping), options_.poll_interval);
      if (stop_) return;
    }
    {
      absl::MutexLock lock(&reload_mu_);
      ReloadIfChanged(/*forced=*/false).IgnoreError();
    }
    WarnAboutExpiry();
  }
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> TlsMaterialWatcher::ServerCredentials(
    std::function<absl::Status(std::string_view spiffe_id)> admit) const {
  grpc::experimental::TlsServerCredentialsOptions options(provider_);
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  PeerCertificateCheck::CrlSource crls;
  if (!paths_.crl_dir.empty()) crls = [holder = crls_] { return holder->Get(); };
  options.set_certificate_verifier(ExternalCertificateVerifier::Create<PeerCertificateCheck>(
      std::move(crls), "", "server", std::move(admit)));
  std::shared_ptr<grpc::ServerCredentials> creds =
      grpc::experimental::TlsServerCredentials(options);
  if (creds == nullptr) return absl::InternalError("gRPC refused the TLS server options");
  return creds;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> TlsMaterialWatcher::ChannelCredentials(
    const std::string& expected_server_spiffe_id,
    const std::vector<std::string>& server_pins) const {
  if (expected_server_spiffe_id.empty()) {
    return absl::InvalidArgumentError("expected server SPIFFE id: required");
  }
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(provider_);
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_verify_server_certs(true);
  PeerCertificateCheck::CrlSource crls;
  if (!paths_.crl_dir.empty()) crls = [holder = crls_] { return holder->Get(); };
  options.set_certificate_verifier(ExternalCertificateVerifier::Create<PeerCertificateCheck>(
      std::move(crls), expected_server_spiffe_id, "client", PeerCertificateCheck::PeerFilter(),
      server_pins));
  options.set_check_call_host(false);
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::experimental::TlsCredentials(options);
  if (creds == nullptr) return absl::InternalError("gRPC refused the TLS channel options");
  return creds;
}

void WriteTlsMetrics(const TlsStatus& status, ops::MetricsWriter& w) {
  const absl::Time now = absl::Now();
  w.Gauge("tellonce_tls_certificate_expiry_seconds",
          "Seconds until this process's certificate expires (negative once expired).",
          absl::ToDoubleSeconds(status.cert_not_after - now));
  if (status.crl_next_update.has_value()) {
    w.Gauge("tellonce_tls_crl_expiry_seconds",
            "Seconds until the earliest CRL in use passes its nextUpdate (negative once it has: "
            "every peer is then refused until a current CRL is on disk).",
            absl::ToDoubleSeconds(*status.crl_next_update - now));
  }
  w.Gauge("tellonce_tls_usable", "1 while the TLS material in use can complete handshakes.",
          status.usable.ok() ? 1.0 : 0.0);
  w.Family("tellonce_tls_reloads_total", "Reloads of changed TLS files, by result.", "counter");
  w.Sample("tellonce_tls_reloads_total", {{"result", "ok"}}, status.reloads);
  w.Sample("tellonce_tls_reloads_total", {{"result", "refused"}}, status.refused_reloads);
}

}  // namespace tellonce::certs
