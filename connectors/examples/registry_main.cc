// tellonce-registry: the civil registry's connector, authoritative for who a person is
// and where they live.
//
//   tellonce-registry --config FILE [--port-file FILE]

#include "connectors/examples/agency.h"

int main(int argc, char** argv) {
  using tellonce::v1::DATE;
  using tellonce::v1::STRING;
  return tellonce::connectors::examples::RunAgency(
      {.program = "tellonce-registry",
       .description = "Civil Registry",
       .attributes = {{"person.name", STRING},
                      {"person.address", STRING},
                      {"person.date_of_birth", DATE}}},
      argc, argv);
}
