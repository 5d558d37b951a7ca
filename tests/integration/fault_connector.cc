// fault_connector: a connector that misbehaves on purpose, to test that the broker
// checks every provider's answer (DESIGN.md, flow 2: "checks that each answer holds
// only what was asked, with the catalogue's type").
//
//   fault_connector --config FILE [--port-file FILE]
//
// FILE is an ordinary ConnectorConfig; it is started with another agency's certificate
// (the bank's, in the tests), so the broker takes it for that agency's connector. Its
// data_file is not records but a text file whose first word is the misbehaviour, read
// once at start-up:
//
//   ok               the right answer: decimal_value "100.00" for a DECIMAL attribute,
//                    string_value "EE00TEST" for any other
//   extra-attribute  the right answer plus one attribute that was not asked
//                    (person.address, a string)
//   wrong-type       integer_value 100 for every attribute (the catalogue says STRING
//                    or DECIMAL)
//   oversize         string and decimal values of 100,000 bytes
//   duplicate        every asked attribute twice
//   string:KIND      as ok, but every STRING value is hostile text: KIND is nul, escape
//                    (ESC [2J), del, c1 (U+0085), bidi (U+202E), isolate (U+2066), lrm
//                    (U+200E), alm (U+061C), invalid-utf8, overlong (C0 AF), surrogate
//                    (ED A0 80), or unicode (clean non-ASCII text, which must pass)
//   as-of:KIND       as ok, but as_of is future (an hour ahead), ancient (1800-01-01) or
//                    invalid (past 9999-12-31)

#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "connectors/examples/agency.h"
#include "connectors/sdk.h"
#include "google/protobuf/util/time_util.h"
#include "proto/textproto.h"

namespace tellonce::testing {
namespace {

using ::tellonce::connectors::AttributeSource;
using ::tellonce::connectors::ConnectorOptions;
using ::tellonce::connectors::FetchContext;
using ::tellonce::v1::FetchAttributesResponse;
using ::tellonce::v1::FetchedAttribute;

enum class Mode { kOk, kExtraAttribute, kWrongType, kOversize, kDuplicate, kString, kAsOf };

// The hostile STRING values of the string:KIND modes.
const std::map<std::string, std::string>& HostileStrings() {
  static const auto* strings = new std::map<std::string, std::string>{
      {"nul", std::string("EE00\0TEST", 9)},
      {"escape", "EE00\x1b[2JTEST"},
      {"del", "EE00\x7fTEST"},
      {"c1", "EE00\xc2\x85TEST"},
      {"bidi", "EE00\xe2\x80\xaeTSET"},
      {"isolate", "EE00\xe2\x81\xa6TEST"},
      {"lrm", "EE00\xe2\x80\x8eTEST"},
      {"alm", "EE00\xd8\x9cTEST"},
      {"invalid-utf8", "EE00\xc3\x28TEST"},
      {"overlong", "EE00\xc0\xafTEST"},
      {"surrogate", "EE00\xed\xa0\x80TEST"},
      {"unicode",
       "J\xc3\xb5"
       "e t\xc3\xa4nav 5, \xe6\x9d\xb1\xe4\xba\xac"},
  };
  return *strings;
}

constexpr size_t kOversizeBytes = 100'000;

absl::StatusOr<Mode> ParseMode(const std::string& word) {
  if (word == "ok") return Mode::kOk;
  if (word.rfind("string:", 0) == 0 && HostileStrings().count(word.substr(7)) > 0) {
    return Mode::kString;
  }
  if (word == "as-of:future" || word == "as-of:ancient" || word == "as-of:invalid") {
    return Mode::kAsOf;
  }
  if (word == "extra-attribute") return Mode::kExtraAttribute;
  if (word == "wrong-type") return Mode::kWrongType;
  if (word == "oversize") return Mode::kOversize;
  if (word == "duplicate") return Mode::kDuplicate;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown mode \"", word,
      "\"; one of ok, extra-attribute, wrong-type, oversize, duplicate, string:KIND, as-of:KIND"));
}

