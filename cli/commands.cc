#include "cli/commands.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli/audit.h"
#include "certs/identity.h"
#include "certs/merkle.h"
#include "certs/signing.h"
#include "certs/tls.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/create_channel.h"
#include "proto/textproto.h"
#include "tellonce/v1/consent.grpc.pb.h"
#include "tellonce/v1/exchange.grpc.pb.h"
#include "tellonce/v1/notification.grpc.pb.h"
#include "tellonce/v1/transparency.grpc.pb.h"

namespace tellonce::cli {
namespace {

using google::protobuf::Timestamp;
using google::protobuf::util::TimeUtil;

constexpr char kUsage[] = R"(usage: tellonce <command> [flags]

Commands (run with an agency's certificate; the broker checks its role):
  consent grant   --citizen ID --consumer AGENCY --attributes A,B --purpose CODE
                  (--expires-in 90d | --expires-at RFC3339) [--valid-from RFC3339]
                  [--mode until-expiry|one-time] [--request-id ID] [--receipt-out FILE]
  consent revoke  --citizen ID --id CONSENT [--reason TEXT]
  consent get     --citizen ID --id CONSENT [--receipt-out FILE]
  consent list    --citizen ID [--status active|revoked|expired|used] [--page-size N]
                  [--page-token T] [--all]
  receipt verify  --receipt FILE --broker-cert FILE
  fetch           --citizen ID --attributes A,B --purpose CODE [--request-id ID]
                  (as a consumer agency: obtain attributes through the broker)
  access list     --citizen ID [--from RFC3339] [--to RFC3339] [--page-size N]
                  [--page-token T] [--all]
                  (a portal sees every access to the citizen's data; a consumer its own)
  audit checkpoint [--fresh] --out FILE --broker-cert FILE
                  (fetch the broker's signed checkpoint of the access log, verify, save)
  audit prove     --index N --checkpoint FILE --broker-cert FILE
                  (prove that event N is in the log the checkpoint signs)
  audit prove     --old FILE --new FILE --broker-cert FILE
                  (prove that the newer checkpoint extends the older one)
  audit export    --out FILE [--data-dir DIR] [--page-size N]
                  (the whole access log: online as an admin, or offline from a copy of
                  the broker's data directory)
  audit verify    (--data-dir DIR | --log FILE) --checkpoint FILE --broker-cert FILE
                  (offline: check every event against a signed checkpoint)
  publish         --citizen ID --event-type TYPE --attributes A,B --event-id ID
                  [--occurred-at RFC3339]
                  (as the authoritative provider: report a change once)
  deliveries list [--subscriber AGENCY] [--state pending|dead] [--page-size N]
                  [--page-token T] [--all]
  deliveries retry (--id DELIVERY[,DELIVERY...] | --subscriber AGENCY | --all)
                  (as an operator: see and re-queue change notifications)

Connection flags (defaults from the environment variables in brackets):
  --broker HOST:PORT   broker address [TELLONCE_BROKER], default 127.0.0.1:7443
  --ca FILE            federation CA bundle [TELLONCE_CA]
  --cert FILE          this agency's certificate [TELLONCE_CERT]
  --key FILE           this agency's private key [TELLONCE_KEY]
  --broker-id URI      the broker's SPIFFE id, default spiffe://<your trust domain>/broker
  --timeout SECONDS    per-call deadline, default 10
  --json               print responses as JSON
)";

std::string FormatTime(const Timestamp& t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ",
                          absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos()),
                          absl::UTCTimeZone());
}

Timestamp ToTimestamp(absl::Time t) {
  return TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

absl::StatusOr<absl::Time> ParseTimeFlag(const std::string& flag, const std::string& text) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, text, &t, &err)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": not an RFC 3339 time (e.g. 2027-01-31T00:00:00Z)"));
  }
  return t;
}

// "90d", "12h", "30m", "45s", or anything absl::ParseDuration takes.
absl::StatusOr<absl::Duration> ParseDurationFlag(const std::string& flag,
                                                 const std::string& text) {
  int64_t days = 0;
  if (!text.empty() && text.back() == 'd' && absl::SimpleAtoi(text.substr(0, text.size() - 1), &days)) {
    return absl::Hours(24 * days);
  }
  absl::Duration d;
  if (!absl::ParseDuration(text, &d)) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, ": not a duration (e.g. 90d, 12h)"));
  }
  return d;
}

void PrintStatusError(const grpc::Status& status) {
  std::cerr << "error: " << status.error_code() << " (" << [&] {
    switch (status.error_code()) {
      case grpc::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
      case grpc::NOT_FOUND: return "NOT_FOUND";
      case grpc::PERMISSION_DENIED: return "PERMISSION_DENIED";
      case grpc::UNAUTHENTICATED: return "UNAUTHENTICATED";
      case grpc::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
      case grpc::UNAVAILABLE: return "UNAVAILABLE";
      case grpc::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
      case grpc::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
      default: return "ERROR";
    }
  }() << "): " << status.error_message() << "\n";
}

int Fail(const absl::Status& status) {
  std::cerr << "error: " << status.message() << "\n";
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

absl::Status RequireFlags(const Args& args, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (!args.Has(name)) return absl::InvalidArgumentError(absl::StrCat("--", name, ": required"));
  }
  return absl::OkStatus();
}

