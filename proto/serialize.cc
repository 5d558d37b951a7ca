#include "proto/serialize.h"

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace tellonce {

void SerializeDeterministic(const google::protobuf::MessageLite& message, std::string* out) {
  out->clear();
  google::protobuf::io::StringOutputStream stream(out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  message.SerializeToCodedStream(&coded);
  // The streams trim `out` to what was written when they go, before the caller reads it.
}

std::string SerializeDeterministic(const google::protobuf::MessageLite& message) {
  std::string out;
  SerializeDeterministic(message, &out);
  return out;
}

}  // namespace tellonce
