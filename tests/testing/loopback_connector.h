#ifndef TELLONCE_TESTS_TESTING_LOOPBACK_CONNECTOR_H_
#define TELLONCE_TESTS_TESTING_LOOPBACK_CONNECTOR_H_

// Identities and connector options over a PKI made by certs/make-dev-pki, for tests
// that serve connectors on 127.0.0.1.

#include <string>

#include "absl/time/time.h"
#include "certs/tls.h"
#include "connectors/sdk.h"

namespace tellonce::testing {

// `agency`'s certificate and key in the PKI at `pki_dir`; CRLs from `crl_dir` when set.
inline certs::TlsPaths AgencyTls(const std::string& pki_dir, const std::string& agency,
                                 const std::string& crl_dir = "") {
  return {.ca_file = pki_dir + "/ca.pem",
          .cert_file = pki_dir + "/agencies/" + agency + ".pem",
          .key_file = pki_dir + "/agencies/" + agency + ".key",
          .crl_dir = crl_dir};
}

// The broker's certificate and key in the PKI at `pki_dir`.
inline certs::TlsPaths BrokerTls(const std::string& pki_dir) {
  return {.ca_file = pki_dir + "/ca.pem",
          .cert_file = pki_dir + "/broker.pem",
          .key_file = pki_dir + "/broker.key",
          .crl_dir = ""};
}

// A connector for `agency` in trust domain tellonce.local on a free loopback port,
// stopping within 2 s.
inline connectors::ConnectorOptions LoopbackConnectorOptions(const std::string& pki_dir,
                                                             const std::string& agency,
                                                             const std::string& crl_dir = "") {
  connectors::ConnectorOptions options;
  options.agency_id = agency;
  options.listen_address = "127.0.0.1:0";
  options.trust_domain = "tellonce.local";
  options.tls = AgencyTls(pki_dir, agency, crl_dir);
  options.shutdown_grace = absl::Seconds(2);
  return options;
}

}  // namespace tellonce::testing

#endif  // TELLONCE_TESTS_TESTING_LOOPBACK_CONNECTOR_H_
