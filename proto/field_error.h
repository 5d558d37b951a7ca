#ifndef TELLONCE_PROTO_FIELD_ERROR_H_
#define TELLONCE_PROTO_FIELD_ERROR_H_

#include <string_view>

#include "absl/status/status.h"

namespace tellonce {

// INVALID_ARGUMENT "<field>: <reason>", the form of every field error tellonce returns
// to a client (broker, connector SDK), e.g. "expires_at: must be after valid_from". The
// reason must not quote citizen data.
absl::Status InvalidField(std::string_view field, std::string_view reason);

}  // namespace tellonce

#endif  // TELLONCE_PROTO_FIELD_ERROR_H_
