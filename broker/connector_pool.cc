#include "broker/connector_pool.h"

#include "absl/strings/str_cat.h"
#include "certs/identity.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/support/channel_arguments.h"

namespace tellonce::broker {

absl::StatusOr<std::shared_ptr<tellonce::v1::ConnectorService::Stub>> ConnectorPool::StubFor(
    const consent::Directory& directory, const std::string& agency_id) {
  const tellonce::v1::Agency* agency = directory.FindAgency(agency_id);
  if (agency == nullptr || agency->connector_endpoint().empty()) {
    return absl::NotFoundError(absl::StrCat("agency ", agency_id, " has no connector"));
  }
  const std::string& endpoint = agency->connector_endpoint();
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(agency_id);
  if (it != entries_.end() && it->second.endpoint == endpoint) return it->second.stub;

  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      certs::MakeChannelCredentials(options_.tls,
                                    certs::AgencySpiffeId(directory.trust_domain(), agency_id));
  if (!credentials.ok()) return credentials.status();
  grpc::ChannelArguments args;
  const int backoff_ms = static_cast<int>(absl::ToInt64Milliseconds(options_.max_reconnect_backoff));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, std::min(100, backoff_ms));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, backoff_ms);
  // gRPC uses the "minimum reconnect back-off" as the minimum time a connection
  // attempt (TCP and TLS handshake) may take; too small and a slow handshake under load
  // is abandoned and retried forever. A refused connection still fails at once.
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 5000);
  // Notice a connector that vanished without closing its connections.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 20000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  // A channel of its own per connector, not shared through gRPC's global pool.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto stub = std::shared_ptr<tellonce::v1::ConnectorService::Stub>(
      tellonce::v1::ConnectorService::NewStub(
          grpc::CreateCustomChannel(endpoint, *credentials, args)));
  entries_[agency_id] = Entry{endpoint, stub};
  return stub;
}

}  // namespace tellonce::broker
