#ifndef TELLONCE_TESTS_FUZZ_FUZZ_SUPPORT_H_
#define TELLONCE_TESTS_FUZZ_FUZZ_SUPPORT_H_

// What the fuzz harnesses share: a scratch folder per process, the sample directory with
// a fixed identity-provider key, a fixed clock, a byte reader that splits one input into
// several values, and FUZZ_CHECK for invariants (a broken invariant is a finding, like a
// crash). Everything is deterministic so that a corpus file replays the same way in the
// libFuzzer build and in the plain replay build (replay_main.cc).

#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "certs/citizen_assertion.h"
#include "consent/directory.h"
#include "google/protobuf/stubs/logging.h"
#include "proto/textproto.h"

// Aborts, so that libFuzzer records the input, when an invariant does not hold.
#define FUZZ_CHECK(cond)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

// FUZZ_CHECK that also prints `status` (what the entry point answered) when it fails.
#define FUZZ_CHECK_STATUS(cond, status)                                                        \
  do {                                                                                         \
    if (!(cond)) {                                                                             \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n  status: %s\n", __FILE__, __LINE__, \
                   #cond, std::string((status).ToString()).c_str());                           \
      std::abort();                                                                            \
    }                                                                                          \
  } while (0)

namespace tellonce::fuzz {

// Protobuf's parser logs every string field that is not UTF-8; fuzzing makes many.
inline const bool kQuietProtobuf = [] {
  google::protobuf::SetLogHandler(nullptr);
  return true;
}();

// The clock every harness uses: inputs that carry times are written against it.
inline const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

// A file under tests/fuzz/ (keys/...) or the source tree (deploy/...), by the paths
// compiled in.
inline std::string FuzzDataPath(std::string_view relative) {
  return std::string(TELLONCE_FUZZ_DATA_DIR) + "/" + std::string(relative);
}
inline std::string SourcePath(std::string_view relative) {
  return std::string(TELLONCE_SOURCE_DIR) + "/" + std::string(relative);
}

// A folder for this process, created on first use and removed at exit.
inline const std::string& ScratchDir() {
  static const std::string* dir = [] {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "tellonce-fuzz-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) std::abort();
    auto* d = new std::string(pattern);
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(*dir, ignored);
    });
    return d;
  }();
  return *dir;
}

// Writes `data` to ScratchDir()/name (replacing it) and returns the path.
inline std::string WriteScratch(std::string_view name, std::string_view data) {
  std::string path = ScratchDir() + "/" + std::string(name);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  out.close();
  if (!out) std::abort();
  return path;
}

inline std::string ReadOrDie(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) {
    std::fprintf(stderr, "%s\n", text.status().ToString().c_str());
    std::abort();
  }
  return *std::move(text);
}

// The citizen identity provider's fixed signing key (tests/fuzz/keys/idp-es256.key),
// kid "fuzz-idp", so signed tokens in the corpus stay valid.
inline const certs::CitizenAssertionSigner& IdpSigner() {
  static const auto* signer = [] {
    absl::StatusOr<certs::CitizenAssertionSigner> s =
        certs::CitizenAssertionSigner::FromPemFile(FuzzDataPath("keys/idp-es256.key"), "fuzz-idp");
    if (!s.ok()) std::abort();
    return new certs::CitizenAssertionSigner(*std::move(s));
  }();
  return *signer;
}

// deploy/local/directory.textproto with its identity provider's keys replaced by
// IdpSigner()'s. Built once.
inline std::shared_ptr<const consent::Directory> SampleDirectory() {
  static const auto* directory = [] {
    tellonce::v1::Directory proto;
    if (!ParseTextProtoFile(SourcePath("deploy/local/directory.textproto"), &proto).ok()) {
      std::abort();
    }
    const std::string jwks = WriteScratch("sample-jwks.json", IdpSigner().JwksJson());
    for (auto& provider : *proto.mutable_citizen_identity_providers()) {
      provider.set_jwks_file(jwks);
    }
    absl::StatusOr<std::shared_ptr<const consent::Directory>> d =
        consent::Directory::FromProto(std::move(proto), "directory.textproto");
    if (!d.ok()) {
      std::fprintf(stderr, "%s\n", d.status().ToString().c_str());
      std::abort();
    }
    return new std::shared_ptr<const consent::Directory>(*std::move(d));
  }();
  return *directory;
}

// Reads values off the front of a fuzz input; past the end every read yields zeros or
// empty strings, so a harness never needs to check the length.
class Input {
 public:
  Input(const uint8_t* data, size_t size)
      : data_(reinterpret_cast<const char*>(data)), size_(size) {}

  uint8_t Byte() { return pos_ < size_ ? static_cast<uint8_t>(data_[pos_++]) : 0; }
  bool Bool() { return (Byte() & 1) != 0; }
  template <typename T>
  T Integer() {
    T value = 0;
    for (size_t i = 0; i < sizeof(T); ++i) value = static_cast<T>((value << 8) | Byte());
    return value;
  }
  // A string of at most `max` bytes whose length comes from the input (2 bytes).
  std::string String(size_t max) {
    size_t n = Integer<uint16_t>() % (max + 1);
    n = std::min(n, size_ - pos_);
    std::string s(data_ + pos_, n);
    pos_ += n;
    return s;
  }
  // Everything not read yet.
  std::string_view Rest() {
    std::string_view rest(data_ + pos_, size_ - pos_);
    pos_ = size_;
    return rest;
  }
  size_t remaining() const { return size_ - pos_; }

 private:
  const char* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace tellonce::fuzz

#endif  // TELLONCE_TESTS_FUZZ_FUZZ_SUPPORT_H_
