// The connector SDK's server (sdk.h ConnectorServer): ConnectorService over mutual TLS
// for the broker only, its requests checked (request_validation.cc) and handed to the
// agency's code on the SDK's own threads (worker_pool.h), the health service, metrics
// and the admin listener.

#include "grpcpp/server.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "certs/identity.h"
#include "connectors/sdk.h"
#include "connectors/seen_events.h"
#include "connectors/worker_pool.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/auth_context.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/server_context.h"
#include "ops/admin_server.h"
#include "ops/rpc_metrics.h"
#include "ops/version.h"
#include "proto/field_error.h"
#include "proto/grpc_status.h"
#include "proto/textproto.h"
#include "proto/time.h"
#include "tellonce/v1/connector.grpc.pb.h"

namespace tellonce::connectors {

AttributeSource::~AttributeSource() = default;
ChangeHandler::~ChangeHandler() = default;
ConnectorServer::~ConnectorServer() = default;

namespace {

using ::tellonce::v1::DeliverChangeRequest;
using ::tellonce::v1::DeliverChangeResponse;
using ::tellonce::v1::FetchAttributesBatchRequest;
using ::tellonce::v1::FetchAttributesBatchResponse;
using ::tellonce::v1::FetchAttributesRequest;
using ::tellonce::v1::FetchAttributesResponse;

// Fewest fetches of a batch handed to one fetch thread (see FetchAttributesBatch).
constexpr size_t kFetchesPerShare = 4;

absl::Time TimeOf(bool present, const google::protobuf::Timestamp& t) {
  return present ? FromProtoTime(t) : absl::InfinitePast();
}

// ---------------------------------------------------------------------------
// ConnectorService

// ConnectorService over gRPC's callback API. Thin: authorizes the caller from its
// certificate, validates the request, and hands the call to a pool (fetch threads for
// fetches, change threads for change deliveries), whose thread calls the agency's code
// and finishes the call.
class ConnectorServiceImpl final : public tellonce::v1::ConnectorService::CallbackService {
 public:
  // Not owned; all must outlive the service. `source` or `handler` may be null (not
  // served); their pools and `seen` are then null too.
  ConnectorServiceImpl(std::string trust_domain, std::vector<std::string> broker_pins,
                       AttributeSource* source, WorkerPool* fetch_pool, ChangeHandler* handler,
                       WorkerPool* change_pool, SeenEvents* seen)
      : trust_domain_(std::move(trust_domain)),
        broker_pins_(std::move(broker_pins)),
        source_(source),
        fetch_pool_(fetch_pool),
        handler_(handler),
        change_pool_(change_pool),
        seen_(seen) {}

  grpc::ServerUnaryReactor* FetchAttributes(grpc::CallbackServerContext* context,
                                            const FetchAttributesRequest* request,
                                            FetchAttributesResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    absl::Status admitted = AuthorizeBroker(*context);
    if (admitted.ok() && source_ == nullptr) {
      admitted = absl::UnimplementedError("this agency provides no attributes");
    }
    if (admitted.ok()) admitted = ValidateFetchRequest(*request);
    if (!admitted.ok()) {
      reactor->Finish(ToGrpcStatus(admitted));
      return reactor;
    }
    // The context, request and response stay valid until Finish is called.
    const bool queued = fetch_pool_->Submit([this, context, request, response, reactor] {
      reactor->Finish(ToGrpcStatus(Serve(*context, *request, response)));
    });
    if (!queued) {
      reactor->Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                   "connector busy: too many fetches waiting"));
    }
    return reactor;
  }

