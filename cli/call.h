#ifndef TELLONCE_CLI_CALL_H_
#define TELLONCE_CLI_CALL_H_

// What every `tellonce` command shares: the connection to the broker (mutual TLS with
// an agency's certificate, from flags or the environment), one call with its deadline
// and the printing of a refused call, flag-value parsing, and output (text or JSON).

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "certs/signing.h"
#include "cli/args.h"
#include "cli/command.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/status.h"
#include "tellonce/v1/connector.pb.h"

namespace tellonce::cli {

// --broker, --ca, --cert, --key, --broker-id, --timeout.
const std::vector<ops::FlagSpec>& ConnectionFlags();

// A channel to the broker as the agency whose certificate is given, and the per-call
// deadline. Each command group makes the stubs it needs from `channel`.
struct Connection {
  std::shared_ptr<grpc::Channel> channel;
  absl::Duration timeout;
};

// INVALID_ARGUMENT when --ca, --cert or --key (or their environment variables) are
// missing or --timeout is not a positive number; the TLS files' errors otherwise.
absl::StatusOr<Connection> Connect(const Args& args);

// One unary call: `call` gets a context with the deadline set. On failure prints the
// status on stderr (PrintStatusError) and returns false.
bool Call(const Connection& conn, const std::function<grpc::Status(grpc::ClientContext*)>& call);

// "error: <code> (<NAME>): <message>" on stderr.
void PrintStatusError(const grpc::Status& status);

// "error: <message>" on stderr; returns kExitUsage for INVALID_ARGUMENT, else kExitFailed.
int Fail(const absl::Status& status);

// INVALID_ARGUMENT "--<name>: required" for the first flag missing.
absl::Status RequireFlags(const Args& args, std::initializer_list<const char*> names);

// The broker's public signing keys from --signing-keys DIR (one "<key_id>.pem" each,
// certs::VerifyingKeySet::FromDirectory), for verifying receipts and checkpoints.
// INVALID_ARGUMENT "--signing-keys: ..." when missing or unreadable.
absl::StatusOr<certs::VerifyingKeySet> LoadSigningKeys(const Args& args);
// The flag table entry of --signing-keys.
ops::FlagSpec SigningKeysFlag();

// Flag values.
absl::StatusOr<absl::Time> ParseTimeFlag(const std::string& flag, const std::string& text);
// "90d", "12h", "30m", "45s", or anything absl::ParseDuration takes.
absl::StatusOr<absl::Duration> ParseDurationFlag(const std::string& flag, const std::string& text);
// "a,b,c" -> {"a", "b", "c"}, empty items skipped.
std::vector<std::string> SplitList(const std::string& text);
std::string RandomRequestId();

// Times.
std::string FormatTime(const google::protobuf::Timestamp& t);
std::string FormatUtc(absl::Time t);
// "45s", "12m5s", "3h12m", "2d3h": the two largest units.
std::string HumanDuration(absl::Duration d);

// "consent <id>", "mandate <id> (<legal reference>)" or "none".
std::string FormatBasis(const tellonce::v1::Basis& basis);

// Prints `message` as JSON on stdout (proto field names, indented). With
// `all_fields`, fields at their default value are printed too.
void PrintJson(const google::protobuf::Message& message, bool all_fields = false);

// A small JSON object for results that are not messages, printed with Print().
class JsonObject {
 public:
  JsonObject& Add(const std::string& key, const std::string& value);
  JsonObject& Add(const std::string& key, const char* value) {
    return Add(key, std::string(value));
  }
  JsonObject& Add(const std::string& key, uint64_t value);
  JsonObject& Add(const std::string& key, bool value);
  // `json` must already be JSON (a nested object or a message printed as JSON).
  JsonObject& AddRaw(const std::string& key, const std::string& json);
  std::string ToString() const;
  void Print() const;

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};
// A message as compact JSON, for JsonObject::AddRaw.
std::string MessageJson(const google::protobuf::Message& message);

// Runs a paged List call: one page, or every page with --all (from --page-token, with
// --page-size), printing each page's items with `print` (which returns how many) or
// the page as JSON (--json), then "<n> <noun>". Returns the exit code.
template <typename Response, typename Request, typename CallFn, typename Print>
int ListPages(const Args& args, const Connection& conn, Request request, CallFn call, Print print,
              const char* noun);

// Citizen-bound commands (consent grant/revoke/get/list, access list as a portal):
// --citizen-assertion, --dev-idp-key, --dev-idp-issuer, --dev-idp-audience.
std::vector<ops::FlagSpec> CitizenAssertionFlags();
// The dev identity provider of deploy/local/directory.textproto.
inline constexpr char kDevIdpIssuer[] = "https://eid.tellonce.local";
inline constexpr char kDevIdpAudience[] = "tellonce-portal";

// The citizen's ID token to send with a call about `citizen_id`: --citizen-assertion
// (or TELLONCE_CITIZEN_ASSERTION); else, in a development setup, one minted now with
// --dev-idp-key (or TELLONCE_DEV_IDP_KEY); else empty (a consumer's calls carry none).
// INVALID_ARGUMENT when the dev key cannot be read.
absl::StatusOr<std::string> CitizenAssertionFor(const Args& args, const std::string& citizen_id);
// Sends `token` in the tellonce-citizen-assertion metadata, unless it is empty.
void AddCitizenAssertion(grpc::ClientContext* context, const std::string& token);

// The paging flags of a List command: --page-size, --page-token, --all.
std::vector<ops::FlagSpec> PagingFlags();

// --- implementation -------------------------------------------------------------------

int ParsePageSize(const Args& args, int* page_size);

template <typename Response, typename Request, typename CallFn, typename Print>
int ListPages(const Args& args, const Connection& conn, Request request, CallFn call, Print print,
              const char* noun) {
  int page_size = 0;
  if (int code = ParsePageSize(args, &page_size); code != kExitOk) return code;
  request.set_page_size(page_size);
  request.set_page_token(args.Get("page-token"));
  int shown = 0;
  while (true) {
    Response response;
    if (!Call(conn,
              [&](grpc::ClientContext* context) { return call(context, request, &response); })) {
      return kExitFailed;
    }
    if (args.json()) {
      PrintJson(response);
    } else {
      shown += print(response);
    }
    if (response.next_page_token().empty()) break;
    if (!args.Has("all")) {
      if (!args.json()) {
        std::cout << "next page: --page-token " << response.next_page_token() << "\n";
      }
      break;
    }
    request.set_page_token(response.next_page_token());
  }
  if (!args.json()) std::cout << shown << " " << noun << "\n";
  return kExitOk;
}

}  // namespace tellonce::cli

#endif  // TELLONCE_CLI_CALL_H_
