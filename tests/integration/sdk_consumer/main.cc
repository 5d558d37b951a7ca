// hello_connector: the smallest provider connector an agency can write against the
// installed SDK. It answers `person.name` for every citizen with a fixed value.
//
//   hello_connector --config FILE [--port-file FILE] [--admin-port-file FILE]

#include <signal.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "connectors/config.h"
#include "connectors/sdk.h"
#include "google/protobuf/util/time_util.h"
#include "tellonce/v1/connector.pb.h"

namespace {

class HelloSource final : public tellonce::connectors::AttributeSource {
 public:
  absl::StatusOr<tellonce::v1::FetchAttributesResponse> Fetch(
      const tellonce::connectors::FetchContext& ctx) override {
    tellonce::v1::FetchAttributesResponse response;
    for (const std::string& name : ctx.attributes) {
      if (name != "person.name") continue;
      tellonce::v1::FetchedAttribute* attribute = response.add_attributes();
      attribute->set_name(name);
      attribute->mutable_value()->set_string_value("Served by the installed SDK");
    }
    *response.mutable_as_of() = google::protobuf::util::TimeUtil::GetCurrentTime();
    return response;
  }
};

void WritePort(const std::string& path, int port) {
  if (path.empty()) return;
  std::ofstream(path + ".tmp") << port << "\n";
  std::rename((path + ".tmp").c_str(), path.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  std::string config, port_file, admin_port_file;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--config") config = argv[i + 1];
    if (flag == "--port-file") port_file = argv[i + 1];
    if (flag == "--admin-port-file") admin_port_file = argv[i + 1];
  }
  if (config.empty()) {
    std::fprintf(stderr, "usage: hello_connector --config FILE [--port-file FILE]\n");
    return 2;
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<tellonce::connectors::ConnectorOptions> options =
      tellonce::connectors::LoadConnectorConfig(config);
  if (!options.ok()) {
    std::fprintf(stderr, "hello_connector: %s\n", std::string(options.status().message()).c_str());
    return 1;
  }
  HelloSource source;
  auto server = tellonce::connectors::ConnectorServer::Start(*options, &source);
  if (!server.ok()) {
    std::fprintf(stderr, "hello_connector: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  WritePort(admin_port_file, (*server)->admin_port());
  WritePort(port_file, (*server)->port());
  int signal = 0;
  sigwait(&signals, &signal);
  (*server)->Shutdown();
  return 0;
}