  // Several fetches in one call: each is authorized with the call, validated and
  // answered on its own (its outcome), the fetch threads sharing the batch out.
  grpc::ServerUnaryReactor* FetchAttributesBatch(grpc::CallbackServerContext* context,
                                                 const FetchAttributesBatchRequest* batch,
                                                 FetchAttributesBatchResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    absl::Status admitted = AuthorizeBroker(*context);
    if (admitted.ok() && batch->requests().empty()) {
      admitted = InvalidField("requests", "at least one required");
    }
    if (admitted.ok() && static_cast<size_t>(batch->requests_size()) > kMaxFetchesPerBatch) {
      admitted = InvalidField("requests", absl::StrCat("more than ", kMaxFetchesPerBatch));
    }
    if (!admitted.ok()) {
      reactor->Finish(ToGrpcStatus(admitted));
      return reactor;
    }
    const int n = batch->requests_size();
    // Outcomes exist before any thread writes one: threads fill disjoint elements.
    for (int i = 0; i < n; ++i) response->add_outcomes();
    std::vector<int> valid;
    valid.reserve(n);
    for (int i = 0; i < n; ++i) {
      absl::Status checked = source_ == nullptr
                                 ? absl::UnimplementedError("this agency provides no attributes")
                                 : ValidateFetchRequest(batch->requests(i));
      if (checked.ok()) {
        valid.push_back(i);
        continue;
      }
      tellonce::v1::FetchOutcome* outcome = response->mutable_outcomes(i);
      outcome->set_code(static_cast<int>(checked.code()));
      outcome->set_message(absl::IsInvalidArgument(checked)
                               ? absl::StrCat("requests[", i, "].", checked.message())
                               : std::string(checked.message()));
    }
    if (valid.empty()) {
      reactor->Finish(grpc::Status::OK);
      return reactor;
    }
    // Shares of at least kFetchesPerShare run in order by one fetch thread each, up to
    // one per thread: a slow source still works in parallel on a large batch, and a
    // small batch costs a single hand-off. The last share to end finishes the call.
    const size_t shares =
        std::min((valid.size() + kFetchesPerShare - 1) / kFetchesPerShare, fetch_pool_->threads());
    auto left = std::make_shared<std::atomic<size_t>>(shares);
    auto indexes = std::make_shared<const std::vector<int>>(std::move(valid));
    for (size_t share = 0; share < shares; ++share) {
      auto run = [this, context, batch, response, reactor, left, indexes, share, shares] {
        for (size_t k = share; k < indexes->size(); k += shares) {
          const int i = (*indexes)[k];
          tellonce::v1::FetchOutcome* outcome = response->mutable_outcomes(i);
          absl::Status served = Serve(*context, batch->requests(i), outcome->mutable_response());
          if (!served.ok()) {
            outcome->clear_response();
            outcome->set_code(static_cast<int>(served.code()));
            outcome->set_message(std::string(served.message()));
          }
        }
        if (left->fetch_sub(1) == 1) reactor->Finish(grpc::Status::OK);
      };
      if (!fetch_pool_->Submit(run)) {
        for (size_t k = share; k < indexes->size(); k += shares) {
          tellonce::v1::FetchOutcome* outcome = response->mutable_outcomes((*indexes)[k]);
          outcome->set_code(grpc::StatusCode::RESOURCE_EXHAUSTED);
          outcome->set_message("connector busy: too many fetches waiting");
        }
        if (left->fetch_sub(1) == 1) reactor->Finish(grpc::Status::OK);
      }
    }
    return reactor;
  }