// A connection to the broker as the agency whose certificate is given.
struct Connection {
  std::unique_ptr<tellonce::v1::ConsentService::Stub> consents;
  std::unique_ptr<tellonce::v1::ExchangeService::Stub> exchange;
  std::unique_ptr<tellonce::v1::TransparencyService::Stub> transparency;
  std::unique_ptr<tellonce::v1::NotificationService::Stub> notifications;
  std::unique_ptr<tellonce::v1::DeliveryAdminService::Stub> deliveries;
  absl::Duration timeout;

  void Prepare(grpc::ClientContext* context) const {
    context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  }
};

absl::StatusOr<Connection> Connect(const Args& args) {
  certs::TlsPaths tls{.ca_file = args.Get("ca", "", "TELLONCE_CA"),
                      .cert_file = args.Get("cert", "", "TELLONCE_CERT"),
                      .key_file = args.Get("key", "", "TELLONCE_KEY"),
                      .crl_dir = ""};
  if (tls.ca_file.empty() || tls.cert_file.empty() || tls.key_file.empty()) {
    return absl::InvalidArgumentError(
        "--ca, --cert and --key are required (or TELLONCE_CA, TELLONCE_CERT, TELLONCE_KEY)");
  }
  std::string broker_id = args.Get("broker-id");
  if (broker_id.empty()) {
    absl::StatusOr<std::string> pem = ReadFileToString(tls.cert_file);
    if (!pem.ok()) return pem.status();
    absl::StatusOr<certs::SpiffeId> self = certs::CertificateSpiffeId(*pem);
    if (!self.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--cert: ", self.status().message()));
    }
    broker_id = certs::BrokerSpiffeId(self->trust_domain);
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      certs::MakeChannelCredentials(tls, broker_id);
  if (!creds.ok()) return creds.status();
  int timeout_s = 10;
  if (!absl::SimpleAtoi(args.Get("timeout", "10"), &timeout_s) || timeout_s <= 0) {
    return absl::InvalidArgumentError("--timeout: must be a positive number of seconds");
  }
  std::shared_ptr<grpc::Channel> channel = grpc::CreateChannel(
      args.Get("broker", "127.0.0.1:7443", "TELLONCE_BROKER"), *creds);
  return Connection{tellonce::v1::ConsentService::NewStub(channel),
                    tellonce::v1::ExchangeService::NewStub(channel),
                    tellonce::v1::TransparencyService::NewStub(channel),
                    tellonce::v1::NotificationService::NewStub(channel),
                    tellonce::v1::DeliveryAdminService::NewStub(channel), absl::Seconds(timeout_s)};
}

void PrintConsent(const tellonce::v1::Consent& c) {
  std::cout << "consent " << c.consent_id() << "  "
            << tellonce::v1::ConsentStatus_Name(c.status()) << "\n"
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

void PrintJson(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  std::cout << json;
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

std::string RandomRequestId() {
  absl::Time now = absl::Now();
  return absl::StrCat("cli-", absl::ToUnixNanos(now), "-", getpid());
}

// Runs a paged List call: one page, or every page with --all (from --page-token, with
// --page-size), printing each page's items with `print` or the page as JSON (--json),
// then "<n> <noun>". Returns the exit code: 0, 1 when the broker refused, 2 for a bad
// --page-size.
template <typename Response, typename Request, typename Call, typename Print>
int ListPages(const Args& args, const Connection& conn, Request request, Call call,
              Print print, const char* noun) {
  int page_size = 0;
  if (args.Has("page-size") && !absl::SimpleAtoi(args.Get("page-size"), &page_size)) {
    return Fail(absl::InvalidArgumentError("--page-size: must be a number"));
  }
  request.set_page_size(page_size);
  request.set_page_token(args.Get("page-token"));
  int shown = 0;
  while (true) {
    grpc::ClientContext context;
    conn.Prepare(&context);
    Response response;
    grpc::Status status = call(&context, request, &response);
    if (!status.ok()) {
      PrintStatusError(status);
      return 1;
    }
    if (args.Has("json")) {
      PrintJson(response);
    } else {
      shown += print(response);
    }
    if (response.next_page_token().empty()) break;
    if (!args.Has("all")) {
      if (!args.Has("json")) {
        std::cout << "next page: --page-token " << response.next_page_token() << "\n";
      }
      break;
    }
    request.set_page_token(response.next_page_token());
  }
  if (!args.Has("json")) std::cout << shown << " " << noun << "\n";
  return 0;
}

int Grant(const Args& args, const Connection& conn) {
  if (absl::Status s = RequireFlags(args, {"citizen", "consumer", "attributes", "purpose"});
      !s.ok()) {
    return Fail(s);
  }
  tellonce::v1::GrantConsentRequest request;
  request.set_request_id(args.Get("request-id", RandomRequestId()));
  request.set_citizen_id(args.Get("citizen"));
  request.set_consumer(args.Get("consumer"));
  for (absl::string_view a : absl::StrSplit(args.Get("attributes"), ',', absl::SkipEmpty())) {
    request.add_attributes(std::string(a));
  }
  request.set_purpose(args.Get("purpose"));
  absl::Time now = absl::Now();
  if (args.Has("valid-from")) {
    absl::StatusOr<absl::Time> t = ParseTimeFlag("valid-from", args.Get("valid-from"));
    if (!t.ok()) return Fail(t.status());
    *request.mutable_valid_from() = ToTimestamp(*t);
    now = *t;
  }
  if (args.Has("expires-at")) {
    absl::StatusOr<absl::Time> t = ParseTimeFlag("expires-at", args.Get("expires-at"));
    if (!t.ok()) return Fail(t.status());
    *request.mutable_expires_at() = ToTimestamp(*t);
  } else if (args.Has("expires-in")) {
    absl::StatusOr<absl::Duration> d = ParseDurationFlag("expires-in", args.Get("expires-in"));
    if (!d.ok()) return Fail(d.status());
    *request.mutable_expires_at() = ToTimestamp(now + *d);
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

  grpc::ClientContext context;
  conn.Prepare(&context);
  tellonce::v1::GrantConsentResponse response;
  grpc::Status status = conn.consents->GrantConsent(&context, request, &response);
  if (!status.ok()) {
    PrintStatusError(status);
    return 1;
  }
  if (args.Has("receipt-out")) {
    if (absl::Status s = WriteReceipt(args.Get("receipt-out"), response.receipt()); !s.ok()) {
      return Fail(s);
    }
  }
  if (args.Has("json")) {
    PrintJson(response);
  } else {
    PrintConsent(response.consent());
    if (args.Has("receipt-out")) std::cout << "  receipt     " << args.Get("receipt-out") << "\n";
  }
  return 0;
}

int Revoke(const Args& args, const Connection& conn) {
  if (absl::Status s = RequireFlags(args, {"citizen", "id"}); !s.ok()) return Fail(s);
  tellonce::v1::RevokeConsentRequest request;
  request.set_citizen_id(args.Get("citizen"));
  request.set_consent_id(args.Get("id"));
  request.set_reason(args.Get("reason"));
  grpc::ClientContext context;
  conn.Prepare(&context);
  tellonce::v1::RevokeConsentResponse response;
  grpc::Status status = conn.consents->RevokeConsent(&context, request, &response);
  if (!status.ok()) {
    PrintStatusError(status);
    return 1;
  }
  if (args.Has("json")) {
    PrintJson(response);
  } else {
    PrintConsent(response.consent());
  }
  return 0;
}

int Get(const Args& args, const Connection& conn) {
  if (absl::Status s = RequireFlags(args, {"citizen", "id"}); !s.ok()) return Fail(s);
  tellonce::v1::GetConsentRequest request;
  request.set_citizen_id(args.Get("citizen"));
  request.set_consent_id(args.Get("id"));
  grpc::ClientContext context;
  conn.Prepare(&context);
  tellonce::v1::GetConsentResponse response;
  grpc::Status status = conn.consents->GetConsent(&context, request, &response);
  if (!status.ok()) {
    PrintStatusError(status);
    return 1;
  }
  if (args.Has("receipt-out")) {
    if (absl::Status s = WriteReceipt(args.Get("receipt-out"), response.receipt()); !s.ok()) {
      return Fail(s);
    }
  }
  if (args.Has("json")) {
    PrintJson(response);
  } else {
    PrintConsent(response.consent());
  }
  return 0;
}

int List(const Args& args, const Connection& conn) {
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
  return ListPages<tellonce::v1::ListConsentsResponse>(
      args, conn, request,
      [&](grpc::ClientContext* context, const auto& r, auto* response) {
        return conn.consents->ListConsents(context, r, response);
      },
      [](const tellonce::v1::ListConsentsResponse& response) {
        for (const tellonce::v1::Consent& c : response.consents()) PrintConsent(c);
        return response.consents_size();
      },
      "consent(s)");
}

std::string FormatValue(const tellonce::v1::AttributeValue& v) {
  switch (v.value_case()) {
    case tellonce::v1::AttributeValue::kStringValue: return absl::StrCat("\"", v.string_value(), "\"");
    case tellonce::v1::AttributeValue::kIntegerValue: return absl::StrCat(v.integer_value());
    case tellonce::v1::AttributeValue::kDecimalValue: return v.decimal_value();
    case tellonce::v1::AttributeValue::kDateValue: return v.date_value();
    case tellonce::v1::AttributeValue::kBooleanValue: return v.boolean_value() ? "true" : "false";
    default: return "(no value)";
  }
}

std::string FormatBasis(const tellonce::v1::Basis& b) {
  if (!b.consent_id().empty()) return absl::StrCat("consent ", b.consent_id());
  if (!b.mandate_id().empty()) {
    return absl::StrCat("mandate ", b.mandate_id(), " (", b.legal_reference(), ")");
  }
  return "none";
}

int Fetch(const Args& args, const Connection& conn) {
  if (absl::Status s = RequireFlags(args, {"citizen", "attributes", "purpose"}); !s.ok()) {
    return Fail(s);
  }
  tellonce::v1::GetAttributesRequest request;
  request.set_request_id(args.Get("request-id", RandomRequestId()));
  request.set_citizen_id(args.Get("citizen"));
  for (absl::string_view a : absl::StrSplit(args.Get("attributes"), ',', absl::SkipEmpty())) {
    request.add_attributes(std::string(a));
  }
  request.set_purpose(args.Get("purpose"));
  grpc::ClientContext context;
  conn.Prepare(&context);
  tellonce::v1::GetAttributesResponse response;
  grpc::Status status = conn.exchange->GetAttributes(&context, request, &response);
  if (!status.ok()) {
    PrintStatusError(status);
    return 1;
  }
  if (args.Has("json")) {
    PrintJson(response);
  } else {
    std::cout << "exchange " << response.exchange_id() << "\n";
    for (const tellonce::v1::AttributeResult& r : response.results()) {
      if (r.code() == tellonce::v1::RESULT_OK) {
        std::cout << "  " << r.name() << " = " << FormatValue(r.value()) << "\n"
                  << "      from " << r.provenance().provider() << " as of "
                  << FormatTime(r.provenance().as_of()) << ", basis " << FormatBasis(r.basis())
                  << "\n";
      } else {
        std::cout << "  " << r.name() << ": refused, " << tellonce::v1::ResultCode_Name(r.code());
        if (!r.detail().empty()) std::cout << " (" << r.detail() << ")";
        std::cout << "\n";
      }
    }
  }
  // Exit 0 only when every attribute was delivered, so scripts can tell.
  for (const tellonce::v1::AttributeResult& r : response.results()) {
    if (r.code() != tellonce::v1::RESULT_OK) return 3;
  }
  return 0;
}

// --- Transparency -----------------------------------------------------------------------

// What a refusal code means, in words a citizen understands.
std::string DescribeCode(tellonce::v1::ResultCode code) {
  switch (code) {
    case tellonce::v1::RESULT_OK:
      return "delivered";
    case tellonce::v1::RESULT_NO_BASIS:
      return "refused: no consent or law allows it";
    case tellonce::v1::RESULT_CONSENT_REVOKED:
      return "refused: the consent was revoked";
    case tellonce::v1::RESULT_CONSENT_EXPIRED:
      return "refused: the consent had expired";
    case tellonce::v1::RESULT_WRONG_PURPOSE:
      return "refused: the consent is for another purpose";
    case tellonce::v1::RESULT_UNKNOWN_ATTRIBUTE:
      return "refused: no such kind of data";
    case tellonce::v1::RESULT_PROVIDER_UNAVAILABLE:
      return "not delivered: the source was unreachable";
    case tellonce::v1::RESULT_NOT_FOUND:
      return "not delivered: the source holds no such record";
    case tellonce::v1::RESULT_DEADLINE_EXCEEDED:
      return "not delivered: the source answered too late";
    case tellonce::v1::RESULT_PROVIDER_ERROR:
      return "not delivered: the source answered wrongly";
    case tellonce::v1::RESULT_CONSENT_USED:
      return "refused: the one-time consent was already used";
    default:
      return "unknown outcome";
  }
}

void PrintAccessEvent(uint64_t index, const tellonce::v1::AccessEvent& e) {
  const bool allowed = e.outcome() == tellonce::v1::AccessEvent::ALLOWED;
  std::cout << "event " << index << "  " << FormatTime(e.at()) << "  "
            << (allowed ? "ALLOWED" : "DENIED") << "\n"
            << "  consumer    " << e.consumer() << "\n"
            << "  provider    " << (e.provider().empty() ? "-" : e.provider()) << "\n"
            << "  attributes  " << absl::StrJoin(e.attributes(), ", ") << "\n"
            << "  purpose     " << e.purpose() << "\n"
            << "  basis       " << FormatBasis(e.basis()) << "\n"
            << "  outcome     " << tellonce::v1::AccessEvent::Outcome_Name(e.outcome()) << ", "
            << DescribeCode(e.code()) << " (" << tellonce::v1::ResultCode_Name(e.code()) << ")\n"
            << "  exchange    " << e.exchange_id() << "\n";
}

int ListAccess(const Args& args, const Connection& conn) {
  if (absl::Status s = RequireFlags(args, {"citizen"}); !s.ok()) return Fail(s);
  tellonce::v1::ListAccessEventsRequest request;
  request.set_citizen_id(args.Get("citizen"));
  if (args.Has("from")) {
    absl::StatusOr<absl::Time> t = ParseTimeFlag("from", args.Get("from"));
    if (!t.ok()) return Fail(t.status());
    *request.mutable_from() = ToTimestamp(*t);
  }
  if (args.Has("to")) {
    absl::StatusOr<absl::Time> t = ParseTimeFlag("to", args.Get("to"));
    if (!t.ok()) return Fail(t.status());
    *request.mutable_to() = ToTimestamp(*t);
  }
  return ListPages<tellonce::v1::ListAccessEventsResponse>(
      args, conn, request,
      [&](grpc::ClientContext* context, const auto& r, auto* response) {
        return conn.transparency->ListAccessEvents(context, r, response);
      },
      [](const tellonce::v1::ListAccessEventsResponse& response) {
        for (const tellonce::v1::LoggedAccessEvent& e : response.events()) {
          PrintAccessEvent(e.index(), e.event());
        }
        return response.events_size();
      },
      "access event(s)");
}

// The broker's public key and SPIFFE id, from --broker-cert.
struct BrokerKey {
  certs::VerifyingKey key;
  std::string issuer;
};

absl::StatusOr<BrokerKey> LoadBrokerKey(const Args& args) {
  if (absl::Status s = RequireFlags(args, {"broker-cert"}); !s.ok()) return s;
  absl::StatusOr<std::string> pem = ReadFileToString(args.Get("broker-cert"));
  if (!pem.ok()) return pem.status();
  absl::StatusOr<certs::VerifyingKey> key = certs::VerifyingKey::FromCertificatePem(*pem);
  if (!key.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--broker-cert: ", key.status().message()));
  }
  absl::StatusOr<certs::SpiffeId> id = certs::CertificateSpiffeId(*pem);
  if (!id.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--broker-cert: ", id.status().message()));
  }
  if (!id->is_broker) {
    return absl::InvalidArgumentError(
        absl::StrCat("--broker-cert: ", id->ToString(), " is not a broker certificate"));
  }
  return BrokerKey{*std::move(key), id->ToString()};
}

// A signed checkpoint saved by `audit checkpoint`, its signature verified.
struct VerifiedCheckpoint {
  tellonce::v1::SignedCheckpoint signed_checkpoint;
  tellonce::v1::Checkpoint checkpoint;
  TreeHead head;
};

absl::StatusOr<VerifiedCheckpoint> ReadCheckpointFile(const std::string& flag,
                                                      const std::string& path,
                                                      const BrokerKey& broker) {
  absl::StatusOr<std::string> bytes = ReadFileToString(path);
  if (!bytes.ok()) return bytes.status();
  VerifiedCheckpoint v;
  if (!v.signed_checkpoint.ParseFromString(*bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " ", path, ": not a signed checkpoint"));
  }
  absl::StatusOr<tellonce::v1::Checkpoint> checkpoint =
      VerifyCheckpoint(v.signed_checkpoint, broker.key, broker.issuer);
  if (!checkpoint.ok()) {
    return absl::Status(checkpoint.status().code(),
                        absl::StrCat("--", flag, " ", path, ": ", checkpoint.status().message()));
  }
  v.checkpoint = *std::move(checkpoint);
  absl::StatusOr<TreeHead> head = ToTreeHead(v.checkpoint);
  if (!head.ok()) return head.status();
  v.head = *head;
  return v;
}

std::string RootHex(const tellonce::v1::Checkpoint& c) {
  absl::StatusOr<certs::Hash> root = certs::HashFromBytes(c.root_hash());
  return root.ok() ? certs::HashToHex(*root) : "(malformed)";
}

// For a check that did not pass: "FAILED: ..." on stdout, exit 1.
int Failed(const std::string& what) {
  std::cout << "FAILED: " << what << "\n";
  return 1;
}

// A checkpoint file that could not be used: a signature that does not verify is a
// failed check; anything else (unreadable file, wrong issuer) an error.
int CheckpointFailure(const absl::Status& status) {
  if (status.code() == absl::StatusCode::kUnauthenticated) {
    return Failed(std::string(status.message()));
  }
  return Fail(status);
}

int AuditCheckpoint(const Args& args) {
  if (absl::Status s = RequireFlags(args, {"out", "broker-cert"}); !s.ok()) return Fail(s);
  absl::StatusOr<BrokerKey> broker = LoadBrokerKey(args);
  if (!broker.ok()) return Fail(broker.status());
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Fail(conn.status());
  tellonce::v1::GetCheckpointRequest request;
  request.set_fresh(args.Has("fresh"));
  grpc::ClientContext context;
  conn->Prepare(&context);
  tellonce::v1::GetCheckpointResponse response;
  grpc::Status status = conn->transparency->GetCheckpoint(&context, request, &response);
  if (!status.ok()) {
    PrintStatusError(status);
    return 1;
  }
  absl::StatusOr<tellonce::v1::Checkpoint> checkpoint =
      VerifyCheckpoint(response.checkpoint(), broker->key, broker->issuer);
  if (!checkpoint.ok()) return Failed(std::string(checkpoint.status().message()));
  std::ofstream out(args.Get("out"), std::ios::binary | std::ios::trunc);
  out << response.checkpoint().SerializeAsString();
  out.close();
  if (!out) return Fail(absl::InternalError(absl::StrCat(args.Get("out"), ": cannot write")));
  if (args.Has("json")) {
    PrintJson(*checkpoint);
    return 0;
  }
  std::cout << "checkpoint OK: signed by " << checkpoint->issuer() << " at "
            << FormatTime(checkpoint->signed_at()) << "\n"
            << "size " << checkpoint->tree_size() << "\n"
            << "root " << RootHex(*checkpoint) << "\n"
            << "saved to " << args.Get("out") << "\n";
  return 0;
}

int ProveInclusion(const Args& args, const BrokerKey& broker) {
  if (absl::Status s = RequireFlags(args, {"index", "checkpoint"}); !s.ok()) return Fail(s);
  uint64_t index = 0;
  if (!absl::SimpleAtoi(args.Get("index"), &index)) {
    return Fail(absl::InvalidArgumentError("--index: must be a non-negative number"));
  }
  absl::StatusOr<VerifiedCheckpoint> cp =
      ReadCheckpointFile("checkpoint", args.Get("checkpoint"), broker);
  if (!cp.ok()) return CheckpointFailure(cp.status());
  if (index >= cp->head.size) {
    return Failed(absl::StrCat("index ", index, " is not covered by the checkpoint (size ",
                               cp->head.size, ")"));
  }
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Fail(conn.status());
  tellonce::v1::GetInclusionProofRequest request;
  request.set_index(index);
  request.set_tree_size(cp->head.size);
  grpc::ClientContext context;
  conn->Prepare(&context);
  tellonce::v1::GetInclusionProofResponse response;
  grpc::Status status = conn->transparency->GetInclusionProof(&context, request, &response);
  if (!status.ok()) {
    PrintStatusError(status);
    return 1;
  }
  if (response.index() != index || response.tree_size() != cp->head.size) {
    return Failed(absl::StrCat("the broker answered for index ", response.index(),
                               " in a tree of size ", response.tree_size()));
  }
  std::vector<certs::Hash> path;
  for (const std::string& node : response.path()) {
    absl::StatusOr<certs::Hash> h = certs::HashFromBytes(node);
    if (!h.ok()) return Failed("the proof holds a node that is not 32 bytes");
    path.push_back(*h);
  }
  absl::Status verified = certs::VerifyInclusion(
      index, cp->head.size, certs::LeafHash(response.event_bytes()), path, cp->head.root);
  if (!verified.ok()) {
    return Failed(absl::StrCat("event ", index, " is not proven in the log of size ", cp->head.size,
                               ": ", verified.message()));
  }
  std::cout << "OK: event " << index << " is in the log of size " << cp->head.size << " signed at "
            << FormatTime(cp->checkpoint.signed_at()) << " (root "
            << certs::HashToHex(cp->head.root) << ")\n";
  tellonce::v1::AccessEvent event;
  if (event.ParseFromString(response.event_bytes())) {
    if (args.Has("json")) {
      PrintJson(event);
    } else {
      PrintAccessEvent(index, event);
    }
  }
  return 0;
}

int ProveConsistency(const Args& args, const BrokerKey& broker) {
  if (absl::Status s = RequireFlags(args, {"old", "new"}); !s.ok()) return Fail(s);
  absl::StatusOr<VerifiedCheckpoint> old_cp = ReadCheckpointFile("old", args.Get("old"), broker);
  if (!old_cp.ok()) return CheckpointFailure(old_cp.status());
  absl::StatusOr<VerifiedCheckpoint> new_cp = ReadCheckpointFile("new", args.Get("new"), broker);
  if (!new_cp.ok()) return CheckpointFailure(new_cp.status());
  const uint64_t old_size = old_cp->head.size;
  const uint64_t new_size = new_cp->head.size;
  if (old_size > new_size) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "--old has size ", old_size, ", larger than --new (", new_size, "): swap them")));
  }
  std::vector<certs::Hash> proof;
  if (old_size != 0 && old_size != new_size) {
    absl::StatusOr<Connection> conn = Connect(args);
    if (!conn.ok()) return Fail(conn.status());
    tellonce::v1::GetConsistencyProofRequest request;
    request.set_old_size(old_size);
    request.set_new_size(new_size);
    grpc::ClientContext context;
    conn->Prepare(&context);
    tellonce::v1::GetConsistencyProofResponse response;
    grpc::Status status = conn->transparency->GetConsistencyProof(&context, request, &response);
    if (!status.ok()) {
      PrintStatusError(status);
      return 1;
    }
    if (response.old_size() != old_size || response.new_size() != new_size) {
      return Failed(absl::StrCat("the broker answered for sizes ", response.old_size(), " and ",
                                 response.new_size()));
    }
    for (const std::string& node : response.proof()) {
      absl::StatusOr<certs::Hash> h = certs::HashFromBytes(node);
      if (!h.ok()) return Failed("the proof holds a node that is not 32 bytes");
      proof.push_back(*h);
    }
  }
  absl::Status verified =
      certs::VerifyConsistency(old_size, new_size, old_cp->head.root, new_cp->head.root, proof);
  if (!verified.ok()) {
    return Failed(absl::StrCat("the log of size ", new_size, " does not extend the log of size ",
                               old_size, ": ", verified.message()));
  }
  std::cout << "OK: the log of size " << new_size << " (signed at "
            << FormatTime(new_cp->checkpoint.signed_at()) << ") extends the log of size "
            << old_size << " (signed at " << FormatTime(old_cp->checkpoint.signed_at()) << ")\n";
  return 0;
}

