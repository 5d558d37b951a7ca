#include "cli/args.h"

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tellonce::cli {

std::string Args::Get(const std::string& name, const std::string& fallback,
                      const char* env) const {
  auto it = flags.find(name);
  if (it != flags.end()) return it->second;
  if (env != nullptr) {
    if (const char* value = std::getenv(env); value != nullptr && *value != '\0') return value;
  }
  return fallback;
}

absl::StatusOr<Args> ParseArgs(int argc, char** argv, const std::set<std::string>& booleans) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (!absl::StartsWith(arg, "--")) {
      if (!args.flags.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("unexpected argument \"", arg, "\""));
      }
      args.words.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::string value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (booleans.count(name) > 0) {
      value = "true";
    } else {
      if (i + 1 >= argc) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, ": needs a value"));
      }
      value = argv[++i];
    }
    if (!args.flags.emplace(name, value).second) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, ": given twice"));
    }
  }
  return args;
}

}  // namespace tellonce::cli
