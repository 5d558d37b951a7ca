#include "broker/exchange.h"

#include <map>
#include <memory>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/civil_time.h"
#include "consent/access_decision.h"
#include "consent/validation.h"
#include "ops/log.h"
#include "proto/attribute_value.h"
#include "proto/time.h"

namespace tellonce::broker {
namespace {

using tellonce::v1::AttributeResult;
using tellonce::v1::ResultCode;

// Bytes of the variable-length member of a value (0 for numbers and booleans).
size_t ValueBytes(const tellonce::v1::AttributeValue& value) {
  switch (value.value_case()) {
    case tellonce::v1::AttributeValue::kStringValue:
      return value.string_value().size();
    case tellonce::v1::AttributeValue::kDecimalValue:
      return value.decimal_value().size();
    case tellonce::v1::AttributeValue::kDateValue:
      return value.date_value().size();
    default:
      return 0;
  }
}

// The plausible range of a provider's as_of (exchange.proto, Provenance.as_of).
constexpr absl::Duration kAsOfClockSkew = absl::Minutes(5);

// OK when a provider's as_of is a valid time from 1900-01-01 up to `now` plus the
// allowed clock skew; INVALID_ARGUMENT "as_of: ..." otherwise.
absl::Status CheckAsOf(const google::protobuf::Timestamp& as_of, absl::Time now) {
  absl::StatusOr<absl::Time> t = CheckedFromProtoTime(as_of, "as_of");
  if (!t.ok()) return t.status();
  if (*t < absl::FromCivil(absl::CivilSecond(1900, 1, 1), absl::UTCTimeZone())) {
    return absl::InvalidArgumentError("as_of: before 1900-01-01");
  }
  if (*t > now + kAsOfClockSkew) {
    return absl::InvalidArgumentError("as_of: more than 5 minutes in the future");
  }
  return absl::OkStatus();
}

// The result code for a failed connector call.
ResultCode CodeForCallStatus(const grpc::Status& status) {
  switch (status.error_code()) {
    case grpc::StatusCode::NOT_FOUND:
      return tellonce::v1::RESULT_NOT_FOUND;
    case grpc::StatusCode::UNAVAILABLE:
      return tellonce::v1::RESULT_PROVIDER_UNAVAILABLE;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return tellonce::v1::RESULT_DEADLINE_EXCEEDED;
    default:
      return tellonce::v1::RESULT_PROVIDER_ERROR;
  }
}

std::string DetailForCallStatus(const grpc::Status& status) {
  // The pool's own refusals (breaker open, provider limit) say which limit, and why.
  if (status.error_details() == ConnectorPool::kRefusedByBroker) return status.error_message();
  switch (status.error_code()) {
    case grpc::StatusCode::NOT_FOUND:
      return "the provider has no record of this citizen";
    case grpc::StatusCode::UNAVAILABLE:
      return "the provider's connector cannot be reached";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "the provider did not answer in time";
    default:
      // The connector's own message is not passed on: it is not ours to vouch for.
      return absl::StrCat("the provider failed (", static_cast<int>(status.error_code()), ")");
  }
}

}  // namespace

absl::Status ValidateGetAttributes(const tellonce::v1::GetAttributesRequest& request,
                                   const consent::Directory& directory,
                                   const ExchangeOptions& options) {
  const consent::RequestLimits limits{.max_string_bytes = options.max_string_bytes};
  if (absl::Status s = consent::CheckToken("request_id", request.request_id(), limits); !s.ok()) {
    return s;
  }
  if (absl::Status s = consent::CheckCitizen(request.citizen_id(), directory, limits); !s.ok()) {
    return s;
  }
  if (request.attributes().empty())
    return consent::InvalidField("attributes", "at least one is required");
  if (static_cast<uint32_t>(request.attributes_size()) > options.max_attributes_per_request) {
    return consent::InvalidField(
        "attributes", absl::StrCat("at most ", options.max_attributes_per_request, " per request"));
  }
  absl::flat_hash_set<std::string_view> seen;
  for (int i = 0; i < request.attributes_size(); ++i) {
    const std::string& name = request.attributes(i);
    const std::string field = absl::StrCat("attributes[", i, "]");
    if (absl::Status s = consent::CheckToken(field, name, limits); !s.ok()) return s;
    if (!seen.insert(name).second) return consent::InvalidField(field, "repeated");
  }
  if (absl::Status s = consent::CheckToken("purpose", request.purpose(), limits); !s.ok()) {
    return s;
  }
  if (directory.FindPurpose(request.purpose()) == nullptr) {
    return consent::InvalidField("purpose", "not a purpose of the directory");
  }
  return absl::OkStatus();
}

// Refusals are logged at WARN, at most one line per kind per interval (with a count of
// the lines held back): the access log has every one of them, the log is for operators.
static ops::LogThrottle& RefusalLog() {
  static ops::LogThrottle* throttle = new ops::LogThrottle(absl::Seconds(10));
  return *throttle;
}
static ops::LogThrottle& RejectedAnswerLog() {
  static ops::LogThrottle* throttle = new ops::LogThrottle(absl::Seconds(10));
  return *throttle;
}

// The state of one GetAttributes call as it moves through the steps.
struct Exchange::Call {
  std::string consumer;
  tellonce::v1::GetAttributesRequest request;
  std::shared_ptr<const consent::Directory> directory;
  absl::Time deadline;
  std::string exchange_id;
  std::vector<consent::AccessDecision> decisions;
  Done done;
  // ONE_TIME consents this call has spent, and how many spending rounds it ran.
  std::vector<std::string> spent;
  int spend_rounds = 0;

