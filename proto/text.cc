#include "proto/text.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tellonce {
namespace {

// Decodes the code point at text[*pos], advancing *pos. -1 (and one byte) when the
// bytes there are not well-formed UTF-8.
int32_t NextCodePoint(absl::string_view text, size_t* pos) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  const uint8_t b0 = byte(*pos);
  if (b0 < 0x80) {
    ++*pos;
    return b0;
  }
  int length = 0;
  int32_t cp = 0;
  int32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    length = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    length = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    length = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    ++*pos;
    return -1;
  }
  if (*pos + length > text.size()) {
    ++*pos;
    return -1;
  }
  for (int i = 1; i < length; ++i) {
    const uint8_t b = byte(*pos + i);
    if ((b & 0xC0) != 0x80) {
      ++*pos;
      return -1;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++*pos;
    return -1;
  }
  *pos += length;
  return cp;
}

bool IsControl(int32_t cp) { return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F); }

bool IsBidiControl(int32_t cp) {
  return cp == 0x061C || cp == 0x200E || cp == 0x200F || (cp >= 0x202A && cp <= 0x202E) ||
         (cp >= 0x2066 && cp <= 0x2069);
}

}  // namespace

absl::Status CheckCleanText(absl::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    const int32_t cp = NextCodePoint(text, &pos);
    if (cp < 0) return absl::InvalidArgumentError("not valid UTF-8");
    if (IsControl(cp)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("contains a control character (U+%04X)", cp));
    }
    if (IsBidiControl(cp)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("contains a bidirectional control (U+%04X)", cp));
    }
  }
  return absl::OkStatus();
}

namespace {

std::string Escape(absl::string_view text, bool output) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t start = pos;
    const int32_t cp = NextCodePoint(text, &pos);
    if (cp < 0) {
      absl::StrAppend(&out, absl::StrFormat("\\x%02x", static_cast<uint8_t>(text[start])));
    } else if (output && (cp == '\n' || cp == '\t' || cp == '\\')) {
      out += static_cast<char>(cp);
    } else if (cp == '\\') {
      out += "\\\\";
    } else if (cp < 0x20 || cp == 0x7F) {
      absl::StrAppend(&out, absl::StrFormat("\\x%02x", cp));
    } else if (IsControl(cp) || IsBidiControl(cp)) {
      absl::StrAppend(&out, absl::StrFormat("\\u%04x", cp));
    } else {
      out.append(text.data() + start, pos - start);
    }
  }
  return out;
}

}  // namespace

std::string EscapeText(absl::string_view text) { return Escape(text, /*output=*/false); }

std::string EscapeOutputText(absl::string_view text) { return Escape(text, /*output=*/true); }

}  // namespace tellonce
