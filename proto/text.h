#ifndef TELLONCE_PROTO_TEXT_H_
#define TELLONCE_PROTO_TEXT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tellonce {

// The rule for text that crosses agencies (provider strings, names shown to people),
// in one place: valid UTF-8 (no overlong forms, surrogates or code points past
// U+10FFFF), no control characters (C0 including NUL, tab and line breaks, DEL, C1),
// and no bidirectional controls (U+061C, U+200E, U+200F, U+202A..U+202E,
// U+2066..U+2069), which reorder what a reader sees ("Trojan Source").

// OK when `text` follows the rule; otherwise INVALID_ARGUMENT naming the first
// violation ("not valid UTF-8", "contains a control character (U+001B)", "contains a
// bidirectional control (U+202E)"), never quoting the text. Thread-safe.
absl::Status CheckCleanText(absl::string_view text);

// `text` made safe for a terminal: printable ASCII and other allowed characters as
// they are, a backslash as "\\", control characters as "\xHH" (C0, DEL) or "\u0085"
// (C1), bidirectional controls as "\u202e", bytes that are not valid UTF-8 as "\xHH".
std::string EscapeText(absl::string_view text);

// EscapeText for whole lines of program output: as EscapeText, except that line feeds
// and tabs (the program's own layout) and backslashes (JSON's escapes) pass as they
// are. What the broker sends can then neither move the cursor, recolour, clear or
// retitle the terminal, nor reorder what is read (bidi controls print as "\u202e").
std::string EscapeOutputText(absl::string_view text);

}  // namespace tellonce

#endif  // TELLONCE_PROTO_TEXT_H_
