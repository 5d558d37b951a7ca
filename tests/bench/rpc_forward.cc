// rpc_forward: the naive forwarder of issue 6, measured beside the broker so the
// broker's cost can be read against a forwarder that checks nothing and records
// nothing. It serves ConnectorService.FetchAttributes over mutual TLS and passes each
// call on, one upstream call per call, over one multiplexed mutual-TLS channel to the
// connector; answers and errors come back unchanged. gRPC's callback API on both
// sides, default threads. Benchmarks only: it authorizes no one beyond the CA.
//
//   rpc_forward --ca ca.pem --cert me.pem --key me.key --upstream HOST:PORT
//               --upstream-cert id.pem --upstream-key id.key --upstream-id SPIFFE_ID
//               --port-file FILE
//
// Listens on 127.0.0.1 (a free port, written to --port-file once serving) until
// SIGTERM or SIGINT.

#include <signal.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "certs/tls.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/server_builder.h"
#include "tellonce/v1/connector.grpc.pb.h"
#include "tests/bench/flags.h"

namespace {

using tellonce::v1::FetchAttributesRequest;
using tellonce::v1::FetchAttributesResponse;

class Forwarder final : public tellonce::v1::ConnectorService::CallbackService {
 public:
  explicit Forwarder(std::shared_ptr<grpc::Channel> upstream)
      : stub_(tellonce::v1::ConnectorService::NewStub(std::move(upstream))) {}

  grpc::ServerUnaryReactor* FetchAttributes(grpc::CallbackServerContext* context,
                                            const FetchAttributesRequest* request,
                                            FetchAttributesResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    auto upstream = std::make_shared<grpc::ClientContext>();
    upstream->set_deadline(context->deadline());
    // The request and response stay valid until Finish; the answer is written into
    // the response the server sends.
    stub_->async()->FetchAttributes(
        upstream.get(), request, response,
        [reactor, upstream](grpc::Status status) { reactor->Finish(status); });
    return reactor;
  }

 private:
  std::unique_ptr<tellonce::v1::ConnectorService::Stub> stub_;
};

constexpr char kUsage[] =
    "usage: rpc_forward --ca CA --cert PEM --key KEY --upstream HOST:PORT\n"
    "                   --upstream-cert PEM --upstream-key KEY --upstream-id SPIFFE_ID\n"
    "                   --port-file FILE\n";

}  // namespace

int main(int argc, char** argv) {
  std::string ca, cert, key, upstream, upstream_cert, upstream_key, upstream_id, port_file;
  using tellonce::bench::Text;
  if (!tellonce::bench::ParseFlags(argc, argv,
                                   {{"--ca", Text(&ca)},
                                    {"--cert", Text(&cert)},
                                    {"--key", Text(&key)},
                                    {"--upstream", Text(&upstream)},
                                    {"--upstream-cert", Text(&upstream_cert)},
                                    {"--upstream-key", Text(&upstream_key)},
                                    {"--upstream-id", Text(&upstream_id)},
                                    {"--port-file", Text(&port_file)}},
                                   kUsage)) {
    return 2;
  }
  for (const std::string* required :
       {&ca, &cert, &key, &upstream, &upstream_cert, &upstream_key, &upstream_id, &port_file}) {
    if (required->empty()) {
      std::fputs(kUsage, stderr);
      return 2;
    }
  }

  // Signals go to the sigwait below only (blocked before gRPC starts its threads).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto channel_creds =
      tellonce::certs::MakeChannelCredentials({ca, upstream_cert, upstream_key, ""}, upstream_id);
  auto server_creds = tellonce::certs::MakeServerCredentials({ca, cert, key, ""});
  if (!channel_creds.ok() || !server_creds.ok()) {
    std::fprintf(
        stderr, "rpc_forward: %s\n",
        (channel_creds.ok() ? server_creds.status() : channel_creds.status()).ToString().c_str());
    return 1;
  }
  Forwarder forwarder(grpc::CreateChannel(upstream, *channel_creds));

  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", *server_creds, &port);
  builder.RegisterService(&forwarder);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "rpc_forward: cannot listen on 127.0.0.1\n");
    return 1;
  }
  {
    const std::string tmp = port_file + ".tmp";
    std::ofstream(tmp) << port << "\n";
    std::rename(tmp.c_str(), port_file.c_str());
  }
  int signal = 0;
  while (sigwait(&signals, &signal) != 0) {
  }
  server->Shutdown();
  return 0;
}
