#include "proto/attribute_value.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/civil_time.h"
#include "proto/text.h"

namespace tellonce {
namespace {

using ::tellonce::v1::AttributeType;
using ::tellonce::v1::AttributeValue;

bool AllDigits(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(c)) return false;
  }
  return true;
}

// -?[0-9]+(\.[0-9]+)?
bool IsDecimal(absl::string_view s) {
  if (absl::ConsumePrefix(&s, "-") && s.empty()) return false;
  const size_t dot = s.find('.');
  if (dot == absl::string_view::npos) return AllDigits(s);
  return AllDigits(s.substr(0, dot)) && AllDigits(s.substr(dot + 1));
}

// YYYY-MM-DD naming a day that exists.
bool IsDate(absl::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
  int year = 0, month = 0, day = 0;
  if (!AllDigits(s.substr(0, 4)) || !AllDigits(s.substr(5, 2)) || !AllDigits(s.substr(8, 2)) ||
      !absl::SimpleAtoi(s.substr(0, 4), &year) || !absl::SimpleAtoi(s.substr(5, 2), &month) ||
      !absl::SimpleAtoi(s.substr(8, 2), &day)) {
    return false;
  }
  const absl::CivilDay civil(year, month, day);  // normalizes 02-30 to 03-02
  return civil.year() == year && civil.month() == month && civil.day() == day;
}

}  // namespace

absl::Status CheckAttributeValue(const AttributeValue& value, AttributeType type) {
  auto want = [&](AttributeValue::ValueCase member) {
    if (value.value_case() == member) return absl::OkStatus();
    const std::string member_name = AttributeValue::descriptor()->FindFieldByNumber(member)->name();
    return absl::InvalidArgumentError(
        absl::StrCat("must be a ", member_name, " (", tellonce::v1::AttributeType_Name(type), ")"));
  };
  switch (type) {
    case tellonce::v1::STRING:
      if (absl::Status s = want(AttributeValue::kStringValue); !s.ok()) return s;
      if (absl::Status s = CheckCleanText(value.string_value()); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("string_value: ", s.message()));
      }
      return absl::OkStatus();
    case tellonce::v1::INTEGER:
      return want(AttributeValue::kIntegerValue);
    case tellonce::v1::BOOLEAN:
      return want(AttributeValue::kBooleanValue);
    case tellonce::v1::DECIMAL:
      if (absl::Status s = want(AttributeValue::kDecimalValue); !s.ok()) return s;
      if (!IsDecimal(value.decimal_value())) {
        return absl::InvalidArgumentError("decimal_value: must look like \"1234.56\"");
      }
      return absl::OkStatus();
    case tellonce::v1::DATE:
      if (absl::Status s = want(AttributeValue::kDateValue); !s.ok()) return s;
      if (!IsDate(value.date_value())) {
        return absl::InvalidArgumentError("date_value: must be an existing date, YYYY-MM-DD");
      }
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError("attribute type unspecified");
  }
}

}  // namespace tellonce
