#include "certs/tls_material.h"
#include "certs/identity.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "proto/textproto.h"

namespace tellonce::certs::internal {
namespace {

using ::grpc::experimental::TlsCustomVerificationCheckRequest;

// "tls.key_file /etc/tellonce/broker.key"
std::string FieldAndPath(absl::string_view field, const std::string& path) {
  return absl::StrCat("tls.", field, " ", path);
}

absl::StatusOr<std::string> ReadFile(absl::string_view field, const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat("tls.", field, ": required"));
  absl::StatusOr<std::string> contents = ReadFileToString(path);
  if (!contents.ok()) {
    return absl::Status(contents.status().code(),
                        absl::StrCat("tls.", field, " ", contents.status().message()));
  }
  return contents;
}

// Every certificate of a PEM text, in order. Zero certificates, or a PEM block that
// does not parse, is an error (nullopt-like: empty vector plus false).
bool ParsePemCertificates(absl::string_view pem, std::vector<X509Ptr>* out) {
  BioPtr bio = MemBio(std::string_view(pem.data(), pem.size()));
  if (bio == nullptr) return false;
  ERR_clear_error();  // Judge only what this parse leaves behind.
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr)) {
    out->emplace_back(cert);
  }
  // The loop ends with PEM_R_NO_START_LINE at the end of the input; anything else
  // means a block that did not parse.
  const unsigned long err = ERR_peek_last_error();
  const bool clean_end =
      ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE;
  ERR_clear_error();
  return !out->empty() && clean_end;
}

absl::StatusOr<std::vector<X509Ptr>> ParseCertificates(absl::string_view field,
                                                       const std::string& path,
                                                       const std::string& pem) {
  std::vector<X509Ptr> certs;
  if (!ParsePemCertificates(pem, &certs)) {
    return absl::InvalidArgumentError(
        absl::StrCat(FieldAndPath(field, path), ": not a PEM certificate bundle"));
  }
  return certs;
}

absl::Time AsnTime(const ASN1_TIME* t) {
  struct tm tm = {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
    ERR_clear_error();
    return absl::InfiniteFuture();
  }
  return absl::FromTimeT(timegm(&tm));
}

std::string SubjectOf(const X509* cert) {
  char buf[256];
  X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof(buf));
  return buf;
}

// Checks that crl_dir holds, for every CA of ca_file, a CRL in OpenSSL hashed form
// (`<issuer hash>.r0`) signed by that CA, and returns them. gRPC 1.51 treats a missing
// CRL as "not revoked", so without this check an empty or wrong directory would
// silently turn revocation checking off.
absl::StatusOr<std::shared_ptr<const CrlSet>> LoadCrlDir(const TlsPaths& paths,
                                                         const std::vector<X509Ptr>& cas,
                                                         bool allow_expired) {
  const std::string dir_field = FieldAndPath("crl_dir", paths.crl_dir);
  struct stat st;
  if (stat(paths.crl_dir.c_str(), &st) != 0) return absl::ErrnoToStatus(errno, dir_field);
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(dir_field, ": not a directory"));
  }
  auto set = std::make_shared<CrlSet>();
  for (const auto& ca : cas) {
    const std::string subject = SubjectOf(ca.get());
    int hash_ok = 0;
    const unsigned long hash =
        X509_NAME_hash_ex(X509_get_subject_name(ca.get()), nullptr, nullptr, &hash_ok);
    if (hash_ok != 1) {
      ERR_clear_error();
      return absl::InternalError("cannot hash a CA name");
    }
    char file_name[32];
    std::snprintf(file_name, sizeof(file_name), "%08lx.r0", hash);
    const std::string crl_path = absl::StrCat(paths.crl_dir, "/", file_name);
    const std::string missing =
        absl::StrCat(dir_field, ": no CRL ", file_name, " of CA ", subject, " in tls.ca_file ",
                     paths.ca_file, " (revocation would not be checked)");
    std::FILE* f = std::fopen(crl_path.c_str(), "rb");
    if (f == nullptr) return absl::InvalidArgumentError(missing);
    std::unique_ptr<X509_CRL, X509CrlFree> crl(
        PEM_read_X509_CRL(f, nullptr, NoPassphrase, nullptr));
    std::fclose(f);
    if (crl == nullptr) {
      ERR_clear_error();
      return absl::InvalidArgumentError(
          absl::StrCat(FieldAndPath("crl_dir", crl_path), ": not a PEM CRL"));
    }
    if (X509_CRL_verify(crl.get(), X509_get0_pubkey(ca.get())) != 1) {
      ERR_clear_error();
      return absl::InvalidArgumentError(absl::StrCat(FieldAndPath("crl_dir", crl_path),
                                                     ": not signed by CA ", subject,
                                                     " in tls.ca_file ", paths.ca_file));
    }
    const absl::Time next_update = AsnTime(X509_CRL_get0_nextUpdate(crl.get()));
    if (!allow_expired && next_update < absl::Now()) {
      return absl::InvalidArgumentError(absl::StrCat(FieldAndPath("crl_dir", crl_path),
                                                     ": CRL expired on ", TimeString(next_update)));
    }
    set->crls.push_back(
        Crl{.path = crl_path, .issuer = subject, .crl = std::move(crl), .next_update = next_update});
  }
  return std::shared_ptr<const CrlSet>(std::move(set));
}