  absl::Mutex mu;
  // Steps still outstanding in the current phase.
  int pending ABSL_GUARDED_BY(mu) = 0;
  // One per requested attribute, filled as answers arrive.
  std::vector<AttributeResult> results ABSL_GUARDED_BY(mu);
  // Attributes whose ONE_TIME consent another request spent or revoked first.
  std::vector<size_t> lost ABSL_GUARDED_BY(mu);
};

namespace {

// Spending rounds per call: the first, then retries on other unspent consents.
constexpr int kMaxSpendRounds = 4;

}  // namespace

void Exchange::GetAttributes(const std::string& consumer,
                             const tellonce::v1::GetAttributesRequest& request, absl::Time deadline,
                             Done done, std::shared_ptr<const consent::Directory> directory) {
  counters_.requests.fetch_add(1, std::memory_order_relaxed);
  if (in_flight_.fetch_add(1, std::memory_order_relaxed) >= options_.max_in_flight) {
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    counters_.refused_busy.fetch_add(1, std::memory_order_relaxed);
    done(absl::ResourceExhaustedError(absl::StrCat("broker busy: ", options_.max_in_flight,
                                                   " exchanges in progress; retry later")));
    return;
  }
  if (!AcquireConsumer(consumer)) {
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    counters_.refused_consumer_busy.fetch_add(1, std::memory_order_relaxed);
    done(absl::ResourceExhaustedError(absl::StrCat(
        "consumer busy: ", options_.max_in_flight_per_consumer,
        " exchanges of this consumer in progress (exchange.max_in_flight_per_consumer); "
        "retry later")));
    return;
  }
  // Every path below ends in exactly one call of `done`, which frees the slots first.
  done = [this, consumer, done = std::move(done)](
             absl::StatusOr<tellonce::v1::GetAttributesResponse> result) mutable {
    ReleaseConsumer(consumer);
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    done(std::move(result));
  };
  auto call = std::make_shared<Call>();
  call->directory = directory != nullptr ? std::move(directory) : directory_->Current();
  if (absl::Status valid = ValidateGetAttributes(request, *call->directory, options_);
      !valid.ok()) {
    done(std::move(valid));
    return;
  }
  const absl::Time now = options_.clock();
  call->consumer = consumer;
  call->request = request;
  call->deadline = deadline == absl::InfiniteFuture() ? now + options_.default_deadline : deadline;
  // A caller asking for an hour holds its slots for at most max_deadline.
  call->deadline = std::min(call->deadline, now + options_.max_deadline);
  call->exchange_id = consent::NewConsentId(now);
  call->done = std::move(done);

  std::vector<std::string> attributes(request.attributes().begin(), request.attributes().end());
  absl::StatusOr<std::vector<consent::AccessDecision>> decisions =
      consent::DecideAccess(*call->directory, *store_, consumer, request.citizen_id(),
                            request.purpose(), attributes, now);
  if (!decisions.ok()) {
    call->done(decisions.status());
    return;
  }
  call->decisions = *std::move(decisions);
  {
    absl::MutexLock lock(&call->mu);
    call->results.resize(call->decisions.size());
    for (size_t i = 0; i < call->decisions.size(); ++i) {
      const consent::AccessDecision& d = call->decisions[i];
      AttributeResult& r = call->results[i];
      r.set_name(d.attribute);
      r.set_code(d.code);
      if (d.basis.kind_case() != tellonce::v1::Basis::KIND_NOT_SET) *r.mutable_basis() = d.basis;
      if (!d.provider.empty()) r.mutable_provenance()->set_provider(d.provider);
      if (d.code != tellonce::v1::RESULT_OK) r.set_detail(d.detail);
    }
  }
  SpendOneTimeConsents(std::move(call));
}

bool Exchange::AcquireConsumer(const std::string& consumer) {
  absl::MutexLock lock(&consumers_mu_);
  uint32_t& n = consumer_in_flight_[consumer];
  if (n >= options_.max_in_flight_per_consumer) return false;
  ++n;
  return true;
}

void Exchange::ReleaseConsumer(const std::string& consumer) {
  absl::MutexLock lock(&consumers_mu_);
  auto it = consumer_in_flight_.find(consumer);
  if (it != consumer_in_flight_.end() && --it->second == 0) consumer_in_flight_.erase(it);
}

void Exchange::SpendOneTimeConsents(std::shared_ptr<Call> call) {
  std::vector<std::string> to_spend;
  for (const consent::AccessDecision& d : call->decisions) {
    if (d.code == tellonce::v1::RESULT_OK && d.spends_one_time_consent &&
        std::find(call->spent.begin(), call->spent.end(), d.basis.consent_id()) ==
            call->spent.end() &&
        std::find(to_spend.begin(), to_spend.end(), d.basis.consent_id()) == to_spend.end()) {
      to_spend.push_back(d.basis.consent_id());
    }
  }
  if (to_spend.empty()) {
    FetchFromProviders(std::move(call));
    return;
  }
  ++call->spend_rounds;
  {
    absl::MutexLock lock(&call->mu);
    call->pending = static_cast<int>(to_spend.size());
    call->lost.clear();
  }
  const absl::Time now = options_.clock();
  for (const std::string& consent_id : to_spend) {
    store_->MarkUsed(consent_id, call->consumer, now,
                     [this, call, consent_id](absl::StatusOr<tellonce::v1::Consent> spent) {
                       bool last = false;
                       {
                         absl::MutexLock lock(&call->mu);
                         if (spent.ok()) {
                           call->spent.push_back(consent_id);
                         } else {
                           // Spent or revoked by someone else in the meantime: decided
                           // again below, on another unspent consent if there is one.
                           const bool lost = absl::IsFailedPrecondition(spent.status());
                           for (size_t i = 0; i < call->decisions.size(); ++i) {
                             consent::AccessDecision& d = call->decisions[i];
                             if (!d.spends_one_time_consent || d.basis.consent_id() != consent_id)
                               continue;
                             if (lost) {
                               call->lost.push_back(i);
                               continue;
                             }
                             d.code = tellonce::v1::RESULT_PROVIDER_ERROR;
                             d.detail = "the consent could not be spent";
                             call->results[i].set_code(d.code);
                             call->results[i].set_detail(d.detail);
                           }
                         }
                         last = --call->pending == 0;
                       }
                       if (last) RedecideLost(call);
                     });
  }
}

void Exchange::RedecideLost(std::shared_ptr<Call> call) {
  std::vector<size_t> lost;
  {
    absl::MutexLock lock(&call->mu);
    lost.swap(call->lost);
  }
  if (lost.empty()) {
    FetchFromProviders(std::move(call));
    return;
  }
  // The consents these attributes relied on are no longer ACTIVE: decide them again,
  // so another unspent consent is used, or the refusal says why (RESULT_CONSENT_USED
  // or RESULT_CONSENT_REVOKED, from the consent's own status).
  std::vector<std::string> attributes;
  for (size_t i : lost) attributes.push_back(call->decisions[i].attribute);
  absl::StatusOr<std::vector<consent::AccessDecision>> again =
      consent::DecideAccess(*call->directory, *store_, call->consumer, call->request.citizen_id(),
                            call->request.purpose(), attributes, options_.clock());
  {
    absl::MutexLock lock(&call->mu);
    for (size_t k = 0; k < lost.size(); ++k) {
      consent::AccessDecision& d = call->decisions[lost[k]];
      AttributeResult& r = call->results[lost[k]];
      if (!again.ok()) {
        d.code = tellonce::v1::RESULT_PROVIDER_ERROR;
        d.detail = "the consent could not be spent";
      } else {
        d = (*again)[k];
        if (d.code == tellonce::v1::RESULT_OK && d.spends_one_time_consent &&
            call->spend_rounds >= kMaxSpendRounds) {
          d.code = tellonce::v1::RESULT_CONSENT_USED;
          d.detail = "the one-time consent was used";
          d.spends_one_time_consent = false;
        }
      }
      r.set_code(d.code);
      r.clear_basis();
      if (d.basis.kind_case() != tellonce::v1::Basis::KIND_NOT_SET) *r.mutable_basis() = d.basis;
      if (d.code != tellonce::v1::RESULT_OK) {
        r.set_detail(d.detail);
      } else {
        r.clear_detail();
      }
    }
  }
  SpendOneTimeConsents(std::move(call));
}

void Exchange::FetchFromProviders(std::shared_ptr<Call> call) {
  // Allowed attributes grouped by provider, in first-appearance order.
  std::vector<std::pair<std::string, std::vector<size_t>>> groups;
  for (size_t i = 0; i < call->decisions.size(); ++i) {
    const consent::AccessDecision& d = call->decisions[i];
    if (d.code != tellonce::v1::RESULT_OK) continue;
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const auto& g) { return g.first == d.provider; });
    if (it == groups.end()) {
      groups.push_back({d.provider, {i}});
    } else {
      it->second.push_back(i);
    }
  }
  if (groups.empty()) {
    RecordAndAnswer(std::move(call));
    return;
  }
  {
    absl::MutexLock lock(&call->mu);
    call->pending = static_cast<int>(groups.size());
  }

  // Leave the broker time to record and answer before the caller gives up.
  const absl::Time now = options_.clock();
  const absl::Duration remaining = std::max(call->deadline - now, absl::ZeroDuration());
  const absl::Time provider_deadline =
      call->deadline - std::min(absl::Milliseconds(200), remaining / 10);

  for (auto& [provider, indexes] : groups) {
    tellonce::v1::FetchAttributesRequest request;
    request.set_exchange_id(call->exchange_id);
    request.set_citizen_id(call->request.citizen_id());
    request.set_consumer(call->consumer);
    request.set_purpose(call->request.purpose());
    for (size_t i : indexes) request.add_attributes(call->decisions[i].attribute);
    // Several bases may be involved; the first is passed on (the access log has all).
    *request.mutable_basis() = call->decisions[indexes.front()].basis;

    connectors_->Fetch(
        *call->directory, provider, std::move(request), provider_deadline,
        [this, call, indexes = std::move(indexes)](const grpc::Status& status,
                                                   tellonce::v1::FetchAttributesResponse response) {
          if (TakeAnswer(*call, indexes, status, std::move(response))) RecordAndAnswer(call);
        });
  }
}

