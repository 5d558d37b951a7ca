#include "ops/rpc_metrics.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/support/interceptor.h"

namespace tellonce::ops {
namespace {

// Status code names as gRPC spells them, indexed by grpc::StatusCode.
constexpr const char* kCodeNames[17] = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};

}  // namespace

const char* StatusCodeName(int code) {
  return code >= 0 && code < 17 ? kCodeNames[code] : "UNKNOWN";
}

namespace {

RpcMetrics::Method MakeMethod(Family<Counter>& requests, Family<Histogram>& durations,
                              const std::string& service, const std::string& method) {
  RpcMetrics::Method m;
  for (int code = 0; code < 17; ++code) {
    m.by_code[code] = &requests.With({service, method, kCodeNames[code]});
  }
  m.duration = &durations.With({service, method});
  return m;
}

class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit MetricsInterceptor(const RpcMetrics::Method& method)
      : method_(method), start_(std::chrono::steady_clock::now()) {}

  ~MetricsInterceptor() override {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    method_.by_code[code_]->Add();
    method_.duration->Observe(seconds);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const int code = static_cast<int>(methods->GetSendStatus().error_code());
      code_ = code >= 0 && code < 17 ? code : 2;  // UNKNOWN
    }
    methods->Proceed();
  }

 private:
  const RpcMetrics::Method& method_;
  const std::chrono::steady_clock::time_point start_;
  int code_ = 1;  // CANCELLED until a status is sent
};

class MetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(const RpcMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new MetricsInterceptor(metrics_->Find(info->method()));
  }

 private:
  const RpcMetrics* metrics_;
};

}  // namespace

RpcMetrics::RpcMetrics(MetricsRegistry* registry, const std::vector<std::string>& services) {
  Family<Counter>& requests = registry->AddCounter(
      "tellonce_rpc_requests_total", "gRPC calls served, by service, method and status code.",
      {"service", "method", "code"});
  Family<Histogram>& durations = registry->AddHistogram(
      "tellonce_rpc_duration_seconds",
      "Time from a call's arrival to its status being sent, by service and method.",
      {"service", "method"}, LatencyBuckets());
  for (const std::string& name : services) {
    const google::protobuf::ServiceDescriptor* service =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(name);
    if (service == nullptr) continue;
    for (int i = 0; i < service->method_count(); ++i) {
      const std::string& method = service->method(i)->name();
      methods_[absl::StrCat("/", service->full_name(), "/", method)] =
          MakeMethod(requests, durations, service->name(), method);
    }
  }
  unknown_ = MakeMethod(requests, durations, "unknown", "unknown");
}

const RpcMetrics::Method& RpcMetrics::Find(const char* path) const {
  if (path == nullptr) return unknown_;
  auto it = methods_.find(absl::string_view(path));
  return it == methods_.end() ? unknown_ : it->second;
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
RpcMetrics::InterceptorFactory() {
  return std::make_unique<MetricsInterceptorFactory>(this);
}

}  // namespace tellonce::ops
