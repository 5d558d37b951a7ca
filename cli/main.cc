// tellonce: the command-line client for operators, portals and scripts.
#include <iostream>

#include "cli/args.h"
#include "cli/commands.h"

int main(int argc, char** argv) {
  absl::StatusOr<tellonce::cli::Args> args =
      tellonce::cli::ParseArgs(argc, argv, {"json", "all", "help", "fresh"});
  if (!args.ok()) {
    std::cerr << "error: " << args.status().message() << "\n";
    return tellonce::cli::Usage();
  }
  if (args->words.empty() || args->Has("help")) return tellonce::cli::Usage();
  const std::string& group = args->words[0];
  if (group == "consent") return tellonce::cli::RunConsentCommand(*args);
  if (group == "receipt") return tellonce::cli::RunReceiptCommand(*args);
  if (group == "fetch") return tellonce::cli::RunFetchCommand(*args);
  if (group == "access") return tellonce::cli::RunAccessCommand(*args);
  if (group == "audit") return tellonce::cli::RunAuditCommand(*args);
  if (group == "publish") return tellonce::cli::RunPublishCommand(*args);
  if (group == "deliveries") return tellonce::cli::RunDeliveriesCommand(*args);
  return tellonce::cli::Usage();
}
