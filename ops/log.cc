#include "ops/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/types/span.h"
#include "grpc/support/log.h"

namespace tellonce::ops {
namespace {

struct LogState {
  absl::Mutex mu;
  std::string program ABSL_GUARDED_BY(mu) = "tellonce";
  std::atomic<int> format{static_cast<int>(LogFormat::kText)};
  std::atomic<int> level{static_cast<int>(LogLevel::kInfo)};
};

LogState& State() {
  static LogState* state = new LogState;
  return *state;
}

// Appends `s` as a JSON string (quotes included). Control characters, quotes and
// backslashes are escaped; bytes >= 0x80 pass through (the message is UTF-8 or close).
void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out->append(buf);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

// Text lines are one line each: a newline or other control character inside a message
// or field is written as \n or \xNN.
void AppendText(std::string* out, std::string_view s) {
  for (unsigned char c : s) {
    if (c == '\n') {
      out->append("\\n");
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out->append(buf);
    } else {
      out->push_back(static_cast<char>(c));
    }
  }
}

void WriteLine(LogLevel level, std::string_view message, absl::Span<const LogField> fields,
               absl::Span<const LogField> extra) {
  LogState& state = State();
  std::string program;
  {
    absl::MutexLock lock(&state.mu);
    program = state.program;
  }
  const std::string time =
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  std::string line;
  line.reserve(128 + message.size());
  if (state.format.load(std::memory_order_relaxed) == static_cast<int>(LogFormat::kJson)) {
    line.append("{\"time\":\"").append(time).append("\",\"level\":\"");
    line.append(LogLevelName(level)).append("\",\"program\":");
    AppendJsonString(&line, program);
    line.append(",\"message\":");
    AppendJsonString(&line, message);
    for (absl::Span<const LogField> list : {fields, extra}) {
      for (const LogField& f : list) {
        line.push_back(',');
        AppendJsonString(&line, f.first);
        line.push_back(':');
        AppendJsonString(&line, f.second);
      }
    }
    line.append("}\n");
  } else {
    line.append(time).append(" ").append(LogLevelName(level)).append(" ").append(program);
    line.append(": ");
    AppendText(&line, message);
    for (absl::Span<const LogField> list : {fields, extra}) {
      for (const LogField& f : list) {
        line.push_back(' ');
        AppendText(&line, f.first);
        line.push_back('=');
        AppendText(&line, f.second);
      }
    }
    line.push_back('\n');
  }
  // One write(2) per line keeps concurrent lines whole (stderr is unbuffered).
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(STDERR_FILENO, line.data() + done, line.size() - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
}

LogLevel FromGpr(gpr_log_severity severity) {
  switch (severity) {
    case GPR_LOG_SEVERITY_DEBUG:
      return LogLevel::kDebug;
    case GPR_LOG_SEVERITY_INFO:
      return LogLevel::kInfo;
    case GPR_LOG_SEVERITY_ERROR:
      return LogLevel::kError;
  }
  return LogLevel::kError;
}

// gRPC logs some events once per connection or per call (a failed handshake, a bad
// frame); a flood of them must not flood the log. One throttle per call site.
LogThrottle& GrpcThrottle(const std::string& where) {
  static absl::Mutex* mu = new absl::Mutex;
  static auto* throttles = new absl::flat_hash_map<std::string, std::unique_ptr<LogThrottle>>;
  absl::MutexLock lock(mu);
  auto it = throttles->find(where);
  if (it != throttles->end()) return *it->second;
  // A bounded table: past 512 call sites, the rest share one throttle.
  std::unique_ptr<LogThrottle>& t = (*throttles)[throttles->size() < 512 ? where : "*"];
  if (t == nullptr) t = std::make_unique<LogThrottle>(absl::Seconds(10));
  return *t;
}

void GrpcLogFunction(gpr_log_func_args* args) {
  const LogLevel level = FromGpr(args->severity);
  if (!LogEnabled(level)) return;
  const std::string where = absl::StrCat(args->file != nullptr ? args->file : "?", ":", args->line);
  const std::string_view message = args->message != nullptr ? args->message : "";
  GrpcThrottle(where).Log(level, message, {{"source", "grpc"}, {"at", where}});
}

}  // namespace

LogOptions LogOptionsFromConfig(const tellonce::v1::LogConfig& config, std::string program) {
  LogOptions options;
  options.program = std::move(program);
  options.format =
      config.format() == tellonce::v1::LogConfig::JSON ? LogFormat::kJson : LogFormat::kText;
  switch (config.level()) {
    case tellonce::v1::LogConfig::DEBUG:
      options.level = LogLevel::kDebug;
      break;
    case tellonce::v1::LogConfig::WARN:
      options.level = LogLevel::kWarning;
      break;
    case tellonce::v1::LogConfig::ERROR:
      options.level = LogLevel::kError;
      break;
    default:
      options.level = LogLevel::kInfo;
      break;
  }
  return options;
}

void ConfigureLogging(const LogOptions& options) {
  LogState& state = State();
  {
    absl::MutexLock lock(&state.mu);
    state.program = options.program;
  }
  state.format.store(static_cast<int>(options.format), std::memory_order_relaxed);
  state.level.store(static_cast<int>(options.level), std::memory_order_relaxed);
  if (options.capture_grpc) {
    gpr_set_log_function(GrpcLogFunction);
    // gRPC filters by its own verbosity before calling the function: let through what
    // our level wants (gRPC's INFO lines are chatty; they show at DEBUG only).
    gpr_set_log_verbosity(options.level == LogLevel::kDebug ? GPR_LOG_SEVERITY_DEBUG
                                                            : GPR_LOG_SEVERITY_ERROR);
  }
}

std::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kWarning:
      return "WARN";
    case LogLevel::kError:
      return "ERROR";
  }
  return "ERROR";
}

bool LogEnabled(LogLevel level) {
  return static_cast<int>(level) >= State().level.load(std::memory_order_relaxed);
}

void Log(LogLevel level, std::string_view message, std::initializer_list<LogField> fields) {
  if (!LogEnabled(level)) return;
  WriteLine(level, message, absl::MakeConstSpan(fields.begin(), fields.size()), {});
}

void LogThrottle::Log(LogLevel level, std::string_view message,
                      std::initializer_list<LogField> fields) {
  if (!LogEnabled(level)) return;
  uint64_t suppressed = 0;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    if (now < next_) {
      ++suppressed_;
      return;
    }
    next_ = now + interval_;
    suppressed = suppressed_;
    suppressed_ = 0;
  }
  const std::string count = absl::StrCat(suppressed);
  const LogField extra[] = {{"suppressed", count}};
  WriteLine(level, message, absl::MakeConstSpan(fields.begin(), fields.size()),
            suppressed > 0 ? absl::MakeConstSpan(extra) : absl::Span<const LogField>());
}

}  // namespace tellonce::ops