std::vector<AnswerRejection> TakeProviderAnswer(tellonce::v1::FetchAttributesResponse response,
                                                const consent::Directory& directory,
                                                uint32_t max_value_bytes, absl::Time now,
                                                const std::vector<AttributeResult*>& results) {
  auto fail_all = [&](const std::string& detail) {
    for (AttributeResult* r : results) {
      r->set_code(tellonce::v1::RESULT_PROVIDER_ERROR);
      r->set_detail(detail);
      r->clear_value();
    }
  };
  absl::flat_hash_map<std::string, AttributeResult*> asked;
  for (AttributeResult* r : results) asked[r->name()] = r;
  absl::flat_hash_set<std::string> answered;
  for (const tellonce::v1::FetchedAttribute& a : response.attributes()) {
    if (!asked.contains(a.name()) || !answered.insert(a.name()).second) {
      fail_all("the provider answered with attributes it was not asked for, or twice");
      return {{"", "unasked or repeated attribute"}};
    }
  }
  if (response.has_as_of()) {
    if (absl::Status s = CheckAsOf(response.as_of(), now); !s.ok()) {
      fail_all(absl::StrCat("the provider's answer ", s.message()));
      return {{"", std::string(s.message())}};
    }
  }
  const google::protobuf::Timestamp as_of =
      response.has_as_of() ? response.as_of() : ToProtoTime(now);
  for (AttributeResult* r : results) {
    r->set_code(tellonce::v1::RESULT_NOT_FOUND);
    r->set_detail("the provider has no value of this attribute");
  }
  std::vector<AnswerRejection> rejected;
  for (tellonce::v1::FetchedAttribute& a : *response.mutable_attributes()) {
    AttributeResult& r = *asked[a.name()];
    if (a.not_found()) continue;
    const tellonce::v1::AttributeDef* def = directory.FindAttribute(a.name());
    absl::Status typed = def == nullptr ? absl::InvalidArgumentError("is not in the catalogue")
                                        : CheckAttributeValue(a.value(), def->type());
    if (!typed.ok() || ValueBytes(a.value()) > max_value_bytes) {
      rejected.push_back(
          {a.name(), typed.ok() ? "value over the size limit" : "value of the wrong type"});
      r.set_code(tellonce::v1::RESULT_PROVIDER_ERROR);
      r.set_detail(typed.ok() ? "the provider's value is over the size limit"
                              : absl::StrCat("the provider's value ", typed.message()));
      r.clear_value();
      continue;
    }
    r.set_code(tellonce::v1::RESULT_OK);
    r.clear_detail();
    *r.mutable_value() = std::move(*a.mutable_value());
    *r.mutable_provenance()->mutable_as_of() = as_of;
  }
  return rejected;
}

