#include "ops/malformed_request.h"

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/support/interceptor.h"

namespace tellonce::ops {
namespace {

class MalformedRequestInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit MalformedRequestInterceptor(const std::string* request_type)
      : request_type_(request_type) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (request_type_ != nullptr &&
        methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS) &&
        methods->GetSendStatus().error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      methods->ModifySendStatus(
          grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                       absl::StrCat("request: does not parse as ", *request_type_)));
    }
    methods->Proceed();
  }

 private:
  const std::string* request_type_;  // null: not one of the services' methods
};

class Factory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(const std::vector<std::string>& services) {
    for (const std::string& name : services) {
      const google::protobuf::ServiceDescriptor* service =
          google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(name);
      if (service == nullptr) continue;
      for (int i = 0; i < service->method_count(); ++i) {
        const google::protobuf::MethodDescriptor* method = service->method(i);
        request_types_[absl::StrCat("/", service->full_name(), "/", method->name())] =
            method->input_type()->full_name();
      }
    }
  }

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    const char* path = info->method();
    auto it = path == nullptr ? request_types_.end() : request_types_.find(path);
    return new MalformedRequestInterceptor(it == request_types_.end() ? nullptr : &it->second);
  }

 private:
  absl::flat_hash_map<std::string, std::string> request_types_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MalformedRequestInterceptorFactory(const std::vector<std::string>& services) {
  return std::make_unique<Factory>(services);
}

}  // namespace tellonce::ops