int AuditProve(const Args& args) {
  absl::StatusOr<BrokerKey> broker = LoadBrokerKey(args);
  if (!broker.ok()) return Fail(broker.status());
  if (args.Has("index")) return ProveInclusion(args, *broker);
  if (args.Has("old") || args.Has("new")) return ProveConsistency(args, *broker);
  return Fail(absl::InvalidArgumentError("--index, or --old and --new: required"));
}

int ExportOnline(const Args& args) {
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Fail(conn.status());
  uint32_t page_size = 0;
  if (args.Has("page-size") && !absl::SimpleAtoi(args.Get("page-size"), &page_size)) {
    return Fail(absl::InvalidArgumentError("--page-size: must be a number"));
  }
  absl::StatusOr<ExportWriter> writer = ExportWriter::Create(args.Get("out"));
  if (!writer.ok()) return Fail(writer.status());
  tellonce::v1::ExportAccessLogRequest request;
  request.set_max_events(page_size);
  tellonce::v1::AccessLogExportHeader header;
  // The first page fixes what the export holds: the events up to its log size that
  // the broker has hashed (it serves only those; later ones go in the next export).
  std::optional<uint64_t> log_size;
  while (!log_size.has_value() || request.start() < *log_size) {
    grpc::ClientContext context;
    conn->Prepare(&context);
    tellonce::v1::ExportAccessLogResponse response;
    grpc::Status status = conn->transparency->ExportAccessLog(&context, request, &response);
    if (!status.ok()) {
      PrintStatusError(status);
      return 1;
    }
    if (!log_size.has_value()) {
      log_size = response.log_size();
      *header.mutable_checkpoints() = response.checkpoints();
    }
    if (response.events_size() == 0) break;
    for (const tellonce::v1::ExportedEvent& e : response.events()) {
      if (e.index() >= *log_size) break;
      if (absl::Status s = writer->Add(e); !s.ok()) return Fail(s);
    }
    const uint64_t next = response.events(response.events_size() - 1).index() + 1;
    if (next <= request.start()) {
      return Fail(absl::InternalError("the broker's export does not advance"));
    }
    request.set_start(next);
  }
  const uint64_t written = writer->count();
  const int checkpoints = header.checkpoints_size();
  if (absl::Status s = writer->Finish(std::move(header)); !s.ok()) return Fail(s);
  std::cout << "exported " << written << " event(s) and " << checkpoints << " checkpoint(s) to "
            << args.Get("out") << "\n";
  return 0;
}

