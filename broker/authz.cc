#include "broker/authz.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "certs/citizen_assertion.h"
#include "certs/identity.h"

namespace tellonce::broker {

absl::StatusOr<std::string> AuthenticateAgency(const grpc::ServerContextBase& context,
                                               const consent::Directory& directory,
                                               std::string_view service) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) return absl::UnauthenticatedError("no authenticated peer");
  absl::StatusOr<certs::SpiffeId> id = certs::PeerIdentity(*auth, directory.trust_domain());
  if (!id.ok()) return id.status();
  if (id->is_broker) {
    return absl::PermissionDeniedError(
        absl::StrCat(std::string(service), " is not for the broker identity"));
  }
  if (directory.FindAgency(id->agency_id) == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat("agency \"", id->agency_id, "\" is not in the directory"));
  }
  return id->agency_id;
}

absl::StatusOr<std::string> AuthorizeAgency(const grpc::ServerContextBase& context,
                                            const consent::Directory& directory,
                                            tellonce::v1::Role role, std::string_view service) {
  absl::StatusOr<std::string> agency = AuthenticateAgency(context, directory, service);
  if (!agency.ok()) return agency.status();
  if (absl::Status s = RequireRole(directory, *agency, role, service); !s.ok()) return s;
  return *agency;
}

absl::Status RequireRole(const consent::Directory& directory, const std::string& agency,
                         tellonce::v1::Role role, std::string_view service) {
  if (directory.HasRole(agency, role)) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat(std::string(service), " requires the ",
                   absl::AsciiStrToLower(tellonce::v1::Role_Name(role)), " role"));
}

std::string_view CitizenAssertion(const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  auto range = metadata.equal_range(certs::kCitizenAssertionMetadataKey);
  if (range.first == range.second || std::next(range.first) != range.second) return {};
  return std::string_view(range.first->second.data(), range.first->second.size());
}

}  // namespace tellonce::broker
