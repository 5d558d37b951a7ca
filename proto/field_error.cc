#include "proto/field_error.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace tellonce {

absl::Status InvalidField(std::string_view field, std::string_view reason) {
  // Debian's abseil has its own absl::string_view, which std::string_view does not
  // convert to implicitly.
  return absl::InvalidArgumentError(absl::StrCat(absl::string_view(field.data(), field.size()),
                                                 ": ",
                                                 absl::string_view(reason.data(), reason.size())));
}

}  // namespace tellonce