int AuditExport(const Args& args) {
  if (absl::Status s = RequireFlags(args, {"out"}); !s.ok()) return Fail(s);
  if (!args.Has("data-dir")) return ExportOnline(args);
  absl::StatusOr<LogCopy> copy = ReadDataDirectory(args.Get("data-dir"));
  if (!copy.ok()) return Fail(copy.status());
  if (absl::Status s = WriteExportFile(args.Get("out"), *copy); !s.ok()) return Fail(s);
  std::cout << "exported " << copy->events.size() << " event(s) and " << copy->checkpoints.size()
            << " checkpoint(s) to " << args.Get("out") << "\n";
  return 0;
}

int AuditVerify(const Args& args) {
  if (args.Has("data-dir") == args.Has("log")) {
    return Fail(absl::InvalidArgumentError("one of --data-dir and --log: required"));
  }
  if (absl::Status s = RequireFlags(args, {"checkpoint", "broker-cert"}); !s.ok()) return Fail(s);
  absl::StatusOr<BrokerKey> broker = LoadBrokerKey(args);
  if (!broker.ok()) return Fail(broker.status());
  absl::StatusOr<VerifiedCheckpoint> cp =
      ReadCheckpointFile("checkpoint", args.Get("checkpoint"), *broker);
  if (!cp.ok()) return CheckpointFailure(cp.status());
  absl::StatusOr<LogCopy> copy = args.Has("data-dir") ? ReadDataDirectory(args.Get("data-dir"))
                                                      : ReadExportFile(args.Get("log"));
  if (!copy.ok()) return Fail(copy.status());

  std::vector<TreeHead> others;
  int rejected = 0;
  for (const tellonce::v1::SignedCheckpoint& c : copy->checkpoints) {
    absl::StatusOr<tellonce::v1::Checkpoint> parsed =
        VerifyCheckpoint(c, broker->key, broker->issuer);
    absl::StatusOr<TreeHead> head =
        parsed.ok() ? ToTreeHead(*parsed) : absl::StatusOr<TreeHead>(parsed.status());
    if (head.ok()) {
      others.push_back(*head);
    } else {
      ++rejected;
    }
  }
  LogVerdict verdict = VerifyLog(*copy, cp->head, others);
  std::cout << verdict.Summary() << "\n";
  std::cout << "  checkpoint  size " << cp->head.size << ", root "
            << certs::HashToHex(cp->head.root) << ", signed at "
            << FormatTime(cp->checkpoint.signed_at()) << "\n"
            << "  log copy    " << copy->events.size() << " event(s), " << copy->checkpoints.size()
            << " stored checkpoint(s)";
  if (copy->claimed_size != copy->events.size()) {
    std::cout << "; its metadata counts " << copy->claimed_size << " event(s)";
  }
  std::cout << "\n";
  if (verdict.uncovered > 0) {
    std::cout << "  note        " << verdict.uncovered
              << " later event(s) are not covered by this checkpoint\n";
  }
  if (rejected > 0) {
    std::cout << "  warning     " << rejected
              << " stored checkpoint(s) do not verify with the broker certificate\n";
  }
  return verdict.ok ? 0 : 1;
}

}  // namespace

