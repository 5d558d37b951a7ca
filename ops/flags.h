#ifndef TELLONCE_OPS_FLAGS_H_
#define TELLONCE_OPS_FLAGS_H_

// Command-line flags for every tellonce program, from one declaration per program or
// command: a table of FlagSpec gives both the parser and the help text, so a flag
// cannot be accepted without being documented, nor documented without being accepted.
//
//   --name value | --name=value   a flag that takes a value
//   --name                        a boolean flag
//
// Conventions shared by every program (cli/README.md): an unknown flag, a missing
// value, a repeated flag or a value given to a boolean is a usage error (exit 2, one
// line on stderr naming the flag); --help prints usage to stdout and exits 0;
// --version prints "<program> <version>" and exits 0.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace tellonce::ops {

struct FlagSpec {
  // Without the leading "--", e.g. "port-file".
  std::string name;
  // What the value is, e.g. "FILE"; empty for a boolean flag.
  std::string value_name;
  // What it means, and its default or "required".
  std::string help;

  bool takes_value() const { return !value_name.empty(); }
};

struct ParsedFlags {
  // Words that are not flags nor flag values, in order.
  std::vector<std::string> positional;
  // Flag name (without "--") -> value ("true" for a boolean).
  std::map<std::string, std::string> values;

  bool Has(const std::string& name) const { return values.count(name) > 0; }
  // The flag's value, else the environment variable `env` when given and set, else
  // `fallback`.
  std::string Get(const std::string& name, const std::string& fallback = "",
                  const char* env = nullptr) const;
};

// Parses `args` (argv without the program name, or the part after a command's words)
// against `specs`. A value may not start with "--" unless given as --name=value.
// INVALID_ARGUMENT with a one-line message naming the flag: "unknown flag --x",
// "flag --x needs a value", "flag --x given twice", "flag --x takes no value".
// Positional words are collected, not judged; callers decide what they may be.
absl::StatusOr<ParsedFlags> ParseFlags(const std::vector<std::string>& args,
                                       absl::Span<const FlagSpec> specs);

// One line per flag, "  --name VALUE   help", aligned, for usage texts.
std::string FlagHelp(absl::Span<const FlagSpec> specs);

// The standard --help and --version entries, for tables that offer them.
FlagSpec HelpFlag();
FlagSpec VersionFlag();

// "<program> <kVersion>\n".
std::string VersionLine(const std::string& program);

}  // namespace tellonce::ops

#endif  // TELLONCE_OPS_FLAGS_H_
