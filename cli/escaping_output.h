#ifndef TELLONCE_CLI_ESCAPING_OUTPUT_H_
#define TELLONCE_CLI_ESCAPING_OUTPUT_H_

#include <ostream>
#include <streambuf>
#include <string>

namespace tellonce::cli {

// Everything `tellonce` prints passes through here, so that no string from the broker
// (a provider's value, a refusal's detail, an error message) reaches the terminal raw:
// each line is written through EscapeOutputText (proto/text.h), which prints control
// characters as "\x1b", bidirectional controls as "\u202e" and bytes that are not
// UTF-8 as "\xHH", and leaves the CLI's own layout (line feeds, tabs) and JSON's
// backslash escapes alone. Lines are held until their '\n' (or a flush), so a UTF-8
// sequence is never split. Not thread-safe (the CLI prints from one thread).
class EscapingStreambuf final : public std::streambuf {
 public:
  // `out` is not owned and must outlive this buffer.
  explicit EscapingStreambuf(std::streambuf* out) : out_(out) {}
  ~EscapingStreambuf() override { sync(); }

 protected:
  int_type overflow(int_type c) override;
  std::streamsize xsputn(const char* s, std::streamsize n) override;
  int sync() override;

 private:
  void FlushLine();

  std::streambuf* out_;
  std::string line_;
};

// Installs an EscapingStreambuf on `stream` for as long as it lives; restores the
// stream's own buffer (after flushing) on destruction.
class EscapedOutput {
 public:
  explicit EscapedOutput(std::ostream& stream)
      : stream_(stream), buffer_(stream.rdbuf()), previous_(stream.rdbuf(&buffer_)) {}
  ~EscapedOutput() {
    stream_.flush();
    stream_.rdbuf(previous_);
  }
  EscapedOutput(const EscapedOutput&) = delete;
  EscapedOutput& operator=(const EscapedOutput&) = delete;

 private:
  std::ostream& stream_;
  EscapingStreambuf buffer_;
  std::streambuf* previous_;
};

}  // namespace tellonce::cli

#endif  // TELLONCE_CLI_ESCAPING_OUTPUT_H_