int Publish(const Args& args, const Connection& conn) {
  if (absl::Status s = RequireFlags(args, {"citizen", "event-type", "attributes", "event-id"});
      !s.ok()) {
    return Fail(s);
  }
  tellonce::v1::PublishChangeRequest request;
  request.set_event_id(args.Get("event-id"));
  request.set_citizen_id(args.Get("citizen"));
  request.set_event_type(args.Get("event-type"));
  for (absl::string_view a : absl::StrSplit(args.Get("attributes"), ',', absl::SkipEmpty())) {
    request.add_attributes(std::string(a));
  }
  absl::Time occurred = absl::Now();
  if (args.Has("occurred-at")) {
    absl::StatusOr<absl::Time> t = ParseTimeFlag("occurred-at", args.Get("occurred-at"));
    if (!t.ok()) return Fail(t.status());
    occurred = *t;
  }
  *request.mutable_occurred_at() = ToTimestamp(occurred);
  grpc::ClientContext context;
  conn.Prepare(&context);
  tellonce::v1::PublishChangeResponse response;
  grpc::Status status = conn.notifications->PublishChange(&context, request, &response);
  if (!status.ok()) {
    PrintStatusError(status);
    return 1;
  }
  std::cout << "change " << request.event_id() << " "
            << (response.replayed() ? "was already published: nothing new queued"
                                    : "published: every subscriber with a basis will be told")
            << "\n";
  return 0;
}

