// `tellonce consent grant|revoke|get|list` (ConsentService, as a portal) and
// `tellonce receipt verify` (offline, with the broker's certificate).

#include <cctype>
#include <fstream>
#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "certs/identity.h"
#include "certs/signed_messages.h"
#include "certs/signing.h"
#include "cli/call.h"
#include "cli/command.h"
#include "google/protobuf/util/json_util.h"
#include "proto/textproto.h"
#include "proto/time.h"
#include "tellonce/v1/consent.grpc.pb.h"

namespace tellonce::cli {
namespace {

using tellonce::v1::ConsentService;

void PrintConsent(const tellonce::v1::Consent& c) {
  std::cout << "consent " << c.consent_id() << "  " << tellonce::v1::ConsentStatus_Name(c.status())
            << "\n"
            << "  citizen     " << c.citizen_id() << "\n"
            << "  consumer    " << c.consumer() << "\n"
            << "  purpose     " << c.purpose() << "\n"
            << "  attributes  " << absl::StrJoin(c.attributes(), ", ") << "\n"
            << "  valid       " << FormatTime(c.valid_from()) << " .. "
            << FormatTime(c.expires_at()) << " (" << tellonce::v1::ConsentMode_Name(c.mode())
            << ")\n"
            << "  captured    by " << c.portal() << " at " << FormatTime(c.captured_at()) << "\n";
  for (const tellonce::v1::ConsentEvent& e : c.events()) {
    std::cout << "  event       " << tellonce::v1::ConsentEvent::Kind_Name(e.kind()) << " at "
              << FormatTime(e.at()) << " by " << e.actor();
    if (!e.reason().empty()) std::cout << " (" << e.reason() << ")";
    std::cout << "\n";
  }
}

absl::Status WriteReceipt(const std::string& path, const tellonce::v1::ConsentReceipt& receipt) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(receipt, &json, options).ok()) {
    return absl::InternalError("cannot encode the receipt");
  }
  std::ofstream out(path, std::ios::trunc);
  out << json;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat(path, ": cannot write"));
  return absl::OkStatus();
}

// Calls `rpc(stub, context)` on the ConsentService with the citizen's assertion
// attached (from --citizen-assertion or minted with --dev-idp-key). kExitOk, or the
// failure's exit code once it is reported.
template <typename Rpc>
int CallForCitizen(const Args& args, const std::string& citizen, Rpc rpc) {
  absl::StatusOr<std::string> assertion = CitizenAssertionFor(args, citizen);
  if (!assertion.ok()) return Fail(assertion.status());
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Fail(conn.status());
  auto stub = ConsentService::NewStub(conn->channel);
  if (!Call(*conn, [&](grpc::ClientContext* context) {
        AddCitizenAssertion(context, *assertion);
        return rpc(*stub, context);
      })) {
    return kExitFailed;
  }
  return kExitOk;
}

// Writes `receipt` to --receipt-out when asked (and `receipt` is given), then prints
// the consent, or the whole response with --json.
template <typename Response>
int ShowConsent(const Args& args, const Response& response,
                const tellonce::v1::ConsentReceipt* receipt) {
  const bool write_receipt = receipt != nullptr && args.Has("receipt-out");
  if (write_receipt) {
    if (absl::Status s = WriteReceipt(args.Get("receipt-out"), *receipt); !s.ok()) return Fail(s);
  }
  if (args.json()) {
    PrintJson(response);
  } else {
    PrintConsent(response.consent());
    if (write_receipt) std::cout << "  receipt     " << args.Get("receipt-out") << "\n";
  }
  return kExitOk;
}

int Grant(const Args& args) {
  if (absl::Status s = RequireFlags(args, {"citizen", "consumer", "attributes", "purpose"});
      !s.ok()) {
    return Fail(s);
  }
  tellonce::v1::GrantConsentRequest request;
  request.set_request_id(args.Get("request-id", RandomRequestId()));
  request.set_citizen_id(args.Get("citizen"));
  request.set_consumer(args.Get("consumer"));
  for (const std::string& a : SplitList(args.Get("attributes"))) request.add_attributes(a);
  request.set_purpose(args.Get("purpose"));
  absl::Time now = absl::Now();
  if (args.Has("valid-from")) {
    absl::StatusOr<absl::Time> t = ParseTimeFlag("valid-from", args.Get("valid-from"));
    if (!t.ok()) return Fail(t.status());
    *request.mutable_valid_from() = ToProtoTime(*t);
    now = *t;
  }
  if (args.Has("expires-at")) {
    absl::StatusOr<absl::Time> t = ParseTimeFlag("expires-at", args.Get("expires-at"));
    if (!t.ok()) return Fail(t.status());
    *request.mutable_expires_at() = ToProtoTime(*t);
  } else if (args.Has("expires-in")) {
    absl::StatusOr<absl::Duration> d = ParseDurationFlag("expires-in", args.Get("expires-in"));
    if (!d.ok()) return Fail(d.status());
    *request.mutable_expires_at() = ToProtoTime(now + *d);
  } else {
    return Fail(absl::InvalidArgumentError("--expires-in or --expires-at: required"));
  }
  std::string mode = args.Get("mode", "until-expiry");
  if (mode == "until-expiry") {
    request.set_mode(tellonce::v1::UNTIL_EXPIRY);
  } else if (mode == "one-time") {
    request.set_mode(tellonce::v1::ONE_TIME);
  } else {
    return Fail(absl::InvalidArgumentError("--mode: must be until-expiry or one-time"));
  }

  tellonce::v1::GrantConsentResponse response;
  if (int rc = CallForCitizen(args, request.citizen_id(),
                              [&](ConsentService::Stub& stub, grpc::ClientContext* context) {
                                return stub.GrantConsent(context, request, &response);
                              });
      rc != kExitOk) {
    return rc;
  }
  return ShowConsent(args, response, &response.receipt());
}