bool Exchange::TakeAnswer(Call& call, const std::vector<size_t>& indexes,
                          const grpc::Status& status,
                          tellonce::v1::FetchAttributesResponse response) {
  const absl::Time now = options_.clock();
  absl::MutexLock lock(&call.mu);
  if (!status.ok()) {
    counters_.provider_calls_failed.fetch_add(1, std::memory_order_relaxed);
    for (size_t i : indexes) {
      call.results[i].set_code(CodeForCallStatus(status));
      call.results[i].set_detail(DetailForCallStatus(status));
      call.results[i].clear_value();
    }
    return --call.pending == 0;
  }
  std::vector<AttributeResult*> results;
  for (size_t i : indexes) results.push_back(&call.results[i]);
  for (const AnswerRejection& rejection : TakeProviderAnswer(
           std::move(response), *call.directory, options_.max_value_bytes, now, results)) {
    counters_.provider_answers_rejected.fetch_add(1, std::memory_order_relaxed);
    const std::string& provider = call.decisions[indexes.front()].provider;
    if (rejection.attribute.empty()) {
      RejectedAnswerLog().Log(ops::LogLevel::kWarning, "provider answer rejected",
                              {{"provider", provider},
                               {"consumer", call.consumer},
                               {"exchange_id", call.exchange_id},
                               {"reason", rejection.reason}});
    } else {
      RejectedAnswerLog().Log(ops::LogLevel::kWarning, "provider answer rejected",
                              {{"provider", provider},
                               {"consumer", call.consumer},
                               {"exchange_id", call.exchange_id},
                               {"attribute", rejection.attribute},
                               {"reason", rejection.reason}});
    }
  }
  return --call.pending == 0;
}