void PrintDelivery(const tellonce::v1::Delivery& d) {
  const tellonce::v1::ChangeEvent& e = d.event();
  std::cout << "delivery " << d.delivery_id() << "  " << tellonce::v1::Delivery::State_Name(d.state())
            << "  to " << d.subscriber() << "\n"
            << "  event       " << e.event_type() << " " << e.event_id() << " from " << e.provider()
            << " (" << absl::StrJoin(e.attributes(), ", ") << ")\n"
            << "  citizen     " << e.citizen_id() << "\n"
            << "  attempts    " << d.attempts() << ", next at " << FormatTime(d.next_attempt_at())
            << "\n";
  if (!d.last_error().empty()) std::cout << "  last error  " << d.last_error() << "\n";
}

int ListDeliveries(const Args& args, const Connection& conn) {
  tellonce::v1::ListDeliveriesRequest request;
  request.set_subscriber(args.Get("subscriber"));
  const std::string state = args.Get("state");
  if (state == "pending") {
    request.set_state(tellonce::v1::Delivery::PENDING);
  } else if (state == "dead") {
    request.set_state(tellonce::v1::Delivery::DEAD);
  } else if (!state.empty()) {
    return Fail(absl::InvalidArgumentError("--state: pending or dead"));
  }
  return ListPages<tellonce::v1::ListDeliveriesResponse>(
      args, conn, request,
      [&](grpc::ClientContext* context, const auto& r, auto* response) {
        return conn.deliveries->ListDeliveries(context, r, response);
      },
      [](const tellonce::v1::ListDeliveriesResponse& response) {
        for (const tellonce::v1::Delivery& d : response.deliveries()) PrintDelivery(d);
        return response.deliveries_size();
      },
      "delivery(ies) owed");
}

