// Fuzzes the connector SDK's configuration loader (connectors::LoadConnectorConfig):
// text-format tellonce.v1.ConnectorConfig bytes. Invariants: it never crashes, a refusal
// names the file, and what it accepts has the form the SDK relies on.

#include <cstddef>
#include <cstdint>
#include <string>

#include "connectors/config.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = tellonce::fuzz::WriteScratch(
      "connector.textproto", std::string_view(reinterpret_cast<const char*>(data), size));
  absl::StatusOr<tellonce::connectors::ConnectorOptions> options =
      tellonce::connectors::LoadConnectorConfig(path);
  if (!options.ok()) {
    FUZZ_CHECK(options.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(options.status().message().find(path) != std::string_view::npos);
    return 0;
  }
  FUZZ_CHECK(!options->agency_id.empty() && options->agency_id.size() <= 63);
  for (char c : options->agency_id) {
    FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
  }
  FUZZ_CHECK(!options->listen_address.empty());
  FUZZ_CHECK(!options->trust_domain.empty());
  return 0;
}
