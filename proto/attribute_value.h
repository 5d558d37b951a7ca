#ifndef TELLONCE_PROTO_ATTRIBUTE_VALUE_H_
#define TELLONCE_PROTO_ATTRIBUTE_VALUE_H_

#include "absl/status/status.h"
#include "tellonce/v1/connector.pb.h"
#include "tellonce/v1/directory.pb.h"

namespace tellonce {

// OK when `value` is a well-formed value of the catalogue type `type`: the member the
// type requires (STRING -> string_value, clean text as CheckCleanText in proto/text.h
// defines it: UTF-8, no control or bidirectional characters; INTEGER -> integer_value,
// DECIMAL ->
// decimal_value "-?[0-9]+(\.[0-9]+)?", DATE -> date_value naming an existing day
// "YYYY-MM-DD", BOOLEAN -> boolean_value). Otherwise INVALID_ARGUMENT with the reason
// ("must be a decimal_value (DECIMAL)"), never quoting the value. Used by connectors
// on their own data and by the broker on every connector answer. Thread-safe.
absl::Status CheckAttributeValue(const tellonce::v1::AttributeValue& value,
                                 tellonce::v1::AttributeType type);

}  // namespace tellonce

#endif  // TELLONCE_PROTO_ATTRIBUTE_VALUE_H_
