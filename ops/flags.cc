#include "ops/flags.h"

#include <algorithm>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ops/version.h"

namespace tellonce::ops {

std::string ParsedFlags::Get(const std::string& name, const std::string& fallback,
                             const char* env) const {
  auto it = values.find(name);
  if (it != values.end()) return it->second;
  if (env != nullptr) {
    if (const char* value = std::getenv(env); value != nullptr && *value != '\0') return value;
  }
  return fallback;
}

absl::StatusOr<ParsedFlags> ParseFlags(const std::vector<std::string>& args,
                                       absl::Span<const FlagSpec> specs) {
  ParsedFlags parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (!absl::StartsWith(arg, "--") || arg == "--") {
      parsed.positional.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::optional<std::string> value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    auto spec =
        std::find_if(specs.begin(), specs.end(), [&](const FlagSpec& s) { return s.name == name; });
    if (spec == specs.end())
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    if (!spec->takes_value()) {
      if (value.has_value()) {
        return absl::InvalidArgumentError(absl::StrCat("flag --", name, " takes no value"));
      }
      value = "true";
    } else if (!value.has_value()) {
      if (i + 1 >= args.size() || absl::StartsWith(args[i + 1], "--")) {
        return absl::InvalidArgumentError(
            absl::StrCat("flag --", name, " needs a value (", spec->value_name, ")"));
      }
      value = args[++i];
    }
    if (!parsed.values.emplace(name, *value).second) {
      return absl::InvalidArgumentError(absl::StrCat("flag --", name, " given twice"));
    }
  }
  return parsed;
}

std::string FlagHelp(absl::Span<const FlagSpec> specs) {
  auto head = [](const FlagSpec& s) {
    return s.takes_value() ? absl::StrCat("--", s.name, " ", s.value_name)
                           : absl::StrCat("--", s.name);
  };
  size_t width = 0;
  for (const FlagSpec& s : specs) width = std::max(width, head(s).size());
  width = std::min<size_t>(width, 24);
  std::string out;
  for (const FlagSpec& s : specs) {
    std::string h = head(s);
    absl::StrAppend(&out, "  ", h);
    if (h.size() > width) {
      absl::StrAppend(&out, "\n  ", std::string(width, ' '));
    } else {
      out.append(width - h.size(), ' ');
    }
    absl::StrAppend(&out, "  ", s.help, "\n");
  }
  return out;
}

FlagSpec HelpFlag() { return {"help", "", "print this help and exit"}; }
FlagSpec VersionFlag() { return {"version", "", "print the version and exit"}; }

std::string VersionLine(const std::string& program) {
  return absl::StrCat(program, " ", kVersion, "\n");
}

}  // namespace tellonce::ops
