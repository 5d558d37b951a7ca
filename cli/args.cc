#include "cli/args.h"

#include <cstdlib>

namespace tellonce::cli {

std::string Args::Get(const std::string& name, const std::string& fallback, const char* env) const {
  auto it = flags.find(name);
  if (it != flags.end()) return it->second;
  if (env != nullptr) {
    if (const char* value = std::getenv(env); value != nullptr && *value != '\0') return value;
  }
  return fallback;
}

}  // namespace tellonce::cli
