// Fuzzes the broker's configuration loader (broker::LoadBrokerConfig): text-format
// tellonce.v1.BrokerConfig bytes, as an operator's file. Invariants: it never crashes,
// and a refusal names the file.

#include <cstddef>
#include <cstdint>
#include <string>

#include "broker/config.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = tellonce::fuzz::WriteScratch(
      "broker.textproto", std::string_view(reinterpret_cast<const char*>(data), size));
  absl::StatusOr<tellonce::broker::BrokerOptions> options =
      tellonce::broker::LoadBrokerConfig(path);
  if (!options.ok()) {
    FUZZ_CHECK(options.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(options.status().message().find(path) != std::string_view::npos);
    return 0;
  }
  // What a loaded configuration promises: required paths are set and absolute.
  FUZZ_CHECK(!options->data_dir.empty() && options->data_dir.front() == '/');
  FUZZ_CHECK(!options->directory_file.empty() && options->directory_file.front() == '/');
  FUZZ_CHECK(!options->tls.cert_file.empty() && options->tls.cert_file.front() == '/');
  FUZZ_CHECK(options->max_receive_message_bytes > 0);
  FUZZ_CHECK(options->limits.max_string_bytes > 0);
  return 0;
}
