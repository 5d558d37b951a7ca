// The `tellonce` dispatcher: finds the command a command line names, parses its flags
// against that command's declaration, and runs it; or prints help or the version.

#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/call.h"
#include "cli/command.h"
#include "cli/escaping_output.h"
#include "ops/flags.h"

namespace tellonce::cli {
namespace {

const std::vector<Command>& AllCommands() {
  static const auto* commands = [] {
    auto* all = new std::vector<Command>;
    for (auto group : {ConsentCommands, FetchCommands, TransparencyCommands, NotificationCommands,
                       AdminCommands}) {
      for (Command& c : group()) all->push_back(std::move(c));
    }
    return all;
  }();
  return *commands;
}

const ops::FlagSpec kJsonFlag{"json", "", "print the result as JSON on stdout"};

std::string Name(const Command& c) { return absl::StrJoin(c.words, " "); }

std::string Summary(const Command& c) {
  return std::string(c.description.substr(0, c.description.find('\n')));
}

// Every flag `c` accepts, in help order.
std::vector<ops::FlagSpec> AcceptedFlags(const Command& c) {
  std::vector<ops::FlagSpec> flags = c.flags;
  if (c.connects) flags.insert(flags.end(), ConnectionFlags().begin(), ConnectionFlags().end());
  if (c.json) flags.push_back(kJsonFlag);
  flags.push_back(ops::HelpFlag());
  return flags;
}

std::string CommandHelp(const Command& c) {
  std::string out = absl::StrCat("usage: tellonce ", Name(c), c.synopsis.empty() ? "" : " ",
                                 c.synopsis, " [flags]\n\n", c.description, "\n");
  if (!c.flags.empty()) absl::StrAppend(&out, "\nFlags:\n", ops::FlagHelp(c.flags));
  if (c.connects) {
    absl::StrAppend(&out,
                    "\nConnection flags (defaults from the environment variables in brackets):\n",
                    ops::FlagHelp(ConnectionFlags()));
  }
  std::vector<ops::FlagSpec> output;
  if (c.json) output.push_back(kJsonFlag);
  output.push_back(ops::HelpFlag());
  absl::StrAppend(&out, "\nOutput:\n", ops::FlagHelp(output),
                  "\nExit codes: 0 ok, 1 refused or failed, 2 usage error",
                  c.words == std::vector<std::string>{"fetch"} ? ", 3 some attributes refused" : "",
                  ".\n");
  return out;
}

std::string GroupHelp(const std::string& group) {
  std::string out =
      absl::StrCat("usage: tellonce ", group, " <subcommand> [flags]\n\nSubcommands:\n");
  for (const Command& c : AllCommands()) {
    if (c.words.size() == 2 && c.words[0] == group) {
      absl::StrAppend(&out, "  ", c.words[1],
                      std::string(12 - std::min<size_t>(c.words[1].size(), 11), ' '), Summary(c),
                      "\n");
    }
  }
  absl::StrAppend(&out, "\nRun 'tellonce ", group, " <subcommand> --help' for its flags.\n");
  return out;
}

std::string TopHelp() {
  std::string out =
      "usage: tellonce <command> [flags]\n"
      "       tellonce --version | --help\n\n"
      "The tellonce command-line client. Commands run with an agency's certificate; the\n"
      "broker decides from it what the agency may do.\n\nCommands:\n";
  for (const Command& c : AllCommands()) {
    const std::string name = Name(c);
    absl::StrAppend(&out, "  ", name, std::string(18 - std::min<size_t>(name.size(), 17), ' '),
                    Summary(c), "\n");
  }
  absl::StrAppend(&out, "  version           print the version\n",
                  "\nRun 'tellonce <command> --help' for a command's flags.\n"
                  "Exit codes: 0 ok, 1 refused or failed, 2 usage error (fetch: 3 when some\n"
                  "attributes were refused).\n");
  return out;
}

// One line on stderr, exit 2.
int UsageError(const std::string& where, const std::string& what) {
  std::cerr << "tellonce: " << (where.empty() ? "" : where + ": ") << what << " (see tellonce "
            << (where.empty() ? "" : where + " ") << "--help)\n";
  return kExitUsage;
}

int PrintVersion() {
  std::cout << ops::VersionLine("tellonce");
  return kExitOk;
}

}  // namespace

int RunCli(int argc, char** argv) {
  // Nothing from the broker reaches the terminal raw (escaping_output.h).
  EscapedOutput escaped_stdout(std::cout);
  EscapedOutput escaped_stderr(std::cerr);
  // The command's words come first, then its flags.
  std::vector<std::string> words;
  std::vector<std::string> rest;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h") arg = "--help";
    if (rest.empty() && !absl::StartsWith(arg, "-")) {
      words.push_back(arg);
    } else {
      rest.push_back(arg);
    }
  }