std::string SerialHex(const X509* cert) {
  const ASN1_INTEGER* serial = X509_get0_serialNumber(cert);
  std::unique_ptr<BIGNUM, decltype(&BN_free)> bn(ASN1_INTEGER_to_BN(serial, nullptr), BN_free);
  if (bn == nullptr) return "";
  char* hex = BN_bn2hex(bn.get());
  std::string out = hex == nullptr ? "" : hex;
  OPENSSL_free(hex);
  return out;
}

}  // namespace

absl::Status VerifyChain(const TlsMaterial& m, const TlsPaths& paths) {
  absl::StatusOr<std::vector<X509Ptr>> cas = ParseCertificates("ca_file", paths.ca_file, m.ca_pem);
  if (!cas.ok()) return cas.status();
  absl::StatusOr<std::vector<X509Ptr>> chain =
      ParseCertificates("cert_file", paths.cert_file, m.cert_pem);
  if (!chain.ok()) return chain.status();
  std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(),
                                                                 X509_STORE_free);
  auto free_stack = [](STACK_OF(X509) * stack) { sk_X509_free(stack); };
  std::unique_ptr<STACK_OF(X509), decltype(free_stack)> intermediates(sk_X509_new_null(),
                                                                      free_stack);
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(),
                                                                      X509_STORE_CTX_free);
  if (store == nullptr || intermediates == nullptr || ctx == nullptr) {
    return absl::InternalError("OpenSSL: out of memory");
  }
  for (const X509Ptr& ca : *cas) X509_STORE_add_cert(store.get(), ca.get());
  for (size_t i = 1; i < chain->size(); ++i) sk_X509_push(intermediates.get(), (*chain)[i].get());
  if (X509_STORE_CTX_init(ctx.get(), store.get(), chain->front().get(), intermediates.get()) !=
      1) {
    return absl::InternalError("OpenSSL: X509_STORE_CTX_init failed");
  }
  const bool verified = X509_verify_cert(ctx.get()) == 1;
  const int error = X509_STORE_CTX_get_error(ctx.get());
  ERR_clear_error();
  if (!verified) {
    return absl::InvalidArgumentError(
        absl::StrCat(FieldAndPath("cert_file", paths.cert_file), ": not verified by tls.ca_file ",
                     paths.ca_file, ": ", X509_verify_cert_error_string(error)));
  }
  return absl::OkStatus();
}

std::string TimeString(absl::Time t) {
  if (t == absl::InfiniteFuture()) return "never";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

absl::StatusOr<TlsMaterial> LoadTlsMaterial(const TlsPaths& paths, bool allow_expired_crl) {
  TlsMaterial m;
  absl::StatusOr<std::string> ca = ReadFile("ca_file", paths.ca_file);
  if (!ca.ok()) return ca.status();
  absl::StatusOr<std::string> cert = ReadFile("cert_file", paths.cert_file);
  if (!cert.ok()) return cert.status();
  if (paths.refuse_readable_key) {
    if (absl::Status mode = CheckPrivateKeyPermissions("tls.key_file", paths.key_file);
        !mode.ok()) {
      return mode;
    }
  }
  absl::StatusOr<std::string> key = ReadFile("key_file", paths.key_file);
  if (!key.ok()) return key.status();
  m.ca_pem = *std::move(ca);
  m.cert_pem = *std::move(cert);
  m.key_pem = *std::move(key);

  auto cas = ParseCertificates("ca_file", paths.ca_file, m.ca_pem);
  if (!cas.ok()) return cas.status();
  auto chain = ParseCertificates("cert_file", paths.cert_file, m.cert_pem);
  if (!chain.ok()) return chain.status();

  BioPtr bio = MemBio(m.key_pem);
  if (bio == nullptr) return absl::InternalError("BIO_new_mem_buf failed");
  PkeyPtr pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  if (pkey == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(FieldAndPath("key_file", paths.key_file),
                                                   ": not an unencrypted PEM private key"));
  }
  if (X509_check_private_key(chain->front().get(), pkey.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat(FieldAndPath("key_file", paths.key_file),
                     ": does not match the certificate in tls.cert_file ", paths.cert_file));
  }
  m.cert_not_after = AsnTime(X509_get0_notAfter(chain->front().get()));
  m.cert_serial = SerialHex(chain->front().get());

  if (!paths.crl_dir.empty()) {
    absl::StatusOr<std::shared_ptr<const CrlSet>> crls =
        LoadCrlDir(paths, *cas, allow_expired_crl);
    if (!crls.ok()) return crls.status();
    m.crls = *std::move(crls);
  }
  return m;
}