  grpc::ServerUnaryReactor* DeliverChange(grpc::CallbackServerContext* context,
                                          const DeliverChangeRequest* request,
                                          DeliverChangeResponse* /*response*/) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    absl::Status admitted = AuthorizeBroker(*context);
    if (admitted.ok() && handler_ == nullptr) {
      admitted = absl::UnimplementedError("this agency takes no change notifications");
    }
    if (admitted.ok()) admitted = ValidateChangeRequest(*request);
    if (!admitted.ok()) {
      reactor->Finish(ToGrpcStatus(admitted));
      return reactor;
    }
    const bool queued = change_pool_->Submit([this, context, request, reactor] {
      reactor->Finish(ToGrpcStatus(ServeChange(*context, *request)));
    });
    if (!queued) {
      reactor->Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                   "connector busy: too many change deliveries waiting"));
    }
    return reactor;
  }

 private:
  // OK only for the broker of our trust domain, from the verified peer certificate,
  // and, when pins are configured, only for a certificate over a pinned key.
  absl::Status AuthorizeBroker(const grpc::ServerContextBase& context) const {
    std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
    if (auth == nullptr) return absl::UnauthenticatedError("no authenticated peer");
    absl::StatusOr<certs::SpiffeId> peer = certs::PeerIdentity(*auth, trust_domain_);
    if (!peer.ok()) return peer.status();
    if (!peer->is_broker) {
      return absl::PermissionDeniedError(absl::StrCat(
          "ConnectorService serves only the broker, not agency \"", peer->agency_id, "\""));
    }
    if (absl::Status pinned = certs::CheckPeerPinned(*auth, broker_pins_); !pinned.ok()) {
      return absl::UnauthenticatedError(
          absl::StrCat("the broker's certificate is not pinned: ", pinned.message()));
    }
    return absl::OkStatus();
  }

  // The caller's deadline. gRPC reports "no deadline" as time_point::max(), which
  // absl::FromChrono would turn into a finite time in 2262; the contract is
  // InfiniteFuture.
  static absl::Time DeadlineOf(const grpc::CallbackServerContext& context) {
    if (context.deadline() == std::chrono::system_clock::time_point::max()) {
      return absl::InfiniteFuture();
    }
    return absl::FromChrono(context.deadline());
  }

  // Runs on a fetch thread.
  absl::Status Serve(const grpc::CallbackServerContext& context,
                     const FetchAttributesRequest& request, FetchAttributesResponse* response) {
    if (context.IsCancelled()) return absl::CancelledError("cancelled by the caller");
    FetchContext ctx;
    ctx.deadline = DeadlineOf(context);
    if (absl::Now() >= ctx.deadline) {
      return absl::DeadlineExceededError("deadline passed while waiting for a fetch thread");
    }
    ctx.exchange_id = request.exchange_id();
    ctx.citizen_id = request.citizen_id();
    ctx.attributes.assign(request.attributes().begin(), request.attributes().end());
    ctx.consumer = request.consumer();
    ctx.purpose = request.purpose();
    ctx.basis = request.basis();
    absl::StatusOr<FetchAttributesResponse> answer = source_->Fetch(ctx);
    if (!answer.ok()) return answer.status();
    *response = *std::move(answer);
    return absl::OkStatus();
  }

  // Runs on a change thread: claims the event, calls the handler for a new one, and
  // records it once handled. A cancelled call still runs a claimed handler to its end,
  // so its outcome is recorded for the broker's retry.
  absl::Status ServeChange(const grpc::CallbackServerContext& context,
                           const DeliverChangeRequest& request) {
    if (context.IsCancelled()) return absl::CancelledError("cancelled by the caller");
    absl::StatusOr<SeenEvents::Claim> claim = seen_->Begin(request.provider(), request.event_id());
    if (!claim.ok()) return claim.status();
    switch (*claim) {
      case SeenEvents::Claim::kSeen:
        return absl::OkStatus();  // a duplicate: acknowledged, the agency saw it already
      case SeenEvents::Claim::kInProgress:
        return absl::AbortedError("this event is being handled; retry later");
      case SeenEvents::Claim::kNew:
        break;
    }
    ChangeContext ctx;
    ctx.event_id = request.event_id();
    ctx.provider = request.provider();
    ctx.citizen_id = request.citizen_id();
    ctx.event_type = request.event_type();
    ctx.attributes.assign(request.attributes().begin(), request.attributes().end());
    ctx.occurred_at = TimeOf(request.has_occurred_at(), request.occurred_at());
    ctx.published_at = TimeOf(request.has_published_at(), request.published_at());
    ctx.delivery_id = request.delivery_id();
    ctx.basis = request.basis();
    ctx.deadline = DeadlineOf(context);
    const absl::Status handled = handler_->OnChange(ctx);
    const absl::Status recorded = seen_->Finish(ctx.provider, ctx.event_id, handled.ok());
    return handled.ok() ? recorded : handled;
  }

  const std::string trust_domain_;
  const std::vector<std::string> broker_pins_;
  AttributeSource* const source_;
  WorkerPool* const fetch_pool_;
  ChangeHandler* const handler_;
  WorkerPool* const change_pool_;
  SeenEvents* const seen_;
};