int RetryDeliveries(const Args& args, const Connection& conn) {
  tellonce::v1::RetryDeliveriesRequest request;
  for (absl::string_view id : absl::StrSplit(args.Get("id"), ',', absl::SkipEmpty())) {
    request.add_delivery_ids(std::string(id));
  }
  request.set_subscriber(args.Get("subscriber"));
  if (request.delivery_ids().empty() && request.subscriber().empty() && !args.Has("all")) {
    return Fail(absl::InvalidArgumentError(
        "--id, --subscriber or --all: say which dead deliveries to re-queue"));
  }
  grpc::ClientContext context;
  conn.Prepare(&context);
  tellonce::v1::RetryDeliveriesResponse response;
  grpc::Status status = conn.deliveries->RetryDeliveries(&context, request, &response);
  if (!status.ok()) {
    PrintStatusError(status);
    return 1;
  }
  std::cout << response.requeued() << " dead delivery(ies) re-queued\n";
  return 0;
}

int RunFetchCommand(const Args& args) {
  if (args.words.size() != 1) return Usage();
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Fail(conn.status());
  return Fetch(args, *conn);
}

int Usage() {
  std::cerr << kUsage;
  return 2;
}

int RunConsentCommand(const Args& args) {
  if (args.words.size() != 2) return Usage();
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Fail(conn.status());
  const std::string& verb = args.words[1];
  if (verb == "grant") return Grant(args, *conn);
  if (verb == "revoke") return Revoke(args, *conn);
  if (verb == "get") return Get(args, *conn);
  if (verb == "list") return List(args, *conn);
  return Usage();
}

