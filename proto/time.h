#ifndef TELLONCE_PROTO_TIME_H_
#define TELLONCE_PROTO_TIME_H_

#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"

namespace tellonce {

// google.protobuf.Timestamp <-> absl::Time, to the nanosecond.
google::protobuf::Timestamp ToProtoTime(absl::Time t);
absl::Time FromProtoTime(const google::protobuf::Timestamp& t);

// True when `t` is within what google.protobuf.Timestamp allows (0001-01-01 to
// 9999-12-31, 0 <= nanos < 1e9). Check before FromProtoTime on client input.
bool IsValidProtoTime(const google::protobuf::Timestamp& t);

}  // namespace tellonce

#endif  // TELLONCE_PROTO_TIME_H_
