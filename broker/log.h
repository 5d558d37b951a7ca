#ifndef TELLONCE_BROKER_LOG_H_
#define TELLONCE_BROKER_LOG_H_

#include <string_view>

namespace tellonce::broker {

// Lifecycle logging to stderr, one line per call: "<RFC 3339 UTC time> <level> <text>".
// Thread-safe. Never pass attribute values or citizen ids that an operator does not need.
void LogInfo(std::string_view text);
void LogWarning(std::string_view text);
void LogError(std::string_view text);

}  // namespace tellonce::broker

#endif  // TELLONCE_BROKER_LOG_H_
