#ifndef TELLONCE_PROTO_IDENTIFIERS_H_
#define TELLONCE_PROTO_IDENTIFIERS_H_

// The identifier rules of the federation, in one place: every folder that checks an
// agency id, an attribute name, a code, a trust domain, an address or an ASCII field
// calls these (the directory, the broker's requests and configuration, the connector
// SDK and its configuration, SPIFFE ids, the admin listener). Hand-written matchers:
// cheaper than a regular expression and safe on input of any length. All are pure and
// thread-safe.

#include <cstdint>
#include <optional>
#include <string_view>

namespace tellonce {

// The rules as error messages quote them ("must match <pattern>").
inline constexpr char kAgencyIdPattern[] = "[a-z0-9][a-z0-9-]{0,62}";
inline constexpr char kAttributeNamePattern[] = "[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+";
inline constexpr char kUpperCodePattern[] = "[A-Z][A-Z0-9_]{0,63}";

// An agency id, as in the directory and in the agency's certificate
// (spiffe://<trust-domain>/agency/<id>): [a-z0-9][a-z0-9-]{0,62}.
bool IsAgencyId(std::string_view s);

// A catalogue attribute name: dotted lower-case segments, at least two,
// [a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+ (e.g. "person.address"). No length limit of its
// own: callers bound the length with their string limit.
bool IsAttributeName(std::string_view s);

// A purpose code or an event type: [A-Z][A-Z0-9_]{0,63} (e.g. "ADDRESS_CHANGED").
bool IsUpperCode(std::string_view s);

// A SPIFFE trust domain: a lower-case DNS name, dot-separated labels of 1..63
// characters of [a-z0-9-] that neither start nor end with '-', at most 255 bytes in all
// (SPIFFE's limit), e.g. "gov.example".
bool IsTrustDomain(std::string_view s);

// "host:port" taken apart: `host` without the brackets of an IPv6 address.
struct HostPort {
  std::string_view host;
  uint32_t port = 0;
};

// Parses "host:port": host a DNS name, host name or IPv4 address (characters
// [A-Za-z0-9._-], at most 253), or an IPv6 address in brackets ("[::1]:7443"); port
// decimal digits only, 0..65535. No scheme ("dns:///"), no path, no unbracketed IPv6.
// nullopt when `s` is not of that form. The result points into `s`.
std::optional<HostPort> ParseHostPort(std::string_view s);

// An address to connect to (a connector endpoint, the broker's address): ParseHostPort
// with a port of 1..65535.
bool IsHostPort(std::string_view s);

// An address to listen on: ParseHostPort, port 0 included (any free port).
bool IsListenAddress(std::string_view s);

// Every byte printable ASCII, space included (0x20..0x7e): request ids, citizen ids in
// requests, event ids. The empty string qualifies.
bool IsPrintableAscii(std::string_view s);

// Every byte printable ASCII without the space (0x21..0x7e): citizen ids by the
// directory's rule, issuers, client ids. The empty string qualifies.
bool IsVisibleAscii(std::string_view s);

}  // namespace tellonce

#endif  // TELLONCE_PROTO_IDENTIFIERS_H_
