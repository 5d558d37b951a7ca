#include "broker/log.h"

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tellonce::broker {
namespace {

void Write(char level, std::string_view text) {
  std::string line = absl::StrCat(
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()), " ",
      std::string(1, level), " ", absl::string_view(text.data(), text.size()), "\n");
  // One fwrite per line keeps concurrent lines whole.
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace

void LogInfo(std::string_view text) { Write('I', text); }
void LogWarning(std::string_view text) { Write('W', text); }
void LogError(std::string_view text) { Write('E', text); }

}  // namespace tellonce::broker
