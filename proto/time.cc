#include "proto/time.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"

namespace tellonce {

using google::protobuf::util::TimeUtil;

google::protobuf::Timestamp ToProtoTime(absl::Time t) {
  google::protobuf::Timestamp out;
  const absl::Time min = absl::FromUnixSeconds(TimeUtil::kTimestampMinSeconds);
  const absl::Time max =
      absl::FromUnixSeconds(TimeUtil::kTimestampMaxSeconds) + absl::Nanoseconds(999'999'999);
  if (t <= min) {
    out.set_seconds(TimeUtil::kTimestampMinSeconds);
    return out;
  }
  if (t >= max) {
    out.set_seconds(TimeUtil::kTimestampMaxSeconds);
    out.set_nanos(999'999'999);
    return out;
  }
  // ToUnixSeconds rounds toward negative infinity, so the rest is in [0, 1 s).
  const int64_t seconds = absl::ToUnixSeconds(t);
  out.set_seconds(seconds);
  out.set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(seconds))));
  return out;
}

absl::Time FromProtoTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

bool IsValidProtoTime(const google::protobuf::Timestamp& t) {
  return t.seconds() >= TimeUtil::kTimestampMinSeconds &&
         t.seconds() <= TimeUtil::kTimestampMaxSeconds && t.nanos() >= 0 &&
         t.nanos() <= 999'999'999;
}

absl::StatusOr<absl::Time> CheckedFromProtoTime(const google::protobuf::Timestamp& t,
                                                std::string_view field) {
  if (!IsValidProtoTime(t)) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(field), ": not a valid timestamp (0001-01-01 to 9999-12-31)"));
  }
  return FromProtoTime(t);
}

absl::Duration FromProtoDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

bool IsValidProtoDuration(const google::protobuf::Duration& d) {
  return d.seconds() >= TimeUtil::kDurationMinSeconds &&
         d.seconds() <= TimeUtil::kDurationMaxSeconds && d.nanos() > -1'000'000'000 &&
         d.nanos() < 1'000'000'000 && !(d.seconds() > 0 && d.nanos() < 0) &&
         !(d.seconds() < 0 && d.nanos() > 0);
}

absl::StatusOr<absl::Duration> CheckedFromProtoDuration(const google::protobuf::Duration& d,
                                                        std::string_view field) {
  if (!IsValidProtoDuration(d)) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(field), ": not a valid duration"));
  }
  return FromProtoDuration(d);
}

}  // namespace tellonce
