#ifndef TELLONCE_PROTO_SERIALIZE_H_
#define TELLONCE_PROTO_SERIALIZE_H_

#include <string>

#include "google/protobuf/message_lite.h"

namespace tellonce {

// The bytes of `message` in protobuf's deterministic serialization (map entries
// ordered by key), for every byte string that is signed, hashed or compared: receipt
// and checkpoint bodies, request fingerprints, access-log leaves. Deterministic for one
// build of the protobuf library; not a canonical form across languages or versions,
// so what was signed is always kept as the bytes, never re-serialized. Thread-safe.
std::string SerializeDeterministic(const google::protobuf::MessageLite& message);
// The same into `*out`, replacing what it held (its capacity is reused: for loops).
void SerializeDeterministic(const google::protobuf::MessageLite& message, std::string* out);

}  // namespace tellonce

#endif  // TELLONCE_PROTO_SERIALIZE_H_
