#ifndef TELLONCE_CERTS_TLS_MATERIAL_H_
#define TELLONCE_CERTS_TLS_MATERIAL_H_

// Private to certs/: loading and checking one process's TLS files, and the check of a
// peer's chain against the CRLs in memory, shared by the one-shot credentials of tls.h
// and TlsMaterialWatcher (tls_watch.h).

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "certs/openssl_handles.h"
#include "certs/tls.h"
#include "grpcpp/security/tls_certificate_verifier.h"
#include "ops/log.h"

namespace tellonce::certs::internal {

// The CRL of one CA of ca_file, signature already checked against that CA.
struct Crl {
  std::string path;
  std::string issuer;  // the CA's subject, for messages
  std::unique_ptr<X509_CRL, X509CrlFree> crl;
  absl::Time next_update = absl::InfiniteFuture();
};

// The CRLs in force: one per CA of ca_file. Immutable once built; shared by the
// handshake checks through shared_ptr<const CrlSet>.
struct CrlSet {
  std::vector<Crl> crls;
};

// The PEM contents of one process's TLS files, checked to be usable.
struct TlsMaterial {
  std::string ca_pem;
  std::string cert_pem;
  std::string key_pem;
  // Of the leaf certificate of cert_pem.
  absl::Time cert_not_after = absl::InfiniteFuture();
  std::string cert_serial;  // upper-case hex
  // Null when crl_dir is empty (no revocation check).
  std::shared_ptr<const CrlSet> crls;
};

// Reads the files and checks that the CA bundle and certificate chain parse, that the
// key is an unencrypted private key belonging to the first (leaf) certificate of
// cert_file, and, when crl_dir is set, that it holds a CRL `<issuer hash>.r0` signed by
// each CA of ca_file, current unless `allow_expired_crl`. Errors (INVALID_ARGUMENT)
// name the field and path: "tls.key_file /etc/k.pem: does not match ...".
absl::StatusOr<TlsMaterial> LoadTlsMaterial(const TlsPaths& paths, bool allow_expired_crl);

// OK when the CA bundle of `m` verifies the leaf of its certificate chain (the rest of
// the chain as intermediates) at the current time; INVALID_ARGUMENT naming
// tls.cert_file and OpenSSL's reason otherwise. Revocation is not looked at here.
absl::Status VerifyChain(const TlsMaterial& m, const TlsPaths& paths);

// OK when no certificate of `chain_pem` (PEM blocks, leaf first; self-signed roots are
// skipped) is revoked by `crls` at `now`. UNAUTHENTICATED, saying why, when one is
// revoked, when the CRL of its issuer is missing, or when that CRL is past its next
// update (fail closed).
absl::Status CheckRevocation(const CrlSet& crls, absl::string_view chain_pem, absl::Time now);

// RFC 3339 in UTC, for messages: "2026-11-30T18:00:00Z".
std::string TimeString(absl::Time t);

// The handshake check of a peer certificate already verified against ca_file: its
// revocation status against the CRLs `crls()` returns (skipped when `crls` is empty or
// returns null) and, when `expected_spiffe_id` is non-empty, that it has exactly that
// one URI SAN; when `admit` is set, that it returns OK for the peer's one URI SAN
// (the broker refuses agencies outside its directory here, before any stream); and,
// when `pins` is not empty, that its public key is one of them (certs::CheckPinned).
// Refusals are logged at WARN with the peer's SPIFFE id, at most one line per 10 s per
// verifier. Synchronous; thread-safe.
class PeerCertificateCheck final : public grpc::experimental::ExternalCertificateVerifier {
 public:
  using CrlSource = std::function<std::shared_ptr<const CrlSet>()>;
  using PeerFilter = std::function<absl::Status(std::string_view spiffe_id)>;

  PeerCertificateCheck(CrlSource crls, std::string expected_spiffe_id, std::string side,
                       PeerFilter admit = nullptr, std::vector<std::string> pins = {});

  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)> callback, grpc::Status* sync_status) override;
  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest* /*request*/) override {}

 private:
  const CrlSource crls_;
  const std::string expected_;
  const std::string side_;  // "server" or "client", for log lines
  const PeerFilter admit_;
  const std::vector<std::string> pins_;
  ops::LogThrottle refusals_{absl::Seconds(10)};
};

}  // namespace tellonce::certs::internal

#endif  // TELLONCE_CERTS_TLS_MATERIAL_H_
