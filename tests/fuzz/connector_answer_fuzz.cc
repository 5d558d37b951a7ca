// Fuzzes the broker's check of a provider connector's answer (broker::TakeProviderAnswer,
// step 5 of the exchange): the first byte picks which catalogue attributes of the sample
// directory were asked for, the next the value size limit, the rest is the
// FetchAttributesResponse wire bytes the connector sent. Invariants: every asked
// attribute ends with exactly one of RESULT_OK, RESULT_NOT_FOUND, RESULT_PROVIDER_ERROR;
// a value passed on is of the catalogue's type, within the size limit, was in the answer
// under that name, and carries an as_of; a refused answer passes on no value; names and
// other fields set before are kept.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "broker/exchange.h"
#include "proto/attribute_value.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

size_t StringBytes(const tellonce::v1::AttributeValue& v) {
  return v.string_value().size() + v.decimal_value().size() + v.date_value().size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::shared_ptr<const tellonce::consent::Directory> d = tellonce::fuzz::SampleDirectory();
  tellonce::fuzz::Input in(data, size);
  const uint8_t mask = in.Byte();
  const uint32_t max_value_bytes = 1u << (in.Byte() % 13);  // 1 .. 4096
  const std::string_view bytes = in.Rest();
  tellonce::v1::FetchAttributesResponse response;
  if (!response.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return 0;

  std::vector<tellonce::v1::AttributeResult> storage;
  const auto& catalogue = d->proto().attributes();
  for (int i = 0; i < catalogue.size() && i < 8; ++i) {
    if ((mask >> i) & 1) {
      tellonce::v1::AttributeResult& r = storage.emplace_back();
      r.set_name(catalogue[i].name());
      r.mutable_provenance()->set_provider(catalogue[i].provider());
      r.mutable_basis()->set_mandate_id("m");
    }
  }
  if (storage.empty()) return 0;
  std::vector<std::string> names;
  for (const auto& r : storage) names.push_back(r.name());
  std::vector<tellonce::v1::AttributeResult*> results;
  for (auto& r : storage) results.push_back(&r);

  const tellonce::v1::FetchAttributesResponse original = response;
  std::vector<tellonce::broker::AnswerRejection> rejected = tellonce::broker::TakeProviderAnswer(
      response, *d, max_value_bytes, tellonce::fuzz::kNow, results);

  const bool refused_whole = !rejected.empty() && rejected.front().attribute.empty();
  for (size_t k = 0; k < storage.size(); ++k) {
    const tellonce::v1::AttributeResult& r = storage[k];
    FUZZ_CHECK(r.name() == names[k]);
    FUZZ_CHECK(r.provenance().provider() == d->FindAttribute(r.name())->provider());
    FUZZ_CHECK(r.basis().mandate_id() == "m");
    FUZZ_CHECK(r.code() == tellonce::v1::RESULT_OK || r.code() == tellonce::v1::RESULT_NOT_FOUND ||
               r.code() == tellonce::v1::RESULT_PROVIDER_ERROR);
    if (refused_whole) {
      FUZZ_CHECK(r.code() == tellonce::v1::RESULT_PROVIDER_ERROR);
    }
    if (r.code() != tellonce::v1::RESULT_OK) {
      FUZZ_CHECK(!r.has_value());
      FUZZ_CHECK(!r.detail().empty());
      continue;
    }
    const tellonce::v1::AttributeDef* def = d->FindAttribute(r.name());
    FUZZ_CHECK(tellonce::CheckAttributeValue(r.value(), def->type()).ok());
    FUZZ_CHECK(StringBytes(r.value()) <= max_value_bytes);
    FUZZ_CHECK(r.provenance().has_as_of());
    bool in_answer = false;
    for (const tellonce::v1::FetchedAttribute& a : original.attributes()) {
      if (a.name() == r.name() && !a.not_found()) {
        FUZZ_CHECK(a.value().SerializeAsString() == r.value().SerializeAsString());
        in_answer = true;
      }
    }
    FUZZ_CHECK(in_answer);
  }
  return 0;
}
