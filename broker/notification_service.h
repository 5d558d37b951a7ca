#ifndef TELLONCE_BROKER_NOTIFICATION_SERVICE_H_
#define TELLONCE_BROKER_NOTIFICATION_SERVICE_H_

#include "broker/delivery_admin.h"
#include "broker/outbox.h"
#include "broker/publisher.h"
#include "broker/rate_limiter.h"
#include "consent/directory.h"
#include "tellonce/v1/notification.grpc.pb.h"

namespace tellonce::broker {

// NotificationService over gRPC's callback API: provider role, then ChangePublisher.
class NotificationServiceImpl final : public tellonce::v1::NotificationService::CallbackService {
 public:
  // Not owned; all must outlive the service. `publish_limit` (optional) admits each
  // provider's PublishChange calls.
  NotificationServiceImpl(const consent::DirectoryHolder* directory, ChangePublisher* publisher,
                          RateLimiter* publish_limit = nullptr)
      : directory_(directory), publisher_(publisher), publish_limit_(publish_limit) {}

  grpc::ServerUnaryReactor* PublishChange(grpc::CallbackServerContext* context,
                                          const tellonce::v1::PublishChangeRequest* request,
                                          tellonce::v1::PublishChangeResponse* response) override;

 private:
  const consent::DirectoryHolder* directory_;
  ChangePublisher* publisher_;
  RateLimiter* publish_limit_;
};

// DeliveryAdminService over gRPC's callback API. Thin: the caller's agency id from its
// certificate, then the DeliveryAdmin core (the admin role and the request checks).
class DeliveryAdminServiceImpl final : public tellonce::v1::DeliveryAdminService::CallbackService {
 public:
  // Not owned; both must outlive the service. `limits` bounds the pages
  // (limits.max_page_size).
  DeliveryAdminServiceImpl(const consent::DirectoryHolder* directory, Outbox* outbox,
                           consent::RequestLimits limits = {})
      : directory_(directory), admin_(outbox, limits) {}

  grpc::ServerUnaryReactor* ListDeliveries(grpc::CallbackServerContext* context,
                                           const tellonce::v1::ListDeliveriesRequest* request,
                                           tellonce::v1::ListDeliveriesResponse* response) override;
  grpc::ServerUnaryReactor* RetryDeliveries(
      grpc::CallbackServerContext* context, const tellonce::v1::RetryDeliveriesRequest* request,
      tellonce::v1::RetryDeliveriesResponse* response) override;

 private:
  const consent::DirectoryHolder* directory_;
  DeliveryAdmin admin_;
};

}  // namespace tellonce::broker

#endif  // TELLONCE_BROKER_NOTIFICATION_SERVICE_H_