// The catalogue's DECIMAL attributes among those this connector may be asked for (the
// sample directory's); every other attribute is treated as a STRING.
bool IsDecimalAttribute(const std::string& name) {
  return name == "bank.interest_paid" || name == "tax.annual_income";
}

// Answers every fetch of a known citizen the way its mode says; thread-safe (immutable).
class FaultSource final : public AttributeSource {
 public:
  FaultSource(Mode mode, std::string word) : mode_(mode), word_(std::move(word)) {}

  absl::StatusOr<FetchAttributesResponse> Fetch(const FetchContext& ctx) override {
    FetchAttributesResponse response;
    for (const std::string& name : ctx.attributes) {
      const int copies = mode_ == Mode::kDuplicate ? 2 : 1;
      for (int i = 0; i < copies; ++i) Answer(name, response.add_attributes());
    }
    if (mode_ == Mode::kExtraAttribute) {
      const absl::flat_hash_set<std::string> asked(ctx.attributes.begin(), ctx.attributes.end());
      for (const char* unasked : {"person.address", "person.name", "bank.account_iban"}) {
        if (asked.contains(unasked)) continue;
        FetchedAttribute* extra = response.add_attributes();
        extra->set_name(unasked);
        extra->mutable_value()->set_string_value("Fault Street 1, 00000 Nowhere");
        break;
      }
    }
    *response.mutable_as_of() =
        google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(absl::Now()));
    if (word_ == "as-of:future") {
      response.mutable_as_of()->set_seconds(absl::ToUnixSeconds(absl::Now() + absl::Hours(1)));
    } else if (word_ == "as-of:ancient") {
      response.mutable_as_of()->set_seconds(-5364662400);  // 1800-01-01
    } else if (word_ == "as-of:invalid") {
      response.mutable_as_of()->set_seconds(253402300800);  // 10000-01-01
    }
    return response;
  }

 private:
  void Answer(const std::string& name, FetchedAttribute* out) const {
    out->set_name(name);
    tellonce::v1::AttributeValue* value = out->mutable_value();
    const bool decimal = IsDecimalAttribute(name);
    switch (mode_) {
      case Mode::kWrongType:
        value->set_integer_value(100);
        return;
      case Mode::kOversize:
        if (decimal) {
          // Still a well-formed decimal: only its size is wrong.
          value->set_decimal_value(std::string(kOversizeBytes - 3, '9') + ".00");
        } else {
          value->set_string_value(std::string(kOversizeBytes, 'A'));
        }
        return;
      case Mode::kString:
        if (decimal) {
          value->set_decimal_value("100.00");
        } else {
          value->set_string_value(HostileStrings().at(word_.substr(7)));
        }
        return;
      case Mode::kOk:
      case Mode::kExtraAttribute:
      case Mode::kDuplicate:
      case Mode::kAsOf:
        if (decimal) {
          value->set_decimal_value("100.00");
        } else {
          value->set_string_value("EE00TEST");
        }
        return;
    }
  }

  const Mode mode_;
  const std::string word_;
};

absl::StatusOr<std::unique_ptr<AttributeSource>> MakeFaultSource(const ConnectorOptions& options,
                                                                 std::string* serves) {
  if (options.data_file.empty()) {
    return absl::InvalidArgumentError("data_file: required (a file naming the mode)");
  }
  absl::StatusOr<std::string> text = ReadFileToString(options.data_file);
  if (!text.ok())
    return absl::Status(text.status().code(), absl::StrCat("data_file: ", text.status().message()));
  std::istringstream in(*text);
  std::string word;
  in >> word;
  absl::StatusOr<Mode> mode = ParseMode(word);
  if (!mode.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("data_file: ", options.data_file, ": ", mode.status().message()));
  }
  *serves = absl::StrCat("misbehaving on purpose, mode ", word);
  return std::make_unique<FaultSource>(*mode, word);
}

}  // namespace
}  // namespace tellonce::testing

int main(int argc, char** argv) {
  return tellonce::connectors::examples::RunConnector(
      "fault_connector", "Fault-injecting test connector", tellonce::testing::MakeFaultSource, argc,
      argv);
}
