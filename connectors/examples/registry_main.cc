// tellonce-registry: the civil registry's connector, authoritative for who a person is
// and where they live, and the registry's one command for a change it must tell once.
//
//   tellonce-registry --config FILE [--port-file FILE]
//   tellonce-registry --config FILE move --citizen ID --address TEXT [--event-id ID]
//
// The first serves the registry's records (followed while serving: a replaced data_file
// is served from the next fetch on). The second records a change of address in that
// file and publishes it to the broker (see change_of_address.h).

#include <cstring>

#include "connectors/examples/agency.h"
#include "connectors/examples/change_of_address.h"

int main(int argc, char** argv) {
  using tellonce::v1::DATE;
  using tellonce::v1::STRING;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "move") == 0) {
      return tellonce::connectors::examples::RunMoveCommand("tellonce-registry", argc, argv);
    }
  }
  return tellonce::connectors::examples::RunAgency({.program = "tellonce-registry",
                                                    .description = "Civil Registry",
                                                    .attributes = {{"person.name", STRING},
                                                                   {"person.address", STRING},
                                                                   {"person.date_of_birth", DATE}}},
                                                   argc, argv);
}