  // No command: --help, --version, or a usage error.
  if (words.empty()) {
    static const std::vector<ops::FlagSpec> top = {ops::VersionFlag(), ops::HelpFlag()};
    absl::StatusOr<ops::ParsedFlags> parsed = ops::ParseFlags(rest, top);
    if (!parsed.ok()) return UsageError("", std::string(parsed.status().message()));
    if (parsed->Has("help")) {
      std::cout << TopHelp();
      return kExitOk;
    }
    if (parsed->Has("version")) return PrintVersion();
    std::cerr << TopHelp();
    return kExitUsage;
  }
  if (words == std::vector<std::string>{"version"}) {
    static const std::vector<ops::FlagSpec> version_flags = {ops::HelpFlag()};
    absl::StatusOr<ops::ParsedFlags> parsed = ops::ParseFlags(rest, version_flags);
    if (!parsed.ok()) return UsageError("version", std::string(parsed.status().message()));
    if (parsed->Has("help")) {
      std::cout << "usage: tellonce version\n\nPrint the version.\n";
      return kExitOk;
    }
    return PrintVersion();
  }

  // The command whose words the command line starts with.
  const Command* command = nullptr;
  bool group_exists = false;
  for (const Command& c : AllCommands()) {
    if (c.words[0] != words[0]) continue;
    group_exists = true;
    if (words.size() >= c.words.size() &&
        std::equal(c.words.begin(), c.words.end(), words.begin())) {
      command = &c;
    }
  }
  if (!group_exists) return UsageError("", absl::StrCat("unknown command \"", words[0], "\""));
  if (command == nullptr) {
    // A group without (or with an unknown) subcommand.
    std::vector<std::string> subcommands;
    for (const Command& c : AllCommands()) {
      if (c.words[0] == words[0] && c.words.size() > 1) subcommands.push_back(c.words[1]);
    }
    if (words.size() == 1) {
      absl::StatusOr<ops::ParsedFlags> parsed =
          ops::ParseFlags(rest, std::vector<ops::FlagSpec>{ops::HelpFlag()});
      if (parsed.ok() && parsed->Has("help")) {
        std::cout << GroupHelp(words[0]);
        return kExitOk;
      }
      return UsageError(
          words[0], absl::StrCat("missing subcommand (", absl::StrJoin(subcommands, ", "), ")"));
    }
    return UsageError(words[0], absl::StrCat("unknown subcommand \"", words[1], "\" (",
                                             absl::StrJoin(subcommands, ", "), ")"));
  }
  const std::string name = Name(*command);
  if (words.size() > command->words.size()) {
    return UsageError(name,
                      absl::StrCat("unexpected argument \"", words[command->words.size()], "\""));
  }
  absl::StatusOr<ops::ParsedFlags> parsed = ops::ParseFlags(rest, AcceptedFlags(*command));
  if (!parsed.ok()) return UsageError(name, std::string(parsed.status().message()));
  if (!parsed->positional.empty()) {
    return UsageError(name, absl::StrCat("unexpected argument \"", parsed->positional[0], "\""));
  }
  if (parsed->Has("help")) {
    std::cout << CommandHelp(*command);
    return kExitOk;
  }
  Args args{.words = words, .flags = std::move(parsed->values)};
  return command->run(args);
}

}  // namespace tellonce::cli
