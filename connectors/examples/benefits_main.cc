// tellonce-benefits: the social benefits agency's connector, a consumer like the tax
// office: it provides no attributes and, when subscribed to changes of address, pulls
// the new person.address through the broker for the purpose TAX_ASSESSMENT (the only
// other purpose of the sample directory) with its own certificate. Without the
// citizen's consent or a mandate it is told nothing at all: the broker decides who may
// know of a change before it delivers (AddressFollower, change_of_address.h).
//
//   tellonce-benefits --config FILE [--port-file FILE]
//
// The configuration needs broker_address.

#include "connectors/examples/change_of_address.h"

int main(int argc, char** argv) {
  return tellonce::connectors::examples::RunAddressFollower(
      "tellonce-benefits", "Social Benefits Agency", "TAX_ASSESSMENT", argc, argv);
}
