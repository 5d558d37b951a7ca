#ifndef TELLONCE_BROKER_AUTHZ_H_
#define TELLONCE_BROKER_AUTHZ_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "consent/directory.h"
#include "grpcpp/server_context.h"
#include "tellonce/v1/directory.pb.h"

namespace tellonce::broker {

// The calling agency's id from the verified peer certificate, provided the agency is in
// `directory`, whatever its roles. Same errors as AuthorizeAgency but the role check.
absl::StatusOr<std::string> AuthenticateAgency(const grpc::ServerContextBase& context,
                                               const consent::Directory& directory,
                                               std::string_view service);

// OK when `agency` holds `role` in `directory`; otherwise PERMISSION_DENIED naming the
// service and the role it requires, e.g. "ConsentService requires the portal role". For
// cores, which get an authenticated agency id from their service.
absl::Status RequireRole(const consent::Directory& directory, const std::string& agency,
                         tellonce::v1::Role role, std::string_view service);

// The calling agency's id, taken from the verified peer certificate, provided the
// agency is in `directory` and holds `role`: AuthenticateAgency, then RequireRole.
// UNAUTHENTICATED without a usable certificate identity; PERMISSION_DENIED for another
// trust domain, the broker's own identity, an agency missing from the directory, or one
// without the role.
absl::StatusOr<std::string> AuthorizeAgency(const grpc::ServerContextBase& context,
                                            const consent::Directory& directory,
                                            tellonce::v1::Role role, std::string_view service);

// The citizen's ID token the caller sent in the `tellonce-citizen-assertion` request
// metadata; empty when there is none, or more than one (both then fail as missing).
// Points into `context`, valid while the call is.
std::string_view CitizenAssertion(const grpc::ServerContextBase& context);

}  // namespace tellonce::broker

#endif  // TELLONCE_BROKER_AUTHZ_H_
