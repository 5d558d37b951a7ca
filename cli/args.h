#ifndef TELLONCE_CLI_ARGS_H_
#define TELLONCE_CLI_ARGS_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tellonce::cli {

// Command-line words and flags: positional words first ("consent grant"), then flags
// as "--name value", "--name=value", or "--name" for the booleans named in `booleans`.
// A flag may appear once.
struct Args {
  std::vector<std::string> words;
  std::map<std::string, std::string> flags;

  bool Has(const std::string& name) const { return flags.count(name) > 0; }
  // The flag's value, else the environment variable `env` when given and set, else
  // `fallback`.
  std::string Get(const std::string& name, const std::string& fallback = "",
                  const char* env = nullptr) const;
};

// INVALID_ARGUMENT naming the flag on a missing value, a repeated flag or a stray word
// after the first flag.
absl::StatusOr<Args> ParseArgs(int argc, char** argv, const std::set<std::string>& booleans);

}  // namespace tellonce::cli

#endif  // TELLONCE_CLI_ARGS_H_
