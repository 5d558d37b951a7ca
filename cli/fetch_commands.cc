// `tellonce fetch` (ExchangeService, as a consumer).

#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "cli/call.h"
#include "cli/command.h"
#include "tellonce/v1/exchange.grpc.pb.h"

namespace tellonce::cli {
namespace {

// Some attribute was refused or not delivered.
constexpr int kExitPartly = 3;

std::string FormatValue(const tellonce::v1::AttributeValue& v) {
  switch (v.value_case()) {
    case tellonce::v1::AttributeValue::kStringValue:
      return absl::StrCat("\"", v.string_value(), "\"");
    case tellonce::v1::AttributeValue::kIntegerValue:
      return absl::StrCat(v.integer_value());
    case tellonce::v1::AttributeValue::kDecimalValue:
      return v.decimal_value();
    case tellonce::v1::AttributeValue::kDateValue:
      return v.date_value();
    case tellonce::v1::AttributeValue::kBooleanValue:
      return v.boolean_value() ? "true" : "false";
    default:
      return "(no value)";
  }
}

int Fetch(const Args& args) {
  if (absl::Status s = RequireFlags(args, {"citizen", "attributes", "purpose"}); !s.ok()) {
    return Fail(s);
  }
  tellonce::v1::GetAttributesRequest request;
  request.set_request_id(args.Get("request-id", RandomRequestId()));
  request.set_citizen_id(args.Get("citizen"));
  for (const std::string& a : SplitList(args.Get("attributes"))) request.add_attributes(a);
  request.set_purpose(args.Get("purpose"));
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Fail(conn.status());
  tellonce::v1::GetAttributesResponse response;
  if (!Call(*conn, [&](grpc::ClientContext* context) {
        return tellonce::v1::ExchangeService::NewStub(conn->channel)
            ->GetAttributes(context, request, &response);
      })) {
    return kExitFailed;
  }
  if (args.json()) {
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
    if (r.code() != tellonce::v1::RESULT_OK) return kExitPartly;
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> FetchCommands() {
  return {
      {.words = {"fetch"},
       .synopsis = "--citizen ID --attributes A,B --purpose CODE [--request-id ID]",
       .description = "Obtain a citizen's attributes through the broker (as a consumer agency).\n"
                      "Exits 0 when every attribute was delivered, 3 when some were refused.",
       .flags = {{"citizen", "ID", "the citizen's id; required"},
                 {"attributes", "A,B", "the attributes, comma-separated; required"},
                 {"purpose", "CODE", "the purpose code from the directory; required"},
                 {"request-id", "ID", "the request's id, for tracing; default a fresh one"}},
       .run = Fetch},
  };
}

}  // namespace tellonce::cli
