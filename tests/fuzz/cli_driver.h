#ifndef TELLONCE_TESTS_FUZZ_CLI_DRIVER_H_
#define TELLONCE_TESTS_FUZZ_CLI_DRIVER_H_

// Runs a `tellonce` command line in-process (cli::RunCli), as an operator would run it on
// files handed to them, with the fuzz broker's certificate (keys/broker.pem,
// spiffe://fuzz.local/broker) and public signing key (keys/signing-keys/fuzz-1.pem).
// The commands driven here work offline. Their output goes to /dev/null.

#include <cstdio>
#include <string>
#include <vector>

#include "certs/signing.h"
#include "cli/command.h"
#include "tests/fuzz/fuzz_support.h"

namespace tellonce::fuzz {

inline constexpr char kBrokerId[] = "spiffe://fuzz.local/broker";
inline constexpr char kSigningKeyId[] = "fuzz-1";

// The broker's signing key (keys/signing.key), named kSigningKeyId.
inline const certs::SigningKey& BrokerSigningKey() {
  static const auto* key = [] {
    absl::StatusOr<certs::SigningKey> k =
        certs::SigningKey::FromPemFile(FuzzDataPath("keys/signing.key"), kSigningKeyId);
    if (!k.ok()) std::abort();
    return new certs::SigningKey(*std::move(k));
  }();
  return *key;
}

inline const certs::VerifyingKeySet& BrokerKeySet() {
  static const auto* keys = [] {
    absl::StatusOr<certs::VerifyingKeySet> k =
        certs::VerifyingKeySet::FromDirectory(FuzzDataPath("keys/signing-keys"));
    if (!k.ok()) std::abort();
    return new certs::VerifyingKeySet(*std::move(k));
  }();
  return *keys;
}

// Exit code of `tellonce <words...>`.
inline int RunTellonce(std::vector<std::string> words) {
  static const bool quiet = [] {
    std::fflush(stdout);
    return std::freopen("/dev/null", "w", stdout) != nullptr;
  }();
  (void)quiet;
  words.insert(words.begin(), "tellonce");
  std::vector<char*> argv;
  for (std::string& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  return cli::RunCli(static_cast<int>(words.size()), argv.data());
}

}  // namespace tellonce::fuzz

#endif  // TELLONCE_TESTS_FUZZ_CLI_DRIVER_H_
