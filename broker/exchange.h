#ifndef TELLONCE_BROKER_EXCHANGE_H_
#define TELLONCE_BROKER_EXCHANGE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "broker/access_log.h"
#include "broker/connector_pool.h"
#include "consent/consent_store.h"
#include "consent/directory.h"
#include "grpcpp/support/status.h"
#include "tellonce/v1/exchange.pb.h"

namespace tellonce::broker {

// Limits of the exchange flow (BrokerConfig.exchange).
struct ExchangeOptions {
  // Deadline of a GetAttributes call whose caller set none. Default 5 s.
  absl::Duration default_deadline = absl::Seconds(5);
  // Largest attribute value accepted from a connector (string members), bytes.
  // Default 4096.
  uint32_t max_value_bytes = 4096;
  // Most attributes in one request. Default 32.
  uint32_t max_attributes_per_request = 32;
  // Longest request_id and attribute name. Default 256.
  uint32_t max_string_bytes = 256;
  // GetAttributes calls in progress at once; beyond it RESOURCE_EXHAUSTED at once.
  // Default 2048.
  uint32_t max_in_flight = 2048;
  // GetAttributes calls in progress at once for one consumer, so that one greedy
  // consumer cannot take every slot; beyond it RESOURCE_EXHAUSTED at once. Default 512.
  uint32_t max_in_flight_per_consumer = 512;
  // Longest deadline honoured: a caller asking for more gets this. Default 30 s.
  absl::Duration max_deadline = absl::Seconds(30);
  // Record access events (always, except in benchmarks that measure the log's cost).
  bool record_access = true;
  // Source of the current time; tests inject a fake clock.
  std::function<absl::Time()> clock = [] { return absl::Now(); };
};

// What the exchange flow counts, for operators. Monotonic; read with relaxed loads.
struct ExchangeCounters {
  std::atomic<uint64_t> requests{0};
  // Connector answers (or parts of them) dropped: unasked or repeated attributes,
  // values of the wrong type or over the size limit.
  std::atomic<uint64_t> provider_answers_rejected{0};
  std::atomic<uint64_t> provider_calls_failed{0};
  // Calls refused because max_in_flight were in progress.
  std::atomic<uint64_t> refused_busy{0};
  // Calls refused because their consumer had max_in_flight_per_consumer in progress.
  std::atomic<uint64_t> refused_consumer_busy{0};
  // Attribute results answered, indexed by tellonce.v1.ResultCode.
  std::array<std::atomic<uint64_t>, 16> results{};

  // Attributes delivered (RESULT_OK) and refused (every other code), from `results`.
  uint64_t delivered() const { return results[1].load(std::memory_order_relaxed); }
  uint64_t refused() const {
    uint64_t n = 0;
    for (size_t code = 0; code < results.size(); ++code) {
      if (code != 1) n += results[code].load(std::memory_order_relaxed);
    }
    return n;
  }
};

// Checks a GetAttributes request: request_id (1..max_string_bytes, printable ASCII),
// citizen_id (directory rule), attributes (1..max_attributes_per_request, each
// non-empty, at most max_string_bytes, no repeats; names outside the catalogue are
// not an error here but a per-attribute RESULT_UNKNOWN_ATTRIBUTE), purpose (in the
// directory). INVALID_ARGUMENT "<field>: <reason>", never echoing citizen data.
absl::Status ValidateGetAttributes(const tellonce::v1::GetAttributesRequest& request,
                                   const consent::Directory& directory,
                                   const ExchangeOptions& options);

// Why a provider's answer, or a value in it, was not passed on (for the log).
struct AnswerRejection {
  // The attribute whose value was dropped; empty when the whole answer was.
  std::string attribute;
  std::string reason;
};

// Takes a provider's answer to a fetch into `results`, one per attribute it was asked
// for (each named already: AttributeResult.name, distinct, in `directory`'s catalogue),
// checking it on the way (step 5 below): an answer naming an attribute it was not asked
// for, or one twice, or with an as_of outside 1900-01-01 .. now + 5 minutes, is refused
// whole (every result RESULT_PROVIDER_ERROR); otherwise each result becomes RESULT_OK
// with the value and provenance.as_of (the answer's, or `now` when it has none),
// RESULT_NOT_FOUND when the answer says so or does not mention it, or
// RESULT_PROVIDER_ERROR when the value is not of the catalogue's type or a string
// member is over `max_value_bytes`. Other fields of the results are kept. Returns what
// was refused; empty when everything was taken. Pure; the untrusted-input boundary the
// fuzz harness tests/fuzz/connector_answer_fuzz.cc drives.
std::vector<AnswerRejection> TakeProviderAnswer(
    tellonce::v1::FetchAttributesResponse response, const consent::Directory& directory,
    uint32_t max_value_bytes, absl::Time now,
    const std::vector<tellonce::v1::AttributeResult*>& results);

// Design: the core of the "Pull attributes" flow behind ExchangeService. For one
// request of an authenticated consumer it
//   1. validates the request against the current directory;
//   2. decides each attribute (consent::DecideAccess: standing consent, mandate or
//      one-time consent, else why not);
//   3. spends the ONE_TIME consents it relies on (ConsentStore::MarkUsed, durable and
//      exclusive). When another request spent (or the citizen revoked) one first, the
//      attributes it covered are decided again: another unspent ONE_TIME consent that
//      covers them is spent instead; when none is left the result says why, from the
//      consent's status (RESULT_CONSENT_USED, RESULT_CONSENT_REVOKED);
//   4. calls every provider involved concurrently over its pooled channel, with the
//      caller's deadline less a margin so the answer still arrives in time;
//   5. checks each answer (only what was asked, each value of its catalogue type and
//      within max_value_bytes; anything else becomes RESULT_PROVIDER_ERROR and is
//      counted);
//   6. appends one access event per (provider, basis, outcome) group, durably, and only
//      then answers.
// Nothing blocks a thread while waiting: each step completes on the thread that
// finished the one before (commit thread or gRPC's). Attribute values pass through
// memory only; they are never stored or logged. Thread-safe.
class Exchange {
 public:
  // None owned; all must outlive the Exchange.
  Exchange(const consent::DirectoryHolder* directory, consent::ConsentStore* store, AccessLog* log,
           ConnectorPool* connectors, ExchangeOptions options)
      : directory_(directory),
        store_(store),
        log_(log),
        connectors_(connectors),
        options_(std::move(options)) {}

