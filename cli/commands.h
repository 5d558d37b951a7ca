#ifndef TELLONCE_CLI_COMMANDS_H_
#define TELLONCE_CLI_COMMANDS_H_

#include "cli/args.h"

namespace tellonce::cli {

// Runs one `tellonce` command and returns the process exit code: 0 success, 1 the
// broker (or a check) refused, 2 usage error. Prints results to stdout, errors to
// stderr.
int RunConsentCommand(const Args& args);
int RunReceiptCommand(const Args& args);
// `fetch`: exit 0 when every attribute was delivered, 3 when some were refused.
int RunFetchCommand(const Args& args);
// `access list`: a citizen's access history.
int RunAccessCommand(const Args& args);
// `audit checkpoint|prove|export|verify`: the access log's signed checkpoints and
// proofs, online, and offline verification of a copy (cli/audit.h). A check that does
// not pass prints "FAILED: ..." and exits 1.
int RunAuditCommand(const Args& args);

// `publish`: a provider reports a change (NotificationService).
int RunPublishCommand(const Args& args);
// `deliveries list|retry`: an operator's view of the notification outbox.
int RunDeliveriesCommand(const Args& args);

// Prints the usage text to stderr and returns 2.
int Usage();

}  // namespace tellonce::cli

#endif  // TELLONCE_CLI_COMMANDS_H_
