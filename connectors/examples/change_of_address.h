#ifndef TELLONCE_CONNECTORS_EXAMPLES_CHANGE_OF_ADDRESS_H_
#define TELLONCE_CONNECTORS_EXAMPLES_CHANGE_OF_ADDRESS_H_

// A change of address, told once ("tell us once", DESIGN.md flow 3), in the example
// agencies. The provider's side: the civil registry records the move and tells the
// broker,
//
//   tellonce-registry --config FILE move --citizen ID --address TEXT [--event-id ID]
//
// which updates the registry's data_file (atomically, so the running connector, which
// follows the file, serves the new address from its next fetch on) and publishes an
// ADDRESS_CHANGED event for person.address to the broker at broker_address, with the
// registry's certificate. The broker passes the event, never the address, on to the
// subscribers that have a basis. The subscribers' side: AddressFollower, the change
// handler of tellonce-tax and tellonce-benefits, pulls the new value through the broker.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "connectors/sdk.h"
#include "grpcpp/channel.h"
#include "tellonce/v1/exchange.grpc.pb.h"

namespace tellonce::connectors::examples {

// The attribute and event type a move changes and announces.
inline constexpr char kAddressAttribute[] = "person.address";
inline constexpr char kAddressChanged[] = "ADDRESS_CHANGED";
// Longest address accepted, in bytes (the broker's default value limit is 4096).
inline constexpr size_t kMaxAddressBytes = 1024;

struct RecordedMove {
  // False when the record already held this address (a repeated command): the file is
  // left as it is.
  bool changed = false;
  // When the record took this address: now for a change, else the record's as_of. The
  // event's occurred_at, so that repeating a move publishes the very same event.
  absl::Time as_of;
};

// Sets person.address of `citizen_id` in the records file at `path` (text-format
// tellonce.v1.AgencyRecords) to `address`, with as_of `now`, and replaces the file
// atomically (WriteFileAtomically), keeping the comment block at its top. Holds an
// exclusive lock on "<path>.lock" meanwhile, so two moves never lose one another.
// Errors: INVALID_ARGUMENT "address: ..." for an empty address, one longer than
// kMaxAddressBytes, with control characters or not UTF-8; NOT_FOUND "no record of this
// citizen" (without the id); the file's parse and I/O errors, naming it.
absl::StatusOr<RecordedMove> RecordMove(const std::string& path, const std::string& citizen_id,
                                        const std::string& address, absl::Time now);

// The event id a move publishes unless told otherwise: "address-" and 20 hex digits of
// SHA-256 over citizen, address and as_of, so the same move always gets the same id
// (publishing is idempotent by event id) and the id does not reveal the citizen.
std::string DefaultMoveEventId(const std::string& citizen_id, const std::string& address,
                               absl::Time as_of);

// The `move` command, whole: flags (argv as given to main), RecordMove on the
// configuration's data_file, then NotificationService.PublishChange to broker_address.
// Prints what it did on stdout and errors on stderr. Returns the exit code: 0 when the
// broker acknowledged the event (also as a replay of an earlier one), 1 when the record
// or the publication failed (the message says how to retry: the same command again), 2
// on bad usage.
int RunMoveCommand(const std::string& program, int argc, char** argv);

// A subscriber's reaction to a change of address: on an event naming person.address it
// pulls the new value through the broker's ExchangeService (GetAttributes, with the
// agency's own certificate, for `purpose`), checked and audited there like any fetch. It
// logs (ops/log.h) that it learned of the change and fetched it, with the event, delivery
// and exchange ids an operator traces it by; never the value, nor the citizen. Other
// events are acknowledged and logged. Thread-safe.
class AddressFollower final : public ChangeHandler {
 public:
  // `broker` is a channel to the broker (BrokerChannel).
  AddressFollower(std::string purpose, std::shared_ptr<grpc::Channel> broker)
      : purpose_(std::move(purpose)),
        exchange_(tellonce::v1::ExchangeService::NewStub(std::move(broker))) {}

  // OK once the new address is fetched, or when the broker says the agency may not have
  // it now (NO_BASIS, REVOKED, ...: acknowledged without it, since a retry would not
  // help); UNAVAILABLE when the broker or the registry cannot answer now, so the broker
  // delivers again later; the broker's refusal of the call (PERMISSION_DENIED, ...) as
  // is, so the delivery ends up dead and visible to operators.
  absl::Status OnChange(const ChangeContext& ctx) override;

 private:
  const std::string purpose_;
  std::unique_ptr<tellonce::v1::ExchangeService::Stub> exchange_;
};

// The process of a consumer agency that follows changes of address (tellonce-tax,
// tellonce-benefits): RunConnectorParts with an AddressFollower pulling for `purpose`
// and no attribute source (FetchAttributes is UNIMPLEMENTED). Needs broker_address.
int RunAddressFollower(const std::string& program, const std::string& description,
                       const std::string& purpose, int argc, char** argv);

}  // namespace tellonce::connectors::examples

#endif  // TELLONCE_CONNECTORS_EXAMPLES_CHANGE_OF_ADDRESS_H_
