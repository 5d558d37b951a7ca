#ifndef TELLONCE_CLI_ARGS_H_
#define TELLONCE_CLI_ARGS_H_

#include <map>
#include <string>
#include <vector>

namespace tellonce::cli {

// One command's words and flags, after parsing against the command's flag table
// (cli/command.h): only declared flags are present.
struct Args {
  // The command's words, e.g. {"consent", "grant"}.
  std::vector<std::string> words;
  // Flag name (without "--") -> value ("true" for a boolean flag).
  std::map<std::string, std::string> flags;

  bool Has(const std::string& name) const { return flags.count(name) > 0; }
  // The flag's value, else the environment variable `env` when given and set, else
  // `fallback`.
  std::string Get(const std::string& name, const std::string& fallback = "",
                  const char* env = nullptr) const;
  // --json was given.
  bool json() const { return Has("json"); }
};

}  // namespace tellonce::cli

#endif  // TELLONCE_CLI_ARGS_H_