// ---------------------------------------------------------------------------
// ConnectorServerImpl

class ConnectorServerImpl final : public ConnectorServer {
 public:
  explicit ConnectorServerImpl(const ConnectorOptions& options) : options_(options) {}
  ~ConnectorServerImpl() override { Shutdown(); }

  absl::Status Init(AttributeSource* source, ChangeHandler* handler);

  int port() const override { return port_; }
  int admin_port() const override { return admin_ == nullptr ? 0 : admin_->port(); }
  ops::MetricsRegistry& metrics() override { return metrics_; }
  absl::Status ReloadTls() override { return tls_->Reload(); }
  certs::TlsStatus tls_status() const override { return tls_->status(); }

  void Shutdown() override {
    std::call_once(shutdown_once_, [this] {
      serving_.store(false);
      admin_.reset();
      if (server_ != nullptr) {
        server_->Shutdown(std::chrono::system_clock::now() +
                          absl::ToChronoSeconds(options_.shutdown_grace));
        // Returns once every call is finished, which the still running pool ensures.
        server_->Wait();
      }
      if (fetch_pool_ != nullptr) fetch_pool_->Stop();
      if (change_pool_ != nullptr) change_pool_->Stop();
    });
  }

 private:
  const ConnectorOptions options_;
  std::shared_ptr<certs::TlsMaterialWatcher> tls_;
  std::unique_ptr<WorkerPool> fetch_pool_;
  std::unique_ptr<WorkerPool> change_pool_;
  std::unique_ptr<SeenEvents> seen_;
  std::unique_ptr<ConnectorServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  ops::MetricsRegistry metrics_;
  std::unique_ptr<ops::RpcMetrics> rpc_metrics_;
  std::unique_ptr<ops::AdminServer> admin_;
  std::atomic<bool> serving_{false};
  std::once_flag shutdown_once_;
};

// The certificate at `cert_file` must name this agency; a connector presenting another
// identity would be refused by the broker at every call, so refuse to start instead.
absl::Status CheckCertificateIdentity(const ConnectorOptions& options) {
  absl::StatusOr<std::string> pem = ReadFileToString(options.tls.cert_file);
  if (!pem.ok()) return InvalidField("tls.cert_file", std::string(pem.status().message()));
  absl::StatusOr<certs::SpiffeId> id = certs::CertificateSpiffeId(*pem);
  if (!id.ok()) {
    return InvalidField("tls.cert_file",
                        absl::StrCat(options.tls.cert_file, ": ", id.status().message()));
  }
  const std::string want = certs::AgencySpiffeId(options.trust_domain, options.agency_id);
  if (id->ToString() != want) {
    return InvalidField("tls.cert_file", absl::StrCat(options.tls.cert_file, ": certificate is ",
                                                      id->ToString(), ", not ", want));
  }
  return absl::OkStatus();
}

