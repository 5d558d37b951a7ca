#ifndef TELLONCE_CLI_COMMAND_H_
#define TELLONCE_CLI_COMMAND_H_

// Design: every `tellonce` command is one declaration, a Command: its words, a synopsis,
// what it does, the flags it accepts and the function that runs it. The dispatcher
// (cli.cc) parses the command line against that declaration only, so the flags a
// command accepts and the flags its --help lists are the same list; an unknown flag,
// a missing value, an unknown command are usage errors (exit 2, one line on stderr).
// Commands are grouped by the broker service they speak to, one file per group, around
// the shared call helper in call.h.

#include <functional>
#include <string>
#include <vector>

#include "cli/args.h"
#include "ops/flags.h"

namespace tellonce::cli {

// Exit codes shared by every command.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

struct Command {
  // E.g. {"consent", "grant"}; a one-word command ({"fetch"}) has no subcommands.
  std::vector<std::string> words;
  // The flags in short, after the words, e.g. "--citizen ID --id CONSENT [--reason TEXT]".
  std::string synopsis;
  // What it does and who may run it; the first line is its summary in group listings.
  std::string description;
  // The command's own flags.
  std::vector<ops::FlagSpec> flags;
  // Takes the connection flags (call.h: --broker, --ca, --cert, ...).
  bool connects = true;
  // Takes --json (every command that prints a result does).
  bool json = true;
  // Returns the exit code: kExitOk, kExitFailed, kExitUsage or a command's own (fetch: 3).
  std::function<int(const Args&)> run;
};

// The command groups, one file each.
std::vector<Command> ConsentCommands();       // consent grant|revoke|get|list, receipt verify
std::vector<Command> FetchCommands();         // fetch
std::vector<Command> TransparencyCommands();  // access list, audit checkpoint|prove|export|verify
std::vector<Command> NotificationCommands();  // publish, deliveries list|retry
std::vector<Command> AdminCommands();         // admin status

// The whole program: dispatches argv to a command (or prints help or the version) and
// returns the process exit code.
int RunCli(int argc, char** argv);

}  // namespace tellonce::cli

#endif  // TELLONCE_CLI_COMMAND_H_
