#include "cli/escaping_output.h"

#include "proto/text.h"

namespace tellonce::cli {

void EscapingStreambuf::FlushLine() {
  if (line_.empty()) return;
  const std::string escaped = EscapeOutputText(line_);
  out_->sputn(escaped.data(), static_cast<std::streamsize>(escaped.size()));
  line_.clear();
}

EscapingStreambuf::int_type EscapingStreambuf::overflow(int_type c) {
  if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
  line_.push_back(traits_type::to_char_type(c));
  if (c == '\n') FlushLine();
  return c;
}

std::streamsize EscapingStreambuf::xsputn(const char* s, std::streamsize n) {
  for (std::streamsize i = 0; i < n; ++i) {
    line_.push_back(s[i]);
    if (s[i] == '\n') FlushLine();
  }
  return n;
}

int EscapingStreambuf::sync() {
  FlushLine();
  return out_->pubsync();
}

}  // namespace tellonce::cli
