#include "cli/call.h"

#include <unistd.h>

#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "certs/citizen_assertion.h"
#include "certs/identity.h"
#include "certs/signing.h"
#include "certs/tls.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/create_channel.h"
#include "proto/textproto.h"
#include "proto/time.h"

namespace tellonce::cli {

const std::vector<ops::FlagSpec>& ConnectionFlags() {
  static const auto* flags = new std::vector<ops::FlagSpec>{
      {"broker", "HOST:PORT", "broker address [TELLONCE_BROKER]; default 127.0.0.1:7443"},
      {"ca", "FILE", "federation CA bundle [TELLONCE_CA]; required"},
      {"cert", "FILE", "this agency's certificate [TELLONCE_CERT]; required"},
      {"key", "FILE", "this agency's private key [TELLONCE_KEY]; required"},
      {"broker-id", "URI", "the broker's SPIFFE id; default spiffe://<your trust domain>/broker"},
      {"timeout", "SECONDS", "per-call deadline; default 10"},
  };
  return *flags;
}

std::vector<ops::FlagSpec> CitizenAssertionFlags() {
  return {
      {"citizen-assertion", "TOKEN",
       "the citizen's ID token from their identity provider, forwarded by a portal "
       "[TELLONCE_CITIZEN_ASSERTION]"},
      {"dev-idp-key", "FILE",
       "development only: mint the citizen's ID token with this identity provider key "
       "(idp/dev-idp.key from certs/make-dev-pki) [TELLONCE_DEV_IDP_KEY]"},
      {"dev-idp-issuer", "URL", std::string("issuer of a minted token; default ") + kDevIdpIssuer},
      {"dev-idp-audience", "CLIENT",
       std::string("audience of a minted token (the portal's client id); default ") +
           kDevIdpAudience}};
}

absl::StatusOr<std::string> CitizenAssertionFor(const Args& args, const std::string& citizen_id) {
  std::string token = args.Get("citizen-assertion", "", "TELLONCE_CITIZEN_ASSERTION");
  if (!token.empty()) return token;
  const std::string key = args.Get("dev-idp-key", "", "TELLONCE_DEV_IDP_KEY");
  if (key.empty()) return std::string();
  absl::StatusOr<certs::CitizenAssertionSigner> signer =
      certs::CitizenAssertionSigner::FromPemFile(key);
  if (!signer.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--dev-idp-key: ", signer.status().message()));
  }
  certs::CitizenAssertionClaims claims;
  claims.issuer = args.Get("dev-idp-issuer", kDevIdpIssuer);
  claims.audience = args.Get("dev-idp-audience", kDevIdpAudience);
  claims.citizen_id = citizen_id;
  claims.issued_at = absl::Now();
  return signer->Mint(claims);
}

void AddCitizenAssertion(grpc::ClientContext* context, const std::string& token) {
  if (!token.empty()) context->AddMetadata(certs::kCitizenAssertionMetadataKey, token);
}

std::vector<ops::FlagSpec> PagingFlags() {
  return {{"page-size", "N", "items per page; default the broker's"},
          {"page-token", "T", "continue from a previous page's token"},
          {"all", "", "fetch every page, not only the first"}};
}

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
  return Connection{
      grpc::CreateChannel(args.Get("broker", "127.0.0.1:7443", "TELLONCE_BROKER"), *creds),
      absl::Seconds(timeout_s)};
}

bool Call(const Connection& conn, const std::function<grpc::Status(grpc::ClientContext*)>& call) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + conn.timeout));
  grpc::Status status = call(&context);
  if (!status.ok()) PrintStatusError(status);
  return status.ok();
}

void PrintStatusError(const grpc::Status& status) {
  std::cerr << "error: " << status.error_code() << " (" <<
      [&] {
        switch (status.error_code()) {
          case grpc::INVALID_ARGUMENT:
            return "INVALID_ARGUMENT";
          case grpc::NOT_FOUND:
            return "NOT_FOUND";
          case grpc::PERMISSION_DENIED:
            return "PERMISSION_DENIED";
          case grpc::UNAUTHENTICATED:
            return "UNAUTHENTICATED";
          case grpc::FAILED_PRECONDITION:
            return "FAILED_PRECONDITION";
          case grpc::UNAVAILABLE:
            return "UNAVAILABLE";
          case grpc::DEADLINE_EXCEEDED:
            return "DEADLINE_EXCEEDED";
          case grpc::RESOURCE_EXHAUSTED:
            return "RESOURCE_EXHAUSTED";
          case grpc::UNIMPLEMENTED:
            return "UNIMPLEMENTED";
          default:
            return "ERROR";
        }
      }()
            << "): " << status.error_message() << "\n";
}

