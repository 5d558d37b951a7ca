// tellonce-bank: Nordbank's connector, authoritative for a customer's current account
// and the mortgage interest they paid last year.
//
//   tellonce-bank --config FILE [--port-file FILE]

#include "connectors/examples/agency.h"

int main(int argc, char** argv) {
  using tellonce::v1::DECIMAL;
  using tellonce::v1::STRING;
  return tellonce::connectors::examples::RunAgency(
      {.program = "tellonce-bank",
       .description = "Nordbank",
       .attributes = {{"bank.account_iban", STRING}, {"bank.interest_paid", DECIMAL}}},
      argc, argv);
}
