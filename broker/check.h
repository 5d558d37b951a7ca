#ifndef TELLONCE_BROKER_CHECK_H_
#define TELLONCE_BROKER_CHECK_H_

#include <string>
#include <vector>

#include "broker/config.h"

namespace tellonce::broker {

// What `tellonce-broker --check` found: each line a finding, problems apart from notes.
struct CheckReport {
  // Each stops the broker from starting (or would make it refuse to): "<what>: <why>".
  std::vector<std::string> problems;
  // What was checked and found fine, and what start-up will do by itself (e.g. make
  // the data directory private).
  std::vector<std::string> notes;
  bool ok() const { return problems.empty(); }
};

// The offline check of a broker configuration, safe on a live system: it binds no
// port, takes no lock and writes nothing in the data directory (the database is opened
// read-only, without RocksDB's info LOG, when one exists). It checks, each on its own so
// that one run reports every problem:
//  - the directory file loads and validates;
//  - the TLS files (certs::CheckTlsFiles): they load, the key is the certificate's and
//    its mode is private (unless allow_readable_private_keys), the CA verifies the
//    certificate, each CRL parses, is signed by its CA and is current, and the
//    certificate's URI SAN is spiffe://<the directory's trust domain>/broker;
//  - the signing key loads (and its mode);
//  - the data directory: a directory this process may write, and, when it holds a
//    database, that it opens read-only with a schema this build reads and that its
//    access log is not behind the signed checkpoint file (the rollback guard; with
//    options.accept_log_rollback that is a note saying the rollback would be recorded);
//  - the folders of the signed checkpoint file and of backup.directory are writable.
CheckReport CheckBroker(const BrokerOptions& options);

}  // namespace tellonce::broker

#endif  // TELLONCE_BROKER_CHECK_H_