int Fail(const absl::Status& status) {
  std::cerr << "error: " << status.message() << "\n";
  return status.code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitFailed;
}

absl::Status RequireFlags(const Args& args, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (!args.Has(name)) return absl::InvalidArgumentError(absl::StrCat("--", name, ": required"));
  }
  return absl::OkStatus();
}

absl::StatusOr<certs::VerifyingKeySet> LoadSigningKeys(const Args& args) {
  if (absl::Status s = RequireFlags(args, {"signing-keys"}); !s.ok()) return s;
  absl::StatusOr<certs::VerifyingKeySet> keys =
      certs::VerifyingKeySet::FromDirectory(args.Get("signing-keys"));
  if (!keys.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--signing-keys: ", keys.status().message()));
  }
  return keys;
}

ops::FlagSpec SigningKeysFlag() {
  return {"signing-keys", "DIR",
          "the broker's public signing keys, one <key_id>.pem each (make-dev-pki writes "
          "signing-keys/); every key listed is trusted, so keep old ones while rotating; "
          "required"};
}

int ParsePageSize(const Args& args, int* page_size) {
  if (args.Has("page-size") && !absl::SimpleAtoi(args.Get("page-size"), page_size)) {
    return Fail(absl::InvalidArgumentError("--page-size: must be a number"));
  }
  return kExitOk;
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

absl::StatusOr<absl::Duration> ParseDurationFlag(const std::string& flag, const std::string& text) {
  int64_t days = 0;
  if (!text.empty() && text.back() == 'd' &&
      absl::SimpleAtoi(text.substr(0, text.size() - 1), &days)) {
    return absl::Hours(24 * days);
  }
  absl::Duration d;
  if (!absl::ParseDuration(text, &d)) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, ": not a duration (e.g. 90d, 12h)"));
  }
  return d;
}

std::vector<std::string> SplitList(const std::string& text) {
  return absl::StrSplit(text, ',', absl::SkipEmpty());
}

std::string RandomRequestId() {
  return absl::StrCat("cli-", absl::ToUnixNanos(absl::Now()), "-", getpid());
}

std::string FormatUtc(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

std::string FormatTime(const google::protobuf::Timestamp& t) { return FormatUtc(FromProtoTime(t)); }

std::string HumanDuration(absl::Duration d) {
  if (d < absl::ZeroDuration()) d = -d;
  const int64_t s = absl::ToInt64Seconds(d);
  const int64_t days = s / 86400, hours = s % 86400 / 3600, minutes = s % 3600 / 60;
  if (days > 0) return absl::StrCat(days, "d", hours, "h");
  if (hours > 0) return absl::StrCat(hours, "h", minutes, "m");
  if (minutes > 0) return absl::StrCat(minutes, "m", s % 60, "s");
  return absl::StrCat(s, "s");
}

std::string FormatBasis(const tellonce::v1::Basis& b) {
  if (!b.consent_id().empty()) return absl::StrCat("consent ", b.consent_id());
  if (!b.mandate_id().empty()) {
    return absl::StrCat("mandate ", b.mandate_id(), " (", b.legal_reference(), ")");
  }
  return "none";
}

void PrintJson(const google::protobuf::Message& message, bool all_fields) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = all_fields;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  std::cout << json;
}

std::string MessageJson(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(message, &json, options).ok()) return "null";
  return json;
}

namespace {

std::string Quote(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          absl::StrAppend(&out, "\\u00", absl::Hex(c, absl::kZeroPad2));
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

}  // namespace

JsonObject& JsonObject::Add(const std::string& key, const std::string& value) {
  fields_.emplace_back(key, Quote(value));
  return *this;
}

JsonObject& JsonObject::Add(const std::string& key, uint64_t value) {
  fields_.emplace_back(key, absl::StrCat(value));
  return *this;
}

JsonObject& JsonObject::Add(const std::string& key, bool value) {
  fields_.emplace_back(key, value ? "true" : "false");
  return *this;
}

JsonObject& JsonObject::AddRaw(const std::string& key, const std::string& json) {
  fields_.emplace_back(key, json);
  return *this;
}

std::string JsonObject::ToString() const {
  std::string out = "{";
  for (size_t i = 0; i < fields_.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "" : ", ", Quote(fields_[i].first), ": ", fields_[i].second);
  }
  return out + "}";
}

void JsonObject::Print() const { std::cout << ToString() << "\n"; }

}  // namespace tellonce::cli
