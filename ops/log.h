#ifndef TELLONCE_OPS_LOG_H_
#define TELLONCE_OPS_LOG_H_

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tellonce/v1/config.pb.h"

namespace tellonce::ops {

// Design: one log format for every tellonce program (broker, connectors, CLI) and for
// gRPC's own lines, which ConfigureLogging routes here through gpr_set_log_function.
//
//   text: 2026-11-30T18:00:00.123Z WARN tellonce-broker: exchange refused agency=tax request_id=r1
//   json: {"time":"2026-11-30T18:00:00.123Z","level":"WARN","program":"tellonce-broker",
//          "message":"exchange refused","agency":"tax","request_id":"r1"}
//
// One line per call, written with one write(2) to stderr so concurrent lines stay whole.
// Lines below the configured level cost one relaxed atomic load. Never log attribute
// values, and citizen ids only where an operator needs them (STYLE.md).

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };
enum class LogFormat { kText, kJson };

struct LogOptions {
  // Program name on every line. Default "tellonce".
  std::string program = "tellonce";
  // Default kText.
  LogFormat format = LogFormat::kText;
  // Lines below this level are dropped. Default kInfo.
  LogLevel level = LogLevel::kInfo;
  // Route gRPC's own log lines through this logger (at their own level). Default true.
  bool capture_grpc = true;
};

// The options a LogConfig block of a configuration file asks for, for `program`.
LogOptions LogOptionsFromConfig(const tellonce::v1::LogConfig& config, std::string program);

// Sets the process-wide format, level and program name. Call once, early in main,
// before threads log; calling it again later is safe (lines in flight use either).
void ConfigureLogging(const LogOptions& options);

// "DEBUG", "INFO", "WARN", "ERROR".
std::string_view LogLevelName(LogLevel level);

// True when a line at `level` would be written.
bool LogEnabled(LogLevel level);

// A structured field of a line: key=value in text, a JSON member in JSON.
using LogField = std::pair<std::string_view, std::string_view>;

// Writes one line. Thread-safe.
void Log(LogLevel level, std::string_view message, std::initializer_list<LogField> fields = {});

inline void LogDebug(std::string_view m, std::initializer_list<LogField> f = {}) {
  Log(LogLevel::kDebug, m, f);
}
inline void LogInfo(std::string_view m, std::initializer_list<LogField> f = {}) {
  Log(LogLevel::kInfo, m, f);
}
inline void LogWarning(std::string_view m, std::initializer_list<LogField> f = {}) {
  Log(LogLevel::kWarning, m, f);
}
inline void LogError(std::string_view m, std::initializer_list<LogField> f = {}) {
  Log(LogLevel::kError, m, f);
}

// Lets one line through per interval and counts the rest, so a repeated warning (a
// refusal per request, a failing disk) costs one line per interval, not one per event.
// The line that gets through says how many were suppressed since the last one.
// Thread-safe.
class LogThrottle {
 public:
  explicit LogThrottle(absl::Duration interval = absl::Seconds(10)) : interval_(interval) {}

  // Logs the line (with a "suppressed" field when lines were held back) or counts it.
  void Log(LogLevel level, std::string_view message, std::initializer_list<LogField> fields = {})
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const absl::Duration interval_;
  absl::Mutex mu_;
  absl::Time next_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t suppressed_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tellonce::ops

#endif  // TELLONCE_OPS_LOG_H_
