#ifndef TELLONCE_CONNECTORS_SDK_H_
#define TELLONCE_CONNECTORS_SDK_H_

// The connector SDK: what an agency links to answer the broker.
//
// A provider implements AttributeSource over its own systems; a subscriber to change
// notifications implements ChangeHandler; an agency may do both. It hands them to
// ConnectorServer::Start. The server does everything else: mutual TLS with the
// federation certificates, refusing every caller but the broker, validating requests,
// running the agency's code off gRPC's threads, dropping duplicate change deliveries,
// health checks, graceful shutdown.
//
//   class Registry final : public connectors::AttributeSource {
//     absl::StatusOr<v1::FetchAttributesResponse> Fetch(const FetchContext& ctx) override;
//   };
//   class TaxOffice final : public connectors::ChangeHandler {
//     absl::Status OnChange(const ChangeContext& ctx) override;
//   };
//   Registry registry;
//   auto server = connectors::ConnectorServer::Start(options, &registry);
//   TaxOffice tax;
//   auto server = connectors::ConnectorServer::Start(options, /*source=*/nullptr, &tax);

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "certs/tls.h"
#include "certs/tls_watch.h"
#include "ops/log.h"
#include "ops/metrics.h"
#include "tellonce/v1/connector.pb.h"

namespace tellonce::connectors {

// Request limits, checked before a source sees a request.
inline constexpr size_t kMaxCitizenIdBytes = 64;
inline constexpr size_t kMaxAttributesPerFetch = 64;
// Most fetches in one FetchAttributesBatch call.
inline constexpr size_t kMaxFetchesPerBatch = 256;
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
  virtual absl::StatusOr<tellonce::v1::FetchAttributesResponse> Fetch(const FetchContext& ctx) = 0;
};

// One validated DeliverChange call, as the handler sees it: a change reported by its
// authoritative provider, which the broker has decided this agency may know of. It says
// what changed, never the new values: a handler that wants them pulls them through the
// broker's ExchangeService like any other fetch.
struct ChangeContext {
  // The provider's id for the event, unique per provider: printable ASCII, at most
  // kMaxStringBytes. (provider, event_id) identifies the event.
  std::string event_id;
  // The agency that reported the change, e.g. "registry".
  std::string provider;
  // Non-empty printable ASCII, at most kMaxCitizenIdBytes.
  std::string citizen_id;
  // What happened, e.g. "ADDRESS_CHANGED" ([A-Z][A-Z0-9_]*).
  std::string event_type;
  // The changed attributes: 1..kMaxAttributesPerFetch, well-formed, no duplicates.
  std::vector<std::string> attributes;
  // When it happened (the provider's word) and when the broker accepted it;
  // InfinitePast when the broker sent none.
  absl::Time occurred_at = absl::InfinitePast();
  absl::Time published_at = absl::InfinitePast();
  // The broker's id for this delivery; a redelivery carries the same one.
  std::string delivery_id;
  // Why this agency may know of the change: its consent, or a mandate.
  tellonce::v1::Basis basis;
  // When the broker stops waiting (InfiniteFuture when it set no deadline). A handler
  // that outlives it is not lost: the broker redelivers, the server answers a copy that
  // arrives while the handler still runs with ABORTED (retry later) and one after it
  // returned OK with OK, without calling it again (see ChangeHandler).
  absl::Time deadline = absl::InfiniteFuture();
};

