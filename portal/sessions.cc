#include "portal/sessions.h"

#include <algorithm>

#include "certs/citizen_assertion.h"
#include "openssl/crypto.h"
#include "openssl/rand.h"

namespace tellonce::portal {

std::string RandomToken() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) std::abort();
  return certs::Base64UrlEncode(std::string_view(reinterpret_cast<char*>(bytes), sizeof bytes));
}

bool SecretsEqual(std::string_view a, std::string_view b) {
  if (a.size() != b.size() || a.empty()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string SessionStore::Create(Session session, absl::Time now) {
  session.csrf_token = RandomToken();
  std::string id = RandomToken();
  absl::MutexLock lock(&mu_);
  MakeRoom(now);
  sessions_[id] = std::move(session);
  return id;
}

void SessionStore::MakeRoom(absl::Time now) {
  if (sessions_.size() < max_sessions_) return;
  absl::erase_if(sessions_, [now](const auto& entry) { return entry.second.expires_at <= now; });
  while (sessions_.size() >= max_sessions_ && !sessions_.empty()) {
    auto nearest = std::min_element(
        sessions_.begin(), sessions_.end(),
        [](const auto& a, const auto& b) { return a.second.expires_at < b.second.expires_at; });
    sessions_.erase(nearest);
  }
}

std::optional<Session> SessionStore::Find(std::string_view id, absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(absl::string_view(id.data(), id.size()));
  if (it == sessions_.end()) return std::nullopt;
  if (it->second.expires_at <= now) {
    sessions_.erase(it);
    return std::nullopt;
  }
  return it->second;
}

void SessionStore::Remove(std::string_view id) {
  absl::MutexLock lock(&mu_);
  sessions_.erase(absl::string_view(id.data(), id.size()));
}

size_t SessionStore::size() const {
  absl::MutexLock lock(&mu_);
  return sessions_.size();
}

void PendingSignIns::Put(const std::string& state, PendingSignIn pending, absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (pending_.size() >= max_pending_) {
    absl::erase_if(pending_, [now](const auto& e) { return e.second.expires_at <= now; });
    // Still full: a flood of unfinished sign-ins; the oldest go.
    while (pending_.size() >= max_pending_) {
      auto oldest = std::min_element(
          pending_.begin(), pending_.end(),
          [](const auto& a, const auto& b) { return a.second.expires_at < b.second.expires_at; });
      pending_.erase(oldest);
    }
  }
  pending_[state] = std::move(pending);
}

std::optional<PendingSignIn> PendingSignIns::Take(std::string_view state, absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto it = pending_.find(absl::string_view(state.data(), state.size()));
  if (it == pending_.end()) return std::nullopt;
  PendingSignIn pending = std::move(it->second);
  pending_.erase(it);
  if (pending.expires_at <= now) return std::nullopt;
  return pending;
}

}  // namespace tellonce::portal