int Revoke(const Args& args) {
  if (absl::Status s = RequireFlags(args, {"citizen", "id"}); !s.ok()) return Fail(s);
  tellonce::v1::RevokeConsentRequest request;
  request.set_citizen_id(args.Get("citizen"));
  request.set_consent_id(args.Get("id"));
  request.set_reason(args.Get("reason"));
  tellonce::v1::RevokeConsentResponse response;
  if (int rc = CallForCitizen(args, request.citizen_id(),
                              [&](ConsentService::Stub& stub, grpc::ClientContext* context) {
                                return stub.RevokeConsent(context, request, &response);
                              });
      rc != kExitOk) {
    return rc;
  }
  return ShowConsent(args, response, nullptr);
}

int Get(const Args& args) {
  if (absl::Status s = RequireFlags(args, {"citizen", "id"}); !s.ok()) return Fail(s);
  tellonce::v1::GetConsentRequest request;
  request.set_citizen_id(args.Get("citizen"));
  request.set_consent_id(args.Get("id"));
  tellonce::v1::GetConsentResponse response;
  if (int rc = CallForCitizen(args, request.citizen_id(),
                              [&](ConsentService::Stub& stub, grpc::ClientContext* context) {
                                return stub.GetConsent(context, request, &response);
                              });
      rc != kExitOk) {
    return rc;
  }
  return ShowConsent(args, response, &response.receipt());
}

int List(const Args& args) {
  if (absl::Status s = RequireFlags(args, {"citizen"}); !s.ok()) return Fail(s);
  tellonce::v1::ListConsentsRequest request;
  request.set_citizen_id(args.Get("citizen"));
  if (args.Has("status")) {
    std::string name = args.Get("status");
    for (char& ch : name) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    tellonce::v1::ConsentStatus status;
    if (!tellonce::v1::ConsentStatus_Parse(name, &status) ||
        status == tellonce::v1::CONSENT_STATUS_UNSPECIFIED) {
      return Fail(absl::InvalidArgumentError("--status: must be active, revoked, expired or used"));
    }
    request.set_status(status);
  }
  absl::StatusOr<std::string> assertion = CitizenAssertionFor(args, request.citizen_id());
  if (!assertion.ok()) return Fail(assertion.status());
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Fail(conn.status());
  std::unique_ptr<ConsentService::Stub> stub = ConsentService::NewStub(conn->channel);
  return ListPages<tellonce::v1::ListConsentsResponse>(
      args, *conn, request,
      [&](grpc::ClientContext* context, const auto& r, auto* response) {
        AddCitizenAssertion(context, *assertion);
        return stub->ListConsents(context, r, response);
      },
      [](const tellonce::v1::ListConsentsResponse& response) {
        for (const tellonce::v1::Consent& c : response.consents()) PrintConsent(c);
        return response.consents_size();
      },
      "consent(s)");
}

// A receipt that does not verify: "receipt INVALID: ..." on stderr (and, with --json,
// {"ok": false, "reason": ...} on stdout), exit 1.
int Invalid(const Args& args, const std::string& reason) {
  std::cerr << "receipt INVALID: " << reason << "\n";
  if (args.json()) JsonObject().Add("ok", false).Add("reason", reason).Print();
  return kExitFailed;
}