void Exchange::RecordAndAnswer(std::shared_ptr<Call> call) {
  const absl::Time now = options_.clock();
  std::vector<tellonce::v1::AccessEvent> events;
  tellonce::v1::GetAttributesResponse response;
  {
    absl::MutexLock lock(&call->mu);
    std::string refused_codes;
    size_t refused = 0;
    // One event per (provider, basis, code): the attributes that shared a decision.
    std::map<std::tuple<std::string, std::string, int>, size_t> group_of;
    for (size_t i = 0; i < call->results.size(); ++i) {
      const AttributeResult& r = call->results[i];
      const std::string basis_key = r.basis().SerializeAsString();
      auto key = std::make_tuple(r.provenance().provider(), basis_key, static_cast<int>(r.code()));
      auto [it, inserted] = group_of.emplace(key, events.size());
      if (inserted) {
        tellonce::v1::AccessEvent& e = events.emplace_back();
        *e.mutable_at() = ToProtoTime(now);
        e.set_exchange_id(call->exchange_id);
        e.set_consumer(call->consumer);
        e.set_provider(r.provenance().provider());
        e.set_citizen_id(call->request.citizen_id());
        e.set_purpose(call->request.purpose());
        if (r.has_basis()) *e.mutable_basis() = r.basis();
        e.set_outcome(r.code() == tellonce::v1::RESULT_OK ? tellonce::v1::AccessEvent::ALLOWED
                                                          : tellonce::v1::AccessEvent::DENIED);
        e.set_code(r.code());
      }
      events[it->second].add_attributes(r.name());
      const size_t code = static_cast<size_t>(r.code());
      counters_.results[code < counters_.results.size() ? code : 0].fetch_add(
          1, std::memory_order_relaxed);
      if (r.code() != tellonce::v1::RESULT_OK) {
        if (!refused_codes.empty()) refused_codes.push_back(',');
        refused_codes.append(tellonce::v1::ResultCode_Name(r.code()));
        ++refused;
      }
    }
    if (refused > 0) {
      RefusalLog().Log(ops::LogLevel::kWarning, "exchange refused attributes",
                       {{"consumer", call->consumer},
                        {"exchange_id", call->exchange_id},
                        {"request_id", call->request.request_id()},
                        {"purpose", call->request.purpose()},
                        {"refused", absl::StrCat(refused, " of ", call->results.size())},
                        {"results", refused_codes}});
    }
    response.mutable_results()->Reserve(static_cast<int>(call->results.size()));
    for (AttributeResult& r : call->results) *response.add_results() = std::move(r);
    response.set_exchange_id(call->exchange_id);
  }
  if (!options_.record_access) {
    call->done(std::move(response));
    return;
  }
  log_->Append(std::move(events),
               [call, response = std::move(response)](absl::Status appended) mutable {
                 if (!appended.ok()) {
                   // Unrecorded access is no access: the values are not handed out.
                   call->done(absl::UnavailableError("the access log could not be written"));
                   return;
                 }
                 call->done(std::move(response));
               });
}

}  // namespace tellonce::broker
