#include "proto/identifiers.h"

#include <algorithm>

namespace tellonce {
namespace {

constexpr size_t kMaxAgencyIdLength = 63;
constexpr size_t kMaxUpperCodeLength = 64;
constexpr size_t kMaxTrustDomainLength = 255;
constexpr size_t kMaxDnsLabelLength = 63;
constexpr size_t kMaxHostLength = 253;

bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLowerAlnum(char c) { return IsLower(c) || IsDigit(c); }
bool IsHexDigit(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// The parts of `s` between `separator`s, each passed to `part` until it says false.
template <typename Fn>
bool AllParts(std::string_view s, char separator, Fn part) {
  size_t start = 0;
  while (true) {
    const size_t end = s.find(separator, start);
    if (!part(s.substr(start,
                       end == std::string_view::npos ? std::string_view::npos : end - start))) {
      return false;
    }
    if (end == std::string_view::npos) return true;
    start = end + 1;
  }
}

}  // namespace

bool IsAgencyId(std::string_view s) {
  if (s.empty() || s.size() > kMaxAgencyIdLength || !IsLowerAlnum(s.front())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return IsLowerAlnum(c) || c == '-'; });
}

bool IsAttributeName(std::string_view s) {
  int segments = 0;
  const bool well_formed = AllParts(s, '.', [&](std::string_view segment) {
    ++segments;
    if (segment.empty() || !IsLower(segment.front())) return false;
    return std::all_of(segment.begin(), segment.end(),
                       [](char c) { return IsLowerAlnum(c) || c == '_'; });
  });
  return well_formed && segments >= 2;
}

bool IsUpperCode(std::string_view s) {
  if (s.empty() || s.size() > kMaxUpperCodeLength || !IsUpper(s.front())) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return IsUpper(c) || IsDigit(c) || c == '_'; });
}

bool IsTrustDomain(std::string_view s) {
  if (s.empty() || s.size() > kMaxTrustDomainLength) return false;
  return AllParts(s, '.', [](std::string_view label) {
    if (label.empty() || label.size() > kMaxDnsLabelLength) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    return std::all_of(label.begin(), label.end(),
                       [](char c) { return IsLowerAlnum(c) || c == '-'; });
  });
}

std::optional<HostPort> ParseHostPort(std::string_view s) {
  std::string_view host;
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    const size_t close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      return std::nullopt;
    }
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
    if (host.empty() || host.size() > kMaxHostLength) return std::nullopt;
    if (!std::all_of(host.begin(), host.end(),
                     [](char c) { return IsHexDigit(c) || c == ':' || c == '.'; })) {
      return std::nullopt;
    }
  } else {
    const size_t colon = s.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    if (host.empty() || host.size() > kMaxHostLength) return std::nullopt;
    if (!std::all_of(host.begin(), host.end(), [](char c) {
          return IsLowerAlnum(c) || IsUpper(c) || c == '.' || c == '-' || c == '_';
        })) {
      return std::nullopt;
    }
  }
  if (port.empty() || port.size() > 5) return std::nullopt;
  uint32_t value = 0;
  for (char c : port) {
    if (!IsDigit(c)) return std::nullopt;
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (value > 65535) return std::nullopt;
  return HostPort{host, value};
}

bool IsHostPort(std::string_view s) {
  const std::optional<HostPort> parsed = ParseHostPort(s);
  return parsed.has_value() && parsed->port >= 1;
}

bool IsListenAddress(std::string_view s) { return ParseHostPort(s).has_value(); }

bool IsPrintableAscii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

bool IsVisibleAscii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

}  // namespace tellonce