int RunReceiptCommand(const Args& args) {
  if (args.words.size() != 2 || args.words[1] != "verify") return Usage();
  if (absl::Status s = RequireFlags(args, {"receipt", "broker-cert"}); !s.ok()) return Fail(s);
  absl::StatusOr<std::string> json = ReadFileToString(args.Get("receipt"));
  if (!json.ok()) return Fail(json.status());
  tellonce::v1::ConsentReceipt receipt;
  if (!google::protobuf::util::JsonStringToMessage(*json, &receipt).ok()) {
    std::cerr << "receipt INVALID: " << args.Get("receipt") << " is not a consent receipt\n";
    return 1;
  }
  absl::StatusOr<std::string> cert_pem = ReadFileToString(args.Get("broker-cert"));
  if (!cert_pem.ok()) return Fail(cert_pem.status());
  absl::StatusOr<certs::VerifyingKey> key = certs::VerifyingKey::FromCertificatePem(*cert_pem);
  if (!key.ok()) return Fail(key.status());
  absl::StatusOr<certs::SpiffeId> signer = certs::CertificateSpiffeId(*cert_pem);
  if (!signer.ok()) return Fail(signer.status());

  if (receipt.signature_algorithm() != certs::kSignatureAlgorithm) {
    std::cerr << "receipt INVALID: unsupported signature algorithm \""
              << receipt.signature_algorithm() << "\"\n";
    return 1;
  }
  if (absl::Status s = key->Verify(receipt.body(), receipt.signature()); !s.ok()) {
    std::cerr << "receipt INVALID: " << s.message() << "\n";
    return 1;
  }
  tellonce::v1::ReceiptBody body;
  if (!body.ParseFromString(receipt.body())) {
    std::cerr << "receipt INVALID: signed body does not parse\n";
    return 1;
  }
  if (!signer->is_broker || body.issuer() != signer->ToString()) {
    std::cerr << "receipt INVALID: issued by " << body.issuer()
              << " but the certificate given is " << signer->ToString() << "\n";
    return 1;
  }
  if (args.Has("json")) {
    PrintJson(body);
    return 0;
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
            << FormatTime(body.expires_at()) << " ("
            << tellonce::v1::ConsentMode_Name(body.mode()) << ")\n"
            << "  collected   " << body.collection_method() << " at "
            << FormatTime(body.collected_at()) << "\n";
  return 0;
}

int RunPublishCommand(const Args& args) {
  if (args.words.size() != 1) return Usage();
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Fail(conn.status());
  return Publish(args, *conn);
}

int RunDeliveriesCommand(const Args& args) {
  if (args.words.size() != 2) return Usage();
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Fail(conn.status());
  if (args.words[1] == "list") return ListDeliveries(args, *conn);
  if (args.words[1] == "retry") return RetryDeliveries(args, *conn);
  return Usage();
}

int RunAccessCommand(const Args& args) {
  if (args.words.size() != 2 || args.words[1] != "list") return Usage();
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Fail(conn.status());
  return ListAccess(args, *conn);
}

int RunAuditCommand(const Args& args) {
  if (args.words.size() != 2) return Usage();
  const std::string& verb = args.words[1];
  if (verb == "checkpoint") return AuditCheckpoint(args);
  if (verb == "prove") return AuditProve(args);
  if (verb == "export") return AuditExport(args);
  if (verb == "verify") return AuditVerify(args);
  return Usage();
}

}  // namespace tellonce::cli
