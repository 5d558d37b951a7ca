// `tellonce publish` (NotificationService, as a provider) and
// `tellonce deliveries list|retry` (DeliveryAdminService, as an operator).

#include <iostream>
#include <string>

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "cli/call.h"
#include "cli/command.h"
#include "proto/time.h"
#include "tellonce/v1/notification.grpc.pb.h"

namespace tellonce::cli {
namespace {

using tellonce::v1::DeliveryAdminService;

int Publish(const Args& args) {
  if (absl::Status s = RequireFlags(args, {"citizen", "event-type", "attributes", "event-id"});
      !s.ok()) {
    return Fail(s);
  }
  tellonce::v1::PublishChangeRequest request;
  request.set_event_id(args.Get("event-id"));
  request.set_citizen_id(args.Get("citizen"));
  request.set_event_type(args.Get("event-type"));
  for (const std::string& a : SplitList(args.Get("attributes"))) request.add_attributes(a);
  absl::Time occurred = absl::Now();
  if (args.Has("occurred-at")) {
    absl::StatusOr<absl::Time> t = ParseTimeFlag("occurred-at", args.Get("occurred-at"));
    if (!t.ok()) return Fail(t.status());
    occurred = *t;
  }
  *request.mutable_occurred_at() = ToProtoTime(occurred);
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Fail(conn.status());
  tellonce::v1::PublishChangeResponse response;
  if (!Call(*conn, [&](grpc::ClientContext* context) {
        return tellonce::v1::NotificationService::NewStub(conn->channel)
            ->PublishChange(context, request, &response);
      })) {
    return kExitFailed;
  }
  if (args.json()) {
    JsonObject().Add("event_id", request.event_id()).Add("replayed", response.replayed()).Print();
    return kExitOk;
  }
  std::cout << "change " << request.event_id() << " "
            << (response.replayed() ? "was already published: nothing new queued"
                                    : "published: every subscriber with a basis will be told")
            << "\n";
  return kExitOk;
}

void PrintDelivery(const tellonce::v1::Delivery& d) {
  const tellonce::v1::ChangeEvent& e = d.event();
  std::cout << "delivery " << d.delivery_id() << "  "
            << tellonce::v1::Delivery::State_Name(d.state()) << "  to " << d.subscriber() << "\n"
            << "  event       " << e.event_type() << " " << e.event_id() << " from " << e.provider()
            << " (" << absl::StrJoin(e.attributes(), ", ") << ")\n"
            << "  citizen     " << e.citizen_id() << "\n"
            << "  attempts    " << d.attempts() << ", next at " << FormatTime(d.next_attempt_at())
            << "\n";
  if (!d.last_error().empty()) std::cout << "  last error  " << d.last_error() << "\n";
}

int ListDeliveries(const Args& args) {
  tellonce::v1::ListDeliveriesRequest request;
  request.set_subscriber(args.Get("subscriber"));
  const std::string state = args.Get("state");
  if (state == "pending") {
    request.set_state(tellonce::v1::Delivery::PENDING);
  } else if (state == "dead") {
    request.set_state(tellonce::v1::Delivery::DEAD);
  } else if (!state.empty()) {
    return Fail(absl::InvalidArgumentError("--state: pending or dead"));
  }
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Fail(conn.status());
  std::unique_ptr<DeliveryAdminService::Stub> stub = DeliveryAdminService::NewStub(conn->channel);
  return ListPages<tellonce::v1::ListDeliveriesResponse>(
      args, *conn, request,
      [&](grpc::ClientContext* context, const auto& r, auto* response) {
        return stub->ListDeliveries(context, r, response);
      },
      [](const tellonce::v1::ListDeliveriesResponse& response) {
        for (const tellonce::v1::Delivery& d : response.deliveries()) PrintDelivery(d);
        return response.deliveries_size();
      },
      "delivery(ies) owed");
}

int RetryDeliveries(const Args& args) {
  tellonce::v1::RetryDeliveriesRequest request;
  for (const std::string& id : SplitList(args.Get("id"))) request.add_delivery_ids(id);
  request.set_subscriber(args.Get("subscriber"));
  if (request.delivery_ids().empty() && request.subscriber().empty() && !args.Has("all")) {
    return Fail(absl::InvalidArgumentError(
        "--id, --subscriber or --all: say which dead deliveries to re-queue"));
  }
  absl::StatusOr<Connection> conn = Connect(args);
  if (!conn.ok()) return Fail(conn.status());
  tellonce::v1::RetryDeliveriesResponse response;
  if (!Call(*conn, [&](grpc::ClientContext* context) {
        return DeliveryAdminService::NewStub(conn->channel)
            ->RetryDeliveries(context, request, &response);
      })) {
    return kExitFailed;
  }
  if (args.json()) {
    PrintJson(response, /*all_fields=*/true);
  } else {
    std::cout << response.requeued() << " dead delivery(ies) re-queued\n";
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> NotificationCommands() {
  std::vector<ops::FlagSpec> list_flags = {
      {"subscriber", "AGENCY", "only deliveries to this agency"},
      {"state", "STATE", "only deliveries in this state: pending or dead"}};
  for (ops::FlagSpec& f : PagingFlags()) list_flags.push_back(std::move(f));
  return {
      {.words = {"publish"},
       .synopsis = "--citizen ID --event-type TYPE --attributes A,B --event-id ID "
                   "[--occurred-at RFC3339]",
       .description = "Report a change once (as the authoritative provider).\n"
                      "The broker tells every subscriber with a basis. Publishing the same event\n"
                      "id again is a no-op.",
       .flags = {{"citizen", "ID", "the citizen's id; required"},
                 {"event-type", "TYPE", "what happened, e.g. ADDRESS_CHANGED; required"},
                 {"attributes", "A,B", "the changed attributes, comma-separated; required"},
                 {"event-id", "ID", "the provider's id for the event; required"},
                 {"occurred-at", "RFC3339", "when it happened; default now"}},
       .run = Publish},
      {.words = {"deliveries", "list"},
       .synopsis = "[--subscriber AGENCY] [--state pending|dead] [--page-size N] "
                   "[--page-token T] [--all]",
       .description = "Change notifications still owed, from the outbox (as an operator).",
       .flags = list_flags,
       .run = ListDeliveries},
      {.words = {"deliveries", "retry"},
       .synopsis = "(--id DELIVERY[,DELIVERY...] | --subscriber AGENCY | --all)",
       .description = "Re-queue dead deliveries (as an operator).",
       .flags = {{"id", "D1,D2", "these dead deliveries"},
                 {"subscriber", "AGENCY", "every dead delivery to this agency"},
                 {"all", "", "every dead delivery"}},
       .run = RetryDeliveries},
  };
}

}  // namespace tellonce::cli
