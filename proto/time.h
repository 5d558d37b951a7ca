#ifndef TELLONCE_PROTO_TIME_H_
#define TELLONCE_PROTO_TIME_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace tellonce {

// The one place where protobuf's time types become abseil's and back.

// google.protobuf.Timestamp <-> absl::Time, to the nanosecond, over the whole range
// of Timestamp (0001-01-01 to 9999-12-31): no int64-nanosecond step, which overflows
// past 2262-04-11. ToProtoTime clamps to that range (infinite times included).
google::protobuf::Timestamp ToProtoTime(absl::Time t);
absl::Time FromProtoTime(const google::protobuf::Timestamp& t);

// True when `t` is within what google.protobuf.Timestamp allows (0001-01-01 to
// 9999-12-31, 0 <= nanos < 1e9). Check before FromProtoTime on client input.
bool IsValidProtoTime(const google::protobuf::Timestamp& t);

// FromProtoTime for client input: INVALID_ARGUMENT "<field>: not a valid timestamp
// (0001-01-01 to 9999-12-31)" when IsValidProtoTime fails.
absl::StatusOr<absl::Time> CheckedFromProtoTime(const google::protobuf::Timestamp& t,
                                                std::string_view field);

// google.protobuf.Duration -> absl::Duration, to the nanosecond.
absl::Duration FromProtoDuration(const google::protobuf::Duration& d);

// True when `d` is within what google.protobuf.Duration allows (+-10,000 years,
// |nanos| < 1e9, nanos of the same sign as seconds). Check before FromProtoDuration on
// input.
bool IsValidProtoDuration(const google::protobuf::Duration& d);

// FromProtoDuration for input: INVALID_ARGUMENT "<field>: not a valid duration" when
// IsValidProtoDuration fails.
absl::StatusOr<absl::Duration> CheckedFromProtoDuration(const google::protobuf::Duration& d,
                                                        std::string_view field);

}  // namespace tellonce

#endif  // TELLONCE_PROTO_TIME_H_