// What a subscribing agency implements: its reaction to change notifications ("tell us
// once", DESIGN.md flow 3).
//
// Contract of OnChange:
//  - OK acknowledges the event: the broker will not send it again, and the server
//    remembers (provider, event_id) so that a copy still arriving (delivery is at least
//    once) is acknowledged without calling the handler again.
//  - Any error is passed to the broker, which retries later with back-off (and parks the
//    delivery as dead after too many attempts). The event is not remembered, so the
//    retry calls the handler again. UNAVAILABLE is the usual answer for "not now".
//  - Its message must not hold citizen data.
// The server calls OnChange at most once at a time per event, and never again for an
// event it acknowledged, within the last ConnectorOptions::max_seen_events events (and
// across restarts when seen_events_file is set). The one gap: a process that dies
// after OnChange returned OK and before the event was recorded calls it again for the
// redelivery, so a handler with effects outside this process should make them
// idempotent by (provider, event_id) if even that must not happen.
//
// Thread safety: called concurrently from the server's change threads for different
// events, so it must be thread-safe. It may block (a call to the broker), ideally not
// past ctx.deadline.
class ChangeHandler {
 public:
  virtual ~ChangeHandler();
  virtual absl::Status OnChange(const ChangeContext& ctx) = 0;
};

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
  // How often the TLS files are re-read (a changed certificate, key, CA bundle or CRL is
  // used for new handshakes without a restart) and how early their expiry is warned
  // about. Defaults 5 s and 168 h.
  certs::TlsMaterialWatcher::Options tls_watch;
  // The process's TLS material when the agency already watches it (to share it between
  // this server and its own channels to the broker, and to reload it on SIGHUP); it
  // must be over `tls`. Null (default): the server starts its own watcher.
  std::shared_ptr<certs::TlsMaterialWatcher> tls_watcher;
  // SPIFFE trust domain of the federation; only spiffe://<trust_domain>/broker is
  // served. Required.
  std::string trust_domain;
  // The agency's records (text-format tellonce.v1.AgencyRecords) for RecordsFileSource.
  // Not used by ConnectorServer; empty when the configuration names none.
  std::string data_file;
  // host:port of the broker, for the agency's own calls to it (publishing a change,
  // pulling a changed value). Not used by ConnectorServer; empty when not configured.
  std::string broker_address;
  // Pins of the broker (certs::CertificatePin: base64 SHA-256 of its certificate's
  // SubjectPublicKeyInfo). When not empty, ConnectorServer serves a caller with the
  // broker's SPIFFE id only if its certificate's key is one of these, and the agency's
  // channel to the broker (examples BrokerChannel) accepts only such a broker: a
  // certificate the CA issued with the broker's identity but another key is refused.
  // Empty (default): the SPIFFE id alone.
  std::vector<std::string> broker_pins;
  // Threads that run AttributeSource::Fetch. Default 4.
  int fetch_threads = 4;
  // Fetches waiting for a thread beyond which new calls fail with RESOURCE_EXHAUSTED.
  // Default 1024.
  size_t max_queued_fetches = 1024;
  // Threads that run ChangeHandler::OnChange, apart from the fetch threads so that a
  // handler that calls the broker never waits for a fetch of this same agency. Default 2.
  int change_threads = 2;
  // Deliveries waiting for a change thread beyond which new ones fail with
  // RESOURCE_EXHAUSTED (the broker retries them). Default 1024.
  size_t max_queued_changes = 1024;
  // File remembering handled change events across restarts (see ConnectorConfig
  // seen_events_file). Empty (default): in memory only.
  std::string seen_events_file;
  // How many handled events are remembered to drop duplicates: the newest ones. Default
  // 100000.
  size_t max_seen_events = 100'000;
  // How long Shutdown lets in-flight calls finish before cancelling them. Default 5 s.
  absl::Duration shutdown_grace = absl::Seconds(5);
  // host:port of the admin listener: plain HTTP, no client certificate, serving
  // /metrics (RPCs by method and code with their latency, process_* metrics, and the
  // agency's own metrics added to ConnectorServer::metrics()), /healthz and /readyz.
  // Keep it on loopback or a management network. Empty (default): no admin listener.
  std::string admin_address;
  // Count RPCs by method and code with their latency. Default true.
  bool rpc_metrics = true;
  // How the agency's program should log (LoadConnectorConfig fills it from the config's
  // `log` block; the program applies it with ops::ConfigureLogging). Not used by
  // ConnectorServer.
  ops::LogOptions log;
};

// Checks a request the way the server does before calling the source: citizen_id
// non-empty printable ASCII of at most kMaxCitizenIdBytes; 1..kMaxAttributesPerFetch
// attributes, each a dotted lower-case name ([a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+), none
// repeated; every other string at most kMaxStringBytes without control characters.
// INVALID_ARGUMENT "<field>: <reason>" for the first problem, never quoting the
// citizen id. Thread-safe.
absl::Status ValidateFetchRequest(const tellonce::v1::FetchAttributesRequest& request);

