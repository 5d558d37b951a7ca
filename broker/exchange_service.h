#ifndef TELLONCE_BROKER_EXCHANGE_SERVICE_H_
#define TELLONCE_BROKER_EXCHANGE_SERVICE_H_

#include "broker/exchange.h"
#include "consent/directory.h"
#include "tellonce/v1/exchange.grpc.pb.h"

namespace tellonce::broker {

// ExchangeService over gRPC's callback API. Thin: authorizes the caller (consumer
// role, from its certificate), passes its deadline to the Exchange core and maps the
// status.
class ExchangeServiceImpl final : public tellonce::v1::ExchangeService::CallbackService {
 public:
  // Not owned; both must outlive the service.
  ExchangeServiceImpl(const consent::DirectoryHolder* directory, Exchange* exchange)
      : directory_(directory), exchange_(exchange) {}

  grpc::ServerUnaryReactor* GetAttributes(grpc::CallbackServerContext* context,
                                          const tellonce::v1::GetAttributesRequest* request,
                                          tellonce::v1::GetAttributesResponse* response) override;

 private:
  const consent::DirectoryHolder* directory_;
  Exchange* exchange_;
};

}  // namespace tellonce::broker

#endif  // TELLONCE_BROKER_EXCHANGE_SERVICE_H_
