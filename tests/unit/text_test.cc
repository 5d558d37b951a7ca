// Clean text (proto/text.h) and the CLI's escaped output (cli/escaping_output.h):
// what the broker accepts from providers and what `tellonce` prints (issue 13).

#include "proto/text.h"

#include <sstream>
#include <string>

#include "cli/escaping_output.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tellonce {
namespace {

using ::testing::HasSubstr;

TEST(CleanTextTest, AcceptsPrintableUnicode) {
  EXPECT_TRUE(CheckCleanText("").ok());
  EXPECT_TRUE(CheckCleanText("EE38 2200 2210 2012 3456").ok());
  EXPECT_TRUE(CheckCleanText("J\xc3\xb5"
                             "e t\xc3\xa4nav 5, \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x98\x80")
                  .ok());
}

TEST(CleanTextTest, RefusesControlsBidiAndBrokenUtf8NamingTheRule) {
  const std::pair<std::string, std::string> cases[] = {
      {std::string("a\0b", 3), "control character (U+0000)"},
      {"a\tb", "control character (U+0009)"},
      {"a\nb", "control character (U+000A)"},
      {"a\x1b[31mb", "control character (U+001B)"},
      {"a\x7f", "control character (U+007F)"},
      {"a\xc2\x9b", "control character (U+009B)"},
      {"a\xe2\x80\xae", "bidirectional control (U+202E)"},
      {"a\xe2\x81\xa9", "bidirectional control (U+2069)"},
      {"a\xe2\x80\x8f", "bidirectional control (U+200F)"},
      {"a\xd8\x9c", "bidirectional control (U+061C)"},
      {"a\xc3", "not valid UTF-8"},
      {"a\xc0\x80", "not valid UTF-8"},
      {"a\xed\xb0\x80", "not valid UTF-8"},
      {"a\xf4\x90\x80\x80", "not valid UTF-8"},
      {"a\xff", "not valid UTF-8"},
  };
  for (const auto& [text, reason] : cases) {
    absl::Status s = CheckCleanText(text);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << reason;
    EXPECT_THAT(std::string(s.message()), HasSubstr(reason));
  }
}

TEST(EscapeTextTest, EscapesWhatATerminalWouldObey) {
  EXPECT_EQ(EscapeText("plain \xc3\xa4"), "plain \xc3\xa4");
  EXPECT_EQ(EscapeText("\x1b[2J"), "\\x1b[2J");
  EXPECT_EQ(EscapeText("a\xe2\x80\xae"
                       "b"),
            "a\\u202eb");
  EXPECT_EQ(EscapeText("a\xc2\x85"), "a\\u0085");
  EXPECT_EQ(EscapeText("a\xc3("), "a\\xc3(");
  EXPECT_EQ(EscapeText("a\\b\n"), "a\\\\b\\x0a");
  EXPECT_EQ(EscapeOutputText("a\\b\tc\n"), "a\\b\tc\n");
  EXPECT_EQ(EscapeOutputText("x\x1b]0;title\x07\n"), "x\\x1b]0;title\\x07\n");
}

TEST(EscapedOutputTest, EverythingPrintedThroughTheStreamIsEscapedLineByLine) {
  std::ostringstream sink;
  {
    cli::EscapedOutput escaped(sink);
    sink << "value: "
         << "EE00\x1b[2J"
         << "\n";
    sink << "name: "
         << "\xe2\x80\xae"
            "evil"
         << "\n";
    // A UTF-8 sequence split across two writes is still whole on the line.
    sink << "\xc3"
         << "\xa4"
         << "\n";
    sink << "no newline at the end";
  }
  EXPECT_EQ(sink.str(), "value: EE00\\x1b[2J\nname: \\u202eevil\n\xc3\xa4\nno newline at the end");
}

}  // namespace
}  // namespace tellonce