int VerifyReceipt(const Args& args) {
  if (absl::Status s = RequireFlags(args, {"receipt", "broker-cert", "signing-keys"}); !s.ok()) {
    return Fail(s);
  }
  absl::StatusOr<std::string> json = ReadFileToString(args.Get("receipt"));
  if (!json.ok()) return Fail(json.status());
  tellonce::v1::ConsentReceipt receipt;
  if (!google::protobuf::util::JsonStringToMessage(*json, &receipt).ok()) {
    return Invalid(args, absl::StrCat(args.Get("receipt"), " is not a consent receipt"));
  }
  absl::StatusOr<std::string> cert_pem = ReadFileToString(args.Get("broker-cert"));
  if (!cert_pem.ok()) return Fail(cert_pem.status());
  absl::StatusOr<certs::VerifyingKeySet> keys = LoadSigningKeys(args);
  if (!keys.ok()) return Fail(keys.status());
  absl::StatusOr<certs::SpiffeId> signer = certs::CertificateSpiffeId(*cert_pem);
  if (!signer.ok()) return Fail(signer.status());

  absl::StatusOr<tellonce::v1::ReceiptBody> verified = certs::VerifyReceipt(receipt, *keys);
  if (!verified.ok()) return Invalid(args, std::string(verified.status().message()));
  const tellonce::v1::ReceiptBody& body = *verified;
  if (!signer->is_broker || body.issuer() != signer->ToString()) {
    return Invalid(args, absl::StrCat("issued by ", body.issuer(), " but the certificate given is ",
                                      signer->ToString()));
  }
  if (args.json()) {
    PrintJson(body);
    return kExitOk;
  }
  std::cout << "receipt OK: signature by " << body.issuer() << " verifies\n"
            << "  record      " << body.record_id() << " (" << body.version() << ")\n"
            << "  principal   " << body.principal_id() << "\n"
            << "  controller  " << body.controller() << "\n";
  for (const auto& p : body.purposes()) {
    std::cout << "  purpose     " << p.code() << ": " << p.description() << "\n";
  }
  std::cout << "  attributes  " << absl::StrJoin(body.attributes(), ", ") << "\n"
            << "  valid       " << FormatTime(body.valid_from()) << " .. "
            << FormatTime(body.expires_at()) << " (" << tellonce::v1::ConsentMode_Name(body.mode())
            << ")\n"
            << "  collected   " << body.collection_method() << " at "
            << FormatTime(body.collected_at()) << "\n";
  return kExitOk;
}

}  // namespace

std::vector<Command> ConsentCommands() {
  const ops::FlagSpec citizen{"citizen", "ID", "the citizen's id; required"};
  const ops::FlagSpec id{"id", "CONSENT", "the consent's id; required"};
  const ops::FlagSpec receipt_out{"receipt-out", "FILE",
                                  "also save the signed consent receipt (JSON) to FILE"};
  std::vector<ops::FlagSpec> list_flags = {
      citizen,
      {"status", "STATUS", "only consents in this status: active, revoked, expired or used"}};
  for (ops::FlagSpec& f : PagingFlags()) list_flags.push_back(std::move(f));
  // Every consent command is citizen-bound: it carries the citizen's ID token.
  const std::vector<ops::FlagSpec> assertion_flags = CitizenAssertionFlags();
  auto with_assertion = [&](std::vector<ops::FlagSpec> flags) {
    flags.insert(flags.end(), assertion_flags.begin(), assertion_flags.end());
    return flags;
  };
  list_flags = with_assertion(std::move(list_flags));
  return {
      {.words = {"consent", "grant"},
       .synopsis = "--citizen ID --consumer AGENCY --attributes A,B --purpose CODE "
                   "(--expires-in 90d | --expires-at RFC3339)",
       .description = "Record a citizen's consent; print it and its signed receipt (as a portal).\n"
                      "Retrying with the same --request-id does not grant twice.",
       .flags = with_assertion(
           {citizen,
            {"consumer", "AGENCY", "the agency allowed to obtain the data; required"},
            {"attributes", "A,B", "the attributes, comma-separated; required"},
            {"purpose", "CODE", "the purpose code from the directory; required"},
            {"expires-in", "DURATION", "lifetime from --valid-from, e.g. 90d or 12h"},
            {"expires-at", "RFC3339", "expiry time (instead of --expires-in)"},
            {"valid-from", "RFC3339", "start of validity; default now"},
            {"mode", "MODE", "until-expiry or one-time; default until-expiry"},
            {"request-id", "ID", "idempotency key; default a fresh one"},
            receipt_out}),
       .run = Grant},
      {.words = {"consent", "revoke"},
       .synopsis = "--citizen ID --id CONSENT [--reason TEXT]",
       .description = "Revoke a consent (as a portal); print the revoked consent.",
       .flags =
           with_assertion({citizen, id, {"reason", "TEXT", "why, kept with the consent's events"}}),
       .run = Revoke},
      {.words = {"consent", "get"},
       .synopsis = "--citizen ID --id CONSENT [--receipt-out FILE]",
       .description = "Show one consent with its events (as a portal).",
       .flags = with_assertion({citizen, id, receipt_out}),
       .run = Get},
      {.words = {"consent", "list"},
       .synopsis = "--citizen ID [--status STATUS] [--page-size N] [--page-token T] [--all]",
       .description = "List a citizen's consents (as a portal).",
       .flags = list_flags,
       .run = List},
      {.words = {"receipt", "verify"},
       .synopsis = "--receipt FILE --broker-cert FILE --signing-keys DIR",
       .description = "Verify a signed consent receipt, offline, with the broker's signing keys\n"
                      "(the signature) and certificate (the issuer).\n"
                      "Prints \"receipt OK\" and its contents, or \"receipt INVALID: ...\" and "
                      "exits 1.",
       .flags = {{"receipt", "FILE", "the receipt (JSON, from --receipt-out); required"},
                 {"broker-cert", "FILE", "the broker's certificate (PEM); required"},
                 SigningKeysFlag()},
       .connects = false,
       .run = VerifyReceipt},
  };
}

}  // namespace tellonce::cli
