// Starts a PortalFederation (portal_harness.h) for the browser tests and demos, writes
// what a client needs to know as JSON to the file given as the first argument, and keeps
// everything running until stdin closes or SIGTERM arrives; then stops it all.
//
//   portal_federation OUT.json WORK_DIR

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tests/portal/portal_harness.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: portal_federation OUT.json WORK_DIR\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  absl::StatusOr<std::unique_ptr<tellonce::testing::PortalFederation>> f =
      tellonce::testing::PortalFederation::Start(argv[2]);
  if (!f.ok()) {
    std::fprintf(stderr, "portal_federation: %s\n", std::string(f.status().message()).c_str());
    return 1;
  }
  const auto& fed = **f;
  const std::string json = absl::StrCat(
      "{\"portal_url\":\"", fed.portal_url(), "\",\"portal_port\":", fed.portal_port(),
      ",\"broker\":\"", fed.broker_address(), "\",\"idp_port\":", fed.idp_port, ",\"ca\":\"",
      fed.pki.ca(), "\",\"pki\":\"", fed.pki.dir, "\",\"cli\":\"", tellonce::testing::CliBinary(),
      "\",\"citizens\":[\"", tellonce::testing::kJaan, "\",\"", tellonce::testing::kMari, "\"]}\n");
  {
    const std::string tmp = std::string(argv[1]) + ".tmp";
    std::ofstream(tmp) << json;
    std::rename(tmp.c_str(), argv[1]);
  }
  // Until stdin closes (the test that started us ended, however it ended) or SIGTERM.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::thread([] {
    char buf[256];
    while (read(STDIN_FILENO, buf, sizeof buf) > 0) {
    }
    kill(getpid(), SIGTERM);
  }).detach();
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  return 0;
}
