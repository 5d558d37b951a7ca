#include "certs/identity.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "certs/openssl_handles.h"
#include "certs/sha256.h"
#include "grpc/grpc_security_constants.h"
#include "proto/identifiers.h"

namespace tellonce::certs {
namespace {

using namespace ::tellonce::certs::internal;  // NOLINT: OpenSSL handles

constexpr std::string_view kScheme = "spiffe://";
constexpr std::string_view kAgencyPrefix = "/agency/";
constexpr std::string_view kBrokerPath = "/broker";

// Debian builds abseil with its own absl::string_view, which std::string_view does
// not convert to implicitly.
absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

std::string SpiffeId::ToString() const {
  return is_broker ? BrokerSpiffeId(trust_domain) : AgencySpiffeId(trust_domain, agency_id);
}

absl::StatusOr<SpiffeId> ParseSpiffeId(std::string_view uri) {
  // Never echo the whole input: it may be long or come from a peer.
  if (!uri.starts_with(kScheme)) {
    return absl::InvalidArgumentError("SPIFFE id: must start with spiffe://");
  }
  std::string_view rest = uri.substr(kScheme.size());
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) {
    return absl::InvalidArgumentError("SPIFFE id: missing path after the trust domain");
  }
  std::string_view trust_domain = rest.substr(0, slash);
  std::string_view path = rest.substr(slash);
  if (!IsTrustDomain(trust_domain)) {
    return absl::InvalidArgumentError(
        "SPIFFE id: trust domain must be a lower-case DNS name ([a-z0-9-] labels)");
  }
  SpiffeId id;
  id.trust_domain = std::string(trust_domain);
  if (path == kBrokerPath) {
    id.is_broker = true;
    return id;
  }
  if (path.starts_with(kAgencyPrefix)) {
    std::string_view agency = path.substr(kAgencyPrefix.size());
    if (!IsAgencyId(agency)) {
      return absl::InvalidArgumentError(
          absl::StrCat("SPIFFE id: agency id must match ", kAgencyIdPattern));
    }
    id.agency_id = std::string(agency);
    return id;
  }
  return absl::InvalidArgumentError("SPIFFE id: path must be /broker or /agency/<id>");
}

std::string AgencySpiffeId(std::string_view trust_domain, std::string_view agency_id) {
  return absl::StrCat(Absl(kScheme), Absl(trust_domain), Absl(kAgencyPrefix), Absl(agency_id));
}

std::string BrokerSpiffeId(std::string_view trust_domain) {
  return absl::StrCat(Absl(kScheme), Absl(trust_domain), Absl(kBrokerPath));
}

absl::StatusOr<SpiffeId> PeerIdentity(const grpc::AuthContext& auth,
                                      std::string_view expected_trust_domain) {
  if (!auth.IsPeerAuthenticated()) {
    return absl::UnauthenticatedError("peer is not authenticated by a client certificate");
  }
  std::vector<grpc::string_ref> values = auth.FindPropertyValues(GRPC_PEER_SPIFFE_ID_PROPERTY_NAME);
  if (values.size() != 1) {
    return absl::UnauthenticatedError(
        "peer certificate does not carry exactly one SPIFFE id URI SAN");
  }
  absl::StatusOr<SpiffeId> id = ParseSpiffeId(std::string_view(values[0].data(), values[0].size()));
  if (!id.ok()) {
    return absl::UnauthenticatedError(absl::StrCat("peer certificate: ", id.status().message()));
  }
  if (id->trust_domain != expected_trust_domain) {
    return absl::PermissionDeniedError(absl::StrCat("peer certificate is from trust domain ",
                                                    id->trust_domain, ", expected ",
                                                    Absl(expected_trust_domain)));
  }
  return id;
}

absl::StatusOr<SpiffeId> CertificateSpiffeId(const std::string& certificate_pem) {
  std::unique_ptr<BIO, BioFree> bio(
      BIO_new_mem_buf(certificate_pem.data(), static_cast<int>(certificate_pem.size())));
  if (bio == nullptr) return absl::InternalError("BIO_new_mem_buf failed");
  std::unique_ptr<X509, X509Free> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("certificate: not a PEM X.509 certificate");
  }
  std::unique_ptr<GENERAL_NAMES, GeneralNamesFree> names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr)));
  ERR_clear_error();  // A malformed extension leaves errors on this thread's queue.
  std::vector<std::string_view> uris;
  if (names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
      if (name->type != GEN_URI) continue;
      const ASN1_IA5STRING* uri = name->d.uniformResourceIdentifier;
      uris.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                        static_cast<size_t>(ASN1_STRING_length(uri)));
    }
  }
  if (uris.size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("certificate: has ", uris.size(), " URI SANs, needs exactly one SPIFFE id"));
  }
  absl::StatusOr<SpiffeId> id = ParseSpiffeId(uris[0]);
  if (!id.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("certificate: ", id.status().message()));
  }
  return id;
}

absl::StatusOr<std::string> CertificatePin(std::string_view certificate_pem) {
  auto bio = internal::MemBio(certificate_pem);
  if (bio == nullptr) return absl::InternalError("BIO_new_mem_buf failed");
  std::unique_ptr<X509, X509Free> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("certificate: not a PEM X.509 certificate");
  }
  unsigned char* der = nullptr;
  const int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert.get()), &der);
  if (len <= 0) {
    ERR_clear_error();
    return absl::InvalidArgumentError("certificate: unreadable public key");
  }
  const Hash digest =
      Sha256({std::string_view(reinterpret_cast<const char*>(der), static_cast<size_t>(len))});
  OPENSSL_free(der);
  return absl::Base64Escape(HashToBytes(digest));
}

absl::Status CheckPinSyntax(std::string_view pin) {
  std::string raw;
  if (pin.size() != 44 || !absl::Base64Unescape(Absl(pin), &raw) || raw.size() != 32) {
    return absl::InvalidArgumentError(
        "pin: must be the base64 SHA-256 of a SubjectPublicKeyInfo (44 characters)");
  }
  return absl::OkStatus();
}

absl::Status CheckPinned(std::string_view certificate_pem, const std::vector<std::string>& pins) {
  if (pins.empty()) return absl::OkStatus();
  absl::StatusOr<std::string> pin = CertificatePin(certificate_pem);
  if (!pin.ok()) return absl::UnauthenticatedError("peer certificate unreadable for pinning");
  for (const std::string& p : pins) {
    if (p == *pin) return absl::OkStatus();
  }
  return absl::UnauthenticatedError("peer certificate key is not pinned");
}

absl::Status CheckPeerPinned(const grpc::AuthContext& auth, const std::vector<std::string>& pins) {
  if (pins.empty()) return absl::OkStatus();
  const std::vector<grpc::string_ref> pems = auth.FindPropertyValues("x509_pem_cert");
  if (pems.size() != 1) return absl::UnauthenticatedError("no peer certificate to check the pin");
  return CheckPinned(std::string_view(pems[0].data(), pems[0].size()), pins);
}

}  // namespace tellonce::certs
