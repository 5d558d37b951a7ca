#ifndef TELLONCE_PORTAL_SESSIONS_H_
#define TELLONCE_PORTAL_SESSIONS_H_

// Citizens' sessions and sign-ins in progress, in memory.
//
// A session is what a signed-in browser holds: a random id in an HttpOnly, Secure,
// SameSite=Strict cookie. Behind it the portal keeps the citizen id, the ID token it
// forwards to the broker, and the CSRF token the browser must echo in a header on
// every state-changing request. A session ends at sign-out, at its expiry (the
// configured lifetime, or the ID token's own end, whichever is first), or when the
// store is full and it is the one nearest its end. A restart signs everyone out.
//
// A pending sign-in (OpenID Connect) is keyed by its `state`, used once: taking it
// removes it, so a replayed callback finds nothing. Thread-safe.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tellonce::portal {

// 32 random bytes, base64url (43 characters): session ids, CSRF tokens, states,
// nonces and PKCE verifiers.
std::string RandomToken();

// Constant-time comparison of two secrets (lengths may differ).
bool SecretsEqual(std::string_view a, std::string_view b);

struct Session {
  std::string citizen_id;
  // The citizen's ID token, forwarded to the broker on every citizen-bound call.
  std::string id_token;
  std::string csrf_token;
  // "oidc" or "dev".
  std::string sign_in_method;
  absl::Time expires_at;
};

class SessionStore {
 public:
  explicit SessionStore(size_t max_sessions) : max_sessions_(max_sessions) {}

  // Stores `session` (its csrf_token is set here) and returns its id, the cookie value.
  std::string Create(Session session, absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  // The session named by `id` if it exists and has not expired at `now` (an expired
  // one is removed).
  std::optional<Session> Find(std::string_view id, absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  void Remove(std::string_view id) ABSL_LOCKS_EXCLUDED(mu_);
  size_t size() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void MakeRoom(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t max_sessions_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Session> sessions_ ABSL_GUARDED_BY(mu_);
};

// An OpenID Connect sign-in between the redirect to the provider and its callback.
struct PendingSignIn {
  std::string nonce;
  std::string code_verifier;
  // Random value also set in a short-lived cookie of the browser that started the
  // sign-in: a callback in another browser (login CSRF) does not match it.
  std::string browser_binding;
  absl::Time expires_at;
};

class PendingSignIns {
 public:
  explicit PendingSignIns(size_t max_pending = 10000) : max_pending_(max_pending) {}
  void Put(const std::string& state, PendingSignIn pending, absl::Time now)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Removes and returns the sign-in of `state` unless it has expired; std::nullopt for
  // an unknown (or already used) state.
  std::optional<PendingSignIn> Take(std::string_view state, absl::Time now)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const size_t max_pending_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, PendingSignIn> pending_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tellonce::portal

#endif  // TELLONCE_PORTAL_SESSIONS_H_
