// tellonce-tax: the tax office's connector. The tax office is a consumer: it provides no
// attributes (FetchAttributes is UNIMPLEMENTED) and subscribes to changes of address
// (the directory's subscriptions). When the broker delivers one, it pulls the new
// person.address through the broker with its own certificate, for the purpose
// TAX_ASSESSMENT, which the citizen's consent (or a law) must allow like any other fetch
// (AddressFollower, change_of_address.h).
//
//   tellonce-tax --config FILE [--port-file FILE]
//
// The configuration needs broker_address.

#include "connectors/examples/change_of_address.h"

int main(int argc, char** argv) {
  // The annual assessment is sent to where one lives.
  return tellonce::connectors::examples::RunAddressFollower("tellonce-tax", "Tax Office",
                                                            "TAX_ASSESSMENT", argc, argv);
}