absl::Status ConnectorServerImpl::Init(AttributeSource* source, ChangeHandler* handler) {
  if (source == nullptr && handler == nullptr) {
    return InvalidField("source", "a source or a change handler is required");
  }
  if (options_.agency_id.empty()) return InvalidField("agency_id", "required");
  if (options_.listen_address.empty()) return InvalidField("listen_address", "required");
  if (options_.trust_domain.empty()) return InvalidField("trust_domain", "required");
  if (options_.tls.ca_file.empty()) return InvalidField("tls.ca_file", "required");
  if (options_.tls.cert_file.empty()) return InvalidField("tls.cert_file", "required");
  if (options_.tls.key_file.empty()) return InvalidField("tls.key_file", "required");
  if (options_.fetch_threads < 1) return InvalidField("fetch_threads", "must be at least 1");
  if (options_.max_queued_fetches < 1) {
    return InvalidField("max_queued_fetches", "must be at least 1");
  }
  if (handler != nullptr) {
    if (options_.change_threads < 1) return InvalidField("change_threads", "must be at least 1");
    if (options_.max_queued_changes < 1) {
      return InvalidField("max_queued_changes", "must be at least 1");
    }
    if (options_.max_seen_events < 1) return InvalidField("max_seen_events", "must be at least 1");
  }

  tls_ = options_.tls_watcher;
  if (tls_ == nullptr) {
    absl::StatusOr<std::unique_ptr<certs::TlsMaterialWatcher>> watcher =
        certs::TlsMaterialWatcher::Start(options_.tls, options_.tls_watch);
    if (!watcher.ok()) return watcher.status();
    tls_ = *std::move(watcher);
  }
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials = tls_->ServerCredentials();
  if (!credentials.ok()) return credentials.status();
  if (absl::Status s = CheckCertificateIdentity(options_); !s.ok()) return s;

  if (source != nullptr) {
    fetch_pool_ = std::make_unique<WorkerPool>(options_.fetch_threads, options_.max_queued_fetches);
  }
  if (handler != nullptr) {
    absl::StatusOr<std::unique_ptr<SeenEvents>> seen =
        SeenEvents::Open(options_.seen_events_file, options_.max_seen_events);
    if (!seen.ok()) return seen.status();
    seen_ = *std::move(seen);
    change_pool_ =
        std::make_unique<WorkerPool>(options_.change_threads, options_.max_queued_changes);
  }
  service_ = std::make_unique<ConnectorServiceImpl>(options_.trust_domain, options_.broker_pins,
                                                    source, fetch_pool_.get(), handler,
                                                    change_pool_.get(), seen_.get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default on Linux, which lets a second process bind the
  // same port and silently share the broker's connections with the first. One address,
  // one connector: a port in use must fail start-up.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(options_.listen_address, *credentials, &port_);
  builder.SetMaxReceiveMessageSize(kMaxReceiveMessageBytes);
  // Only the broker gets past the handshake (its SPIFFE id), so floods need its key;
  // still, a stalled handshake is dropped after 5 s (gRPC's default is 120 s) and
  // request metadata is bounded, as on the broker (broker/README.md, "Transport limits").
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, 16 * 1024);
  builder.RegisterService(service_.get());
  if (options_.rpc_metrics) {
    rpc_metrics_ = std::make_unique<ops::RpcMetrics>(
        &metrics_, std::vector<std::string>{tellonce::v1::ConnectorService::service_full_name()});
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
    creators.push_back(rpc_metrics_->InterceptorFactory());
    builder.experimental().SetInterceptorCreators(std::move(creators));
  }
  metrics_.AddProcessCollector();
  metrics_.AddCollector([this](ops::MetricsWriter& w) {
    w.Family("tellonce_build_info", "Always 1; the version of this build as a label.", "gauge");
    w.Sample("tellonce_build_info", {{"version", ops::kVersion}}, 1.0);
    certs::WriteTlsMetrics(tls_status(), w);
  });
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("listen_address: cannot listen on ", options_.listen_address));
  }
  serving_.store(true);
  if (!options_.admin_address.empty()) {
    absl::StatusOr<std::unique_ptr<ops::AdminServer>> admin = ops::AdminServer::Start(
        {.address = options_.admin_address, .metrics = &metrics_, .not_ready = [this] {
           std::vector<std::string> reasons;
           if (!serving_.load()) reasons.push_back("connector: shutting down");
           if (const absl::Status usable = tls_status().usable; !usable.ok()) {
             reasons.push_back(absl::StrCat("tls: ", usable.message()));
           }
           return reasons;
         }});
    if (!admin.ok()) return admin.status();
    admin_ = *std::move(admin);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ConnectorServer>> ConnectorServer::Start(
    const ConnectorOptions& options, AttributeSource* source) {
  if (source == nullptr) return InvalidField("source", "required");
  return Start(options, source, nullptr);
}

absl::StatusOr<std::unique_ptr<ConnectorServer>> ConnectorServer::Start(
    const ConnectorOptions& options, AttributeSource* source, ChangeHandler* handler) {
  auto server = std::make_unique<ConnectorServerImpl>(options);
  if (absl::Status s = server->Init(source, handler); !s.ok()) return s;
  return server;
}

}  // namespace tellonce::connectors
