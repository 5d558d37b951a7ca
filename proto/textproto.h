#ifndef TELLONCE_PROTO_TEXTPROTO_H_
#define TELLONCE_PROTO_TEXTPROTO_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"

namespace tellonce {

// Reads a whole file. NOT_FOUND / PERMISSION_DENIED / INTERNAL naming the path.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Parses text-format protobuf `text` into `message` (cleared first). On error returns
// INVALID_ARGUMENT "<source_name>:<line>:<column>: <reason>" for the first problem,
// unknown fields included. Thread-safe.
absl::Status ParseTextProto(const std::string& text, const std::string& source_name,
                            google::protobuf::Message* message);

// ReadFileToString + ParseTextProto with the path as the source name.
absl::Status ParseTextProtoFile(const std::string& path, google::protobuf::Message* message);

}  // namespace tellonce

#endif  // TELLONCE_PROTO_TEXTPROTO_H_