// Checks a DeliverChange request the way the server does before calling the handler:
// event_id required, printable ASCII, at most kMaxStringBytes; provider required, an
// agency id ([a-z0-9][a-z0-9-]{0,62}); citizen_id and attributes as for a fetch;
// event_type required, [A-Z][A-Z0-9_]{0,63}; occurred_at and published_at, when set,
// valid timestamps; delivery_id and the basis strings at most kMaxStringBytes without
// control characters. INVALID_ARGUMENT "<field>: <reason>" for the first problem, never
// quoting the citizen id. Thread-safe.
absl::Status ValidateChangeRequest(const tellonce::v1::DeliverChangeRequest& request);

// Design: a gRPC server (callback API) for tellonce.v1.ConnectorService plus the
// standard grpc.health.v1.Health service, over mutual TLS. Each call is authorized from
// the verified peer certificate (only the broker of the trust domain; any agency
// certificate gets PERMISSION_DENIED), validated, and then queued to a small pool of
// threads that call the agency's code and finish the call, so code that blocks never
// stalls gRPC's own threads: FetchAttributes to the fetch threads and the source,
// DeliverChange to the change threads and the handler. FetchAttributesBatch (the
// broker gathers the fetches waiting for this connector into one call) is authorized
// once, each request validated and answered on its own outcome, and the requests shared
// out over the fetch threads, so the source sees the same calls either way.
// DeliverChange goes through a record of the events already handled (SeenEvents,
// seen_events.h), keyed by (provider, event_id): a duplicate is acknowledged without
// calling the handler, a copy arriving while the handler still runs is answered ABORTED
// (the broker retries), and an event is recorded only once the handler returned OK. The
// implementation lives in server.cc (the service and the server), request_validation.cc
// (the checks above) and worker_pool.h (the fetch and change threads).
class ConnectorServer {
 public:
  // Starts serving. `source` is not owned and must outlive the server. Fails, without
  // serving anything, on: missing options (INVALID_ARGUMENT naming the field), TLS files
  // that do not load, a certificate whose SPIFFE id is not the agency's
  // ("tls.cert_file: ..."), an address that cannot be bound (UNAVAILABLE).
  static absl::StatusOr<std::unique_ptr<ConnectorServer>> Start(const ConnectorOptions& options,
                                                                AttributeSource* source);

  // Starts serving fetches from `source` and change deliveries to `handler`. Either may
  // be null, not both (INVALID_ARGUMENT): without a source FetchAttributes answers
  // UNIMPLEMENTED, without a handler DeliverChange does (after authorization, so an
  // agency still gets PERMISSION_DENIED). Neither is owned; both must outlive the
  // server. Fails like the overload above, and also when seen_events_file cannot be
  // read or written ("seen_events_file: ...") or max_seen_events is 0.
  static absl::StatusOr<std::unique_ptr<ConnectorServer>> Start(const ConnectorOptions& options,
                                                                AttributeSource* source,
                                                                ChangeHandler* handler);

  // Shuts down (see Shutdown).
  virtual ~ConnectorServer();

  // The port actually bound, also when listen_address asked for port 0.
  virtual int port() const = 0;

  // The admin listener's port (also when admin_address asked for port 0); 0 without one.
  virtual int admin_port() const = 0;

  // The metrics the admin listener serves; an agency may add its own families and
  // collectors (names outside tellonce_*). Lives as long as the server.
  virtual ops::MetricsRegistry& metrics() = 0;
  // Re-reads the TLS files now (call it on SIGHUP); they are also re-read every
  // options.tls_watch.poll_interval. OK when accepted or unchanged; otherwise the
  // refusal, naming the file, and the material in use stays. Thread-safe.
  virtual absl::Status ReloadTls() = 0;

  // The TLS material in use: expiry, CRL next update, whether it can complete
  // handshakes, reload counts. Thread-safe.
  virtual certs::TlsStatus tls_status() const = 0;

  // Stops accepting calls, lets in-flight calls finish for up to
  // options.shutdown_grace (then cancels them), and stops the fetch and change threads.
  // Returns when no call is left and neither the source nor the handler is called any
  // more. Idempotent and thread-safe; must not be called from within Fetch or OnChange.
  virtual void Shutdown() = 0;

 protected:
  ConnectorServer() = default;
  ConnectorServer(const ConnectorServer&) = delete;
  ConnectorServer& operator=(const ConnectorServer&) = delete;
};

}  // namespace tellonce::connectors

#endif  // TELLONCE_CONNECTORS_SDK_H_
