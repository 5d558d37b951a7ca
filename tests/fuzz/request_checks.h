#ifndef TELLONCE_TESTS_FUZZ_REQUEST_CHECKS_H_
#define TELLONCE_TESTS_FUZZ_REQUEST_CHECKS_H_

// Invariants every request validator promises, shared by the request harnesses: a
// refusal is INVALID_ARGUMENT (or PERMISSION_DENIED where the contract says so) of the
// form "<field>: <reason>", and never echoes a citizen id.

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "google/protobuf/message.h"
#include "tests/fuzz/fuzz_support.h"

namespace tellonce::fuzz {

// True for what looks like a real citizen id: at least 8 characters, all digits (the
// sample directory's ids are 11 digits). Shorter or other strings may appear in an
// error message by coincidence ("at most 256 bytes").
inline bool LooksLikeCitizenId(std::string_view id) {
  if (id.size() < 8) return false;
  for (char c : id) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// How often `needle` occurs in `haystack`.
inline size_t Occurrences(std::string_view haystack, std::string_view needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string_view::npos;
       at = haystack.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

// `message` without its quoted parts ("..." with \" escapes): the values a refusal
// echoes from other fields (an attribute name, say), which are not citizen data even
// when, by the fuzzer's design, they hold the citizen id's digits (escaped or not).
inline std::string Unquoted(std::string_view message) {
  std::string out;
  bool quoted = false;
  for (size_t i = 0; i < message.size(); ++i) {
    const char c = message[i];
    if (quoted && c == '\\') {
      ++i;  // an escaped character, the quote included
      continue;
    }
    if (c == '"') {
      quoted = !quoted;
      continue;
    }
    if (!quoted) out.push_back(c);
  }
  return out;
}

// `request`, when given, is the request the refusal is about: a citizen id that also
// appears inside another of its fields (an attribute name, say) may be echoed as part of
// that field's value, which is not citizen data. A refusal about citizen_id itself may
// not echo it anywhere.
inline void CheckRefusal(const absl::Status& status, std::string_view citizen_id,
                         const google::protobuf::Message* request = nullptr) {
  FUZZ_CHECK(!status.ok());
  FUZZ_CHECK_STATUS(status.code() == absl::StatusCode::kInvalidArgument ||
                        status.code() == absl::StatusCode::kPermissionDenied,
                    status);
  const std::string_view message(status.message().data(), status.message().size());
  // "<field>: <reason>": a field name first.
  const size_t colon = message.find(": ");
  FUZZ_CHECK_STATUS(colon != std::string_view::npos && colon > 0, status);
  const bool elsewhere =
      request != nullptr && Occurrences(request->SerializeAsString(), citizen_id) > 1;
  if (LooksLikeCitizenId(citizen_id)) {
    if (message.rfind("citizen_id", 0) == 0 || !elsewhere) {
      FUZZ_CHECK_STATUS(Unquoted(message).find(citizen_id) == std::string::npos, status);
    }
    if (message.rfind("citizen_id", 0) == 0) {
      FUZZ_CHECK_STATUS(message.find(citizen_id) == std::string_view::npos, status);
    }
  }
}

}  // namespace tellonce::fuzz

#endif  // TELLONCE_TESTS_FUZZ_REQUEST_CHECKS_H_
