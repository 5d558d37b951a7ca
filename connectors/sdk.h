#ifndef TELLONCE_CONNECTORS_SDK_H_
#define TELLONCE_CONNECTORS_SDK_H_

// The connector SDK: what an agency links to answer the broker.
//
// An agency implements AttributeSource over its own systems and hands it to
// ConnectorServer::Start. The server does everything else: mutual TLS with the
// federation certificates, refusing every caller but the broker, validating requests,
// running the source off gRPC's threads, health checks, graceful shutdown.
//
//   class Registry final : public connectors::AttributeSource {
//     absl::StatusOr<v1::FetchAttributesResponse> Fetch(const FetchContext& ctx) override;
//   };
//   Registry registry;
//   auto server = connectors::ConnectorServer::Start(options, &registry);

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "certs/tls.h"
#include "tellonce/v1/connector.pb.h"

namespace tellonce::connectors {

// Request limits, checked before a source sees a request.
inline constexpr size_t kMaxCitizenIdBytes = 64;
inline constexpr size_t kMaxAttributesPerFetch = 64;
// Every other string of a request (exchange id, consumer, purpose, basis, names).
inline constexpr size_t kMaxStringBytes = 256;
// Largest request the server accepts; a bigger one fails with RESOURCE_EXHAUSTED.
inline constexpr int kMaxReceiveMessageBytes = 64 * 1024;

// One validated FetchAttributes call, as the source sees it. Everything in it comes
// from the broker, whose identity the server has already checked.
struct FetchContext {
  // The broker's id for this exchange, for the agency's own audit. May be empty.
  std::string exchange_id;
  // Non-empty printable ASCII, at most kMaxCitizenIdBytes. Not otherwise validated: the
  // broker has applied the federation's citizen id rule.
  std::string citizen_id;
  // The attribute names asked for: 1..kMaxAttributesPerFetch, well-formed
  // ("person.address"), no duplicates, in the broker's order.
  std::vector<std::string> attributes;
  // The agency that will receive the values, and why (purpose code and basis).
  std::string consumer;
  std::string purpose;
  tellonce::v1::Basis basis;
  // When the broker stops waiting (InfiniteFuture when it set no deadline). A source
  // that does slow work should give up by then.
  absl::Time deadline = absl::InfiniteFuture();
};

// What an agency implements: its answers to the broker's attribute fetches.
//
// Contract of Fetch:
//  - NOT_FOUND when the agency has no record of the citizen at all.
//  - Otherwise OK with one FetchedAttribute per attribute it holds a value for, with
//    the value member its catalogue type requires (STRING -> string_value, DECIMAL ->
//    decimal_value "1234.56", DATE -> date_value "YYYY-MM-DD", ...), and either
//    `not_found: true` or no entry at all for an attribute it has no value for. Never
//    an attribute that was not asked: the broker refuses such answers. as_of says when
//    the data was last known correct.
//  - Any other error reaches the broker as is; its message must not hold citizen data.
// The server passes the answer on unchanged: checking it against the catalogue is the
// broker's job, which it does for every provider.
//
// Thread safety: called concurrently from the server's fetch threads, so it must be
// thread-safe. It may block (a database call), ideally not past ctx.deadline.
class AttributeSource {
 public:
  virtual ~AttributeSource();
  virtual absl::StatusOr<tellonce::v1::FetchAttributesResponse> Fetch(
      const FetchContext& ctx) = 0;
};

// Change notifications ("tell us once", issue 5) are not served yet. The intended
// shape, so that an agency's code written today keeps compiling: a second, optional
// interface beside AttributeSource,
//
//   class ChangeHandler {
//    public:
//     virtual ~ChangeHandler();
//     // The broker delivers one change event (event type, citizen, attribute names,
//     // never values); OK acknowledges it, any error makes the broker retry later.
//     virtual absl::Status DeliverChange(const ChangeContext& ctx) = 0;
//   };
//
// served by a new RPC on ConnectorService with the same broker-only authorization and
// request validation, and passed to an overload Start(options, source, changes).
// tellonce-tax, a consumer, will then implement ChangeHandler instead of holding records.

// How a connector serves. LoadConnectorConfig fills it from a ConnectorConfig file.
struct ConnectorOptions {
  // The agency's id, as in the directory. Its certificate must carry
  // spiffe://<trust_domain>/agency/<agency_id>. Required.
  std::string agency_id;
  // host:port to listen on. Port 0 picks a free port (see ConnectorServer::port).
  // Required.
  std::string listen_address;
  // The connector's certificate and key, and the federation CA that verifies callers.
  // ca_file, cert_file and key_file are required; crl_dir is optional.
  certs::TlsPaths tls;
  // SPIFFE trust domain of the federation; only spiffe://<trust_domain>/broker is
  // served. Required.
  std::string trust_domain;
  // The agency's records (text-format tellonce.v1.AgencyRecords) for RecordsFileSource.
  // Not used by ConnectorServer; empty when the configuration names none.
  std::string data_file;
  // Threads that run AttributeSource::Fetch. Default 4.
  int fetch_threads = 4;
  // Fetches waiting for a thread beyond which new calls fail with RESOURCE_EXHAUSTED.
  // Default 1024.
  size_t max_queued_fetches = 1024;
  // How long Shutdown lets in-flight calls finish before cancelling them. Default 5 s.
  absl::Duration shutdown_grace = absl::Seconds(5);
};

// Checks a request the way the server does before calling the source: citizen_id
// non-empty printable ASCII of at most kMaxCitizenIdBytes; 1..kMaxAttributesPerFetch
// attributes, each a dotted lower-case name ([a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+), none
// repeated; every other string at most kMaxStringBytes without control characters.
// INVALID_ARGUMENT "<field>: <reason>" for the first problem, never quoting the
// citizen id. Thread-safe.
absl::Status ValidateFetchRequest(const tellonce::v1::FetchAttributesRequest& request);

// Design: a gRPC server (callback API) for tellonce.v1.ConnectorService plus the
// standard grpc.health.v1.Health service, over mutual TLS. Each FetchAttributes call
// is authorized from the verified peer certificate (only the broker of the trust
// domain; any agency certificate gets PERMISSION_DENIED), validated, and then queued
// to a small pool of fetch threads that call the source and finish the call, so a
// source that blocks never stalls gRPC's own threads. The implementation lives in
// sdk.cc.
class ConnectorServer {
 public:
  // Starts serving. `source` is not owned and must outlive the server. Fails, without
  // serving anything, on: missing options (INVALID_ARGUMENT naming the field), TLS files
  // that do not load, a certificate whose SPIFFE id is not the agency's
  // ("tls.cert_file: ..."), an address that cannot be bound (UNAVAILABLE).
  static absl::StatusOr<std::unique_ptr<ConnectorServer>> Start(const ConnectorOptions& options,
                                                                AttributeSource* source);

  // Shuts down (see Shutdown).
  virtual ~ConnectorServer();

  // The port actually bound, also when listen_address asked for port 0.
  virtual int port() const = 0;

  // Stops accepting calls, lets in-flight calls finish for up to
  // options.shutdown_grace (then cancels them), and stops the fetch threads. Returns
  // when no call is left and the source is no longer called. Idempotent and
  // thread-safe; must not be called from within Fetch.
  virtual void Shutdown() = 0;

 protected:
  ConnectorServer() = default;
  ConnectorServer(const ConnectorServer&) = delete;
  ConnectorServer& operator=(const ConnectorServer&) = delete;
};

}  // namespace tellonce::connectors

#endif  // TELLONCE_CONNECTORS_SDK_H_
