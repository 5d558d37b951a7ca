#ifndef TELLONCE_TESTS_TESTING_TEST_CA_H_
#define TELLONCE_TESTS_TESTING_TEST_CA_H_

// Issuing from a dev PKI's CA (certs/make-dev-pki) inside a test, with the OpenSSL C
// API: a new leaf certificate for an existing identity (certificate rotation), and a
// CRL with a chosen next update and revoked certificates. Every file is written
// atomically (temporary file + rename), as an operator's tooling would.

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

namespace tellonce::testing {

namespace test_ca_internal {

struct Free {
  void operator()(X509* p) const { X509_free(p); }
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509_CRL* p) const { X509_CRL_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(ASN1_TIME* p) const { ASN1_TIME_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
template <typename T>
using Ptr = std::unique_ptr<T, Free>;

inline Ptr<X509> ReadCert(const std::string& path) {
  Ptr<BIO> bio(BIO_new_file(path.c_str(), "r"));
  return Ptr<X509>(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
}

inline Ptr<EVP_PKEY> ReadKey(const std::string& path) {
  Ptr<BIO> bio(BIO_new_file(path.c_str(), "r"));
  return Ptr<EVP_PKEY>(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr)
                           : nullptr);
}

template <typename Writer>
bool WriteAtomically(const std::string& path, Writer write, mode_t mode = 0644) {
  const std::string tmp = path + ".tmp";
  {
    Ptr<BIO> out(BIO_new_file(tmp.c_str(), "w"));
    if (out == nullptr || !write(out.get())) return false;
  }
  chmod(tmp.c_str(), mode);
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

inline bool AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  Ptr<X509_EXTENSION> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  return ext != nullptr && X509_add_ext(cert, ext.get(), -1) == 1;
}

}  // namespace test_ca_internal

// Issues a new P-256 key and certificate with URI SAN `spiffe_id` (plus DNS:localhost
// and IP:127.0.0.1) from the CA in `pki_dir` (ca.pem, ca.key), valid from a minute ago
// for a day, and writes them to cert_path and key_path (key first). Returns the new
// serial in upper-case hex, or "" on failure.
inline std::string IssueLeaf(const std::string& pki_dir, const std::string& spiffe_id,
                             const std::string& cert_path, const std::string& key_path) {
  using namespace test_ca_internal;  // NOLINT
  Ptr<X509> ca = ReadCert(pki_dir + "/ca.pem");
  Ptr<EVP_PKEY> ca_key = ReadKey(pki_dir + "/ca.key");
  Ptr<EVP_PKEY> key(EVP_EC_gen("P-256"));
  Ptr<X509> cert(X509_new());
  if (ca == nullptr || ca_key == nullptr || key == nullptr || cert == nullptr) return "";
  unsigned char serial_bytes[16];
  RAND_bytes(serial_bytes, sizeof serial_bytes);
  serial_bytes[0] &= 0x7f;
  Ptr<BIGNUM> serial(BN_bin2bn(serial_bytes, sizeof serial_bytes, nullptr));
  BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get()));
  X509_set_version(cert.get(), 2);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca.get()));
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("rotated"), -1, -1, 0);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 3600);
  X509_set_pubkey(cert.get(), key.get());
  const std::string san = "URI:" + spiffe_id + ", DNS:localhost, IP:127.0.0.1";
  if (!AddExtension(cert.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE") ||
      !AddExtension(cert.get(), ca.get(), NID_key_usage, "critical,digitalSignature") ||
      !AddExtension(cert.get(), ca.get(), NID_ext_key_usage, "serverAuth,clientAuth") ||
      !AddExtension(cert.get(), ca.get(), NID_subject_alt_name, san.c_str()) ||
      X509_sign(cert.get(), ca_key.get(), EVP_sha256()) <= 0) {
    return "";
  }
  if (!WriteAtomically(
          key_path,
          [&](BIO* out) {
            return PEM_write_bio_PrivateKey(out, key.get(), nullptr, nullptr, 0, nullptr,
                                            nullptr) == 1;
          },
          0600) ||
      !WriteAtomically(cert_path,
                       [&](BIO* out) { return PEM_write_bio_X509(out, cert.get()) == 1; })) {
    return "";
  }
  char* hex = BN_bn2hex(serial.get());
  std::string out = hex;
  OPENSSL_free(hex);
  return out;
}

// Writes a CRL signed by the CA in `pki_dir`, last updated a minute ago, next update
// `next_update_seconds` from now (negative: already expired), revoking the certificates
// at `revoked_cert_paths`, to `crl_path` (e.g. pki_dir + "/crl/ca.crl.pem", which the
// hashed name links to). False on failure.
inline bool WriteCrl(const std::string& pki_dir, const std::string& crl_path,
                     long next_update_seconds,
                     const std::vector<std::string>& revoked_cert_paths = {}) {
  using namespace test_ca_internal;  // NOLINT
  Ptr<X509> ca = ReadCert(pki_dir + "/ca.pem");
  Ptr<EVP_PKEY> ca_key = ReadKey(pki_dir + "/ca.key");
  Ptr<X509_CRL> crl(X509_CRL_new());
  if (ca == nullptr || ca_key == nullptr || crl == nullptr) return false;
  const time_t now = time(nullptr);
  Ptr<ASN1_TIME> last(ASN1_TIME_adj(nullptr, now, 0, -60));
  Ptr<ASN1_TIME> next(ASN1_TIME_adj(nullptr, now, 0, next_update_seconds));
  X509_CRL_set_version(crl.get(), 1);
  X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca.get()));
  X509_CRL_set1_lastUpdate(crl.get(), last.get());
  X509_CRL_set1_nextUpdate(crl.get(), next.get());
  for (const std::string& path : revoked_cert_paths) {
    Ptr<X509> cert = ReadCert(path);
    if (cert == nullptr) return false;
    X509_REVOKED* revoked = X509_REVOKED_new();
    X509_REVOKED_set_serialNumber(revoked, X509_get_serialNumber(cert.get()));
    X509_REVOKED_set_revocationDate(revoked, last.get());
    X509_CRL_add0_revoked(crl.get(), revoked);
  }
  X509_CRL_sort(crl.get());
  if (X509_CRL_sign(crl.get(), ca_key.get(), EVP_sha256()) <= 0) return false;
  return WriteAtomically(crl_path,
                         [&](BIO* out) { return PEM_write_bio_X509_CRL(out, crl.get()) == 1; });
}

}  // namespace tellonce::testing

#endif  // TELLONCE_TESTS_TESTING_TEST_CA_H_