  using Done = absl::AnyInvocable<void(absl::StatusOr<tellonce::v1::GetAttributesResponse>)>;

  // Runs the flow for `consumer` (already authorized as a consumer). `deadline` is the
  // caller's (InfiniteFuture when none: default_deadline applies; never later than
  // max_deadline from now). `done` gets the
  // response with one result per requested attribute in request order, or
  // INVALID_ARGUMENT for a malformed request, or RESOURCE_EXHAUSTED naming the limit
  // when max_in_flight calls, or max_in_flight_per_consumer calls of `consumer`, are
  // already in progress, or the storage error when the decision
  // or the access log could not be read or written (then no value is returned).
  // `directory` is the snapshot the caller authorized `consumer` against (null: the
  // current one), so that one request sees one directory throughout.
  void GetAttributes(const std::string& consumer, const tellonce::v1::GetAttributesRequest& request,
                     absl::Time deadline, Done done,
                     std::shared_ptr<const consent::Directory> directory = nullptr);

  const ExchangeCounters& counters() const { return counters_; }

 private:
  struct Call;
  void SpendOneTimeConsents(std::shared_ptr<Call> call);
  // Decides again the attributes whose ONE_TIME consent was lost to another request,
  // then spends again (at most kMaxSpendRounds rounds in all).
  void RedecideLost(std::shared_ptr<Call> call);
  void FetchFromProviders(std::shared_ptr<Call> call);
  // Takes a provider's answer for the attributes at `indexes` into call.results; true
  // when it was the last answer the call waited for.
  bool TakeAnswer(Call& call, const std::vector<size_t>& indexes, const grpc::Status& status,
                  tellonce::v1::FetchAttributesResponse response);
  void RecordAndAnswer(std::shared_ptr<Call> call);
  // Takes one of `consumer`'s max_in_flight_per_consumer slots; false when all are
  // taken. ReleaseConsumer gives it back.
  bool AcquireConsumer(const std::string& consumer) ABSL_LOCKS_EXCLUDED(consumers_mu_);
  void ReleaseConsumer(const std::string& consumer) ABSL_LOCKS_EXCLUDED(consumers_mu_);

  const consent::DirectoryHolder* directory_;
  consent::ConsentStore* store_;
  AccessLog* log_;
  ConnectorPool* connectors_;
  ExchangeOptions options_;
  ExchangeCounters counters_;
  std::atomic<uint32_t> in_flight_{0};
  absl::Mutex consumers_mu_;
  // Calls in progress per consumer; an entry goes when its count drops to zero.
  absl::flat_hash_map<std::string, uint32_t> consumer_in_flight_ ABSL_GUARDED_BY(consumers_mu_);
};

}  // namespace tellonce::broker

#endif  // TELLONCE_BROKER_EXCHANGE_H_