absl::Status CheckRevocation(const CrlSet& crls, absl::string_view chain_pem, absl::Time now) {
  std::vector<X509Ptr> chain;
  if (!ParsePemCertificates(chain_pem, &chain)) {
    return absl::UnauthenticatedError("peer certificate chain does not parse");
  }
  for (const X509Ptr& cert : chain) {
    // A self-signed certificate is a trust anchor from ca_file, which has no CRL above it.
    if (X509_check_issued(cert.get(), cert.get()) == X509_V_OK) continue;
    const Crl* found = nullptr;
    for (const Crl& c : crls.crls) {
      if (X509_NAME_cmp(X509_CRL_get_issuer(c.crl.get()), X509_get_issuer_name(cert.get())) == 0) {
        found = &c;
        break;
      }
    }
    char issuer[256];
    X509_NAME_oneline(X509_get_issuer_name(cert.get()), issuer, sizeof(issuer));
    if (found == nullptr) {
      return absl::UnauthenticatedError(
          absl::StrCat("no CRL of issuer ", issuer, " (revocation cannot be checked)"));
    }
    if (found->next_update < now) {
      return absl::UnauthenticatedError(absl::StrCat("CRL ", found->path, " of ", issuer,
                                                     " expired at ",
                                                     TimeString(found->next_update)));
    }
    X509_REVOKED* revoked = nullptr;
    if (X509_CRL_get0_by_cert(found->crl.get(), &revoked, cert.get()) == 1) {
      return absl::UnauthenticatedError(absl::StrCat("certificate serial ",
                                                     SerialHex(cert.get()), " revoked by CRL ",
                                                     found->path));
    }
  }
  return absl::OkStatus();
}

PeerCertificateCheck::PeerCertificateCheck(CrlSource crls, std::string expected_spiffe_id,
                                           std::string side, PeerFilter admit,
                                           std::vector<std::string> pins)
    : crls_(std::move(crls)),
      expected_(std::move(expected_spiffe_id)),
      side_(std::move(side)),
      admit_(std::move(admit)),
      pins_(std::move(pins)) {}

bool PeerCertificateCheck::Verify(TlsCustomVerificationCheckRequest* request,
                                  std::function<void(grpc::Status)> /*callback*/,
                                  grpc::Status* sync_status) {
  const std::vector<grpc::string_ref> uris = request->uri_names();
  const std::string peer =
      uris.size() == 1 ? std::string(uris[0].data(), uris[0].size()) : "(unknown)";
  absl::Status result;
  if (!expected_.empty()) {
    if (uris.size() != 1) {
      result = absl::UnauthenticatedError(absl::StrCat("peer certificate has ", uris.size(),
                                                       " URI SANs, expected exactly one"));
    } else if (peer != expected_) {
      result = absl::UnauthenticatedError(absl::StrCat("peer certificate is not ", expected_));
    }
  }
  if (result.ok() && admit_) {
    result = uris.size() == 1
                 ? admit_(peer)
                 : absl::UnauthenticatedError(absl::StrCat("peer certificate has ", uris.size(),
                                                           " URI SANs, expected exactly one"));
  }
  if (result.ok() && !pins_.empty()) {
    const grpc::string_ref leaf = request->peer_cert();
    result = CheckPinned(std::string_view(leaf.data(), leaf.size()), pins_);
  }
  if (result.ok() && crls_) {
    std::shared_ptr<const CrlSet> crls = crls_();
    if (crls != nullptr) {
      const grpc::string_ref leaf = request->peer_cert();
      const grpc::string_ref rest = request->peer_cert_full_chain();
      std::string chain(leaf.data(), leaf.size());
      chain.append(rest.data(), rest.size());
      result = CheckRevocation(*crls, chain, absl::Now());
    }
  }
  if (result.ok()) {
    *sync_status = grpc::Status::OK;
  } else {
    const std::string reason(result.message());
    refusals_.Log(ops::LogLevel::kWarning, "TLS handshake refused",
                  {{"side", side_}, {"peer", peer}, {"reason", reason}});
    *sync_status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED, reason);
  }
  return true;
}

}  // namespace tellonce::certs::internal
