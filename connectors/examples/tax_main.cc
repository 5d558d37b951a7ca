// tellonce-tax: the tax office's connector. The tax office is a consumer: it provides no
// attributes (every fetch is NOT_FOUND) and its connector is where the broker will
// deliver change notifications once they exist (issue 5).
//
//   tellonce-tax --config FILE [--port-file FILE]

#include "connectors/examples/agency.h"

int main(int argc, char** argv) {
  return tellonce::connectors::examples::RunAgency(
      {.program = "tellonce-tax", .description = "Tax Office", .attributes = {}}, argc, argv);
}
