#ifndef TELLONCE_STORAGE_ROCKSDB_LAYOUT_H_
#define TELLONCE_STORAGE_ROCKSDB_LAYOUT_H_

// The RocksDB store's key layout: the only place keys are spelled. The broker's store
// (rocks_storage.cc) and the offline audit's read-only reader both use it.
//
//   consents   <consent_id>                                   -> StoredConsent
//   indexes    "c" \0 <citizen_id> \0 <consent_id>            -> "" (a citizen's consents)
//   indexes    "a" \0 <citizen_id> \0 <consumer> \0 <consent_id>
//                                  -> Consent, decision fields only (ACTIVE only)
//   indexes    "r" \0 <portal> \0 <request_id>                -> <consent_id>
//   indexes    "e" \0 <citizen_id> \0 <index, 8 bytes>        -> "" (a citizen's events)
//   indexes    "p" \0 <provider> \0 <event_id>                -> request fingerprint
//   access_log "e" <index, 8 bytes>                           -> AccessEvent (serialized)
//   access_log "n" <level, 1 byte> <index, 8 bytes>           -> subtree hash (32 bytes)
//   access_log "c" <tree size, 8 bytes>                       -> SignedCheckpoint
//   outbox     "d" <sequence, 8 bytes>                        -> Delivery
//   outbox     "p" <subscriber> \0 <sequence, 8 bytes>        -> "" (PENDING only)
//   default    "schema_version", "access_log.size", "access_log.tree_size",
//              "outbox.sequence", "outbox.pending_index"      -> decimal text
//
// Numbers are 8 bytes big-endian, so keys sort by number. Components containing NUL
// would make the layout ambiguous; the store rejects them (the directory's identifier
// rules exclude them anyway).

#include <cstdint>
#include <string>
#include <string_view>

namespace tellonce::storage::rocks {

// 8 bytes, most significant first.
std::string BigEndian64(uint64_t value);
// The first 8 bytes of `bytes` as a number (fewer bytes: as many as there are).
uint64_t FromBigEndian64(std::string_view bytes);

// The smallest key greater than every key that starts with `prefix`, for
// ReadOptions::iterate_upper_bound. `prefix` must be non-empty and must not end in 0xff
// (every prefix here ends in NUL or a letter).
std::string PrefixEnd(std::string prefix);

namespace keys {

inline constexpr char kAccessLogSize[] = "access_log.size";
inline constexpr char kTreeSize[] = "access_log.tree_size";
inline constexpr char kOutboxSequence[] = "outbox.sequence";
inline constexpr char kOutboxPendingIndexed[] = "outbox.pending_index";

std::string CitizenConsentsPrefix(std::string_view citizen_id);
std::string CitizenConsent(std::string_view citizen_id, std::string_view consent_id);
std::string ActivePrefix(std::string_view citizen_id, std::string_view consumer);
std::string Active(std::string_view citizen_id, std::string_view consumer,
                   std::string_view consent_id);
std::string Request(std::string_view portal, std::string_view request_id);
// Whether an indexes-family key is an Active(...) entry.
bool IsActive(std::string_view key);
std::string CitizenEventsPrefix(std::string_view citizen_id);
std::string Published(std::string_view provider, std::string_view event_id);

std::string Event(uint64_t index);
std::string Node(int level, uint64_t index);
std::string Checkpoint(uint64_t tree_size);
inline constexpr size_t kEventKeySize = 9;
inline constexpr size_t kNodeKeySize = 10;
inline constexpr size_t kCheckpointKeySize = 9;

std::string Delivery(uint64_t sequence);
std::string PendingPrefix(std::string_view subscriber);
std::string Pending(std::string_view subscriber, uint64_t sequence);

}  // namespace keys
}  // namespace tellonce::storage::rocks

#endif  // TELLONCE_STORAGE_ROCKSDB_LAYOUT_H_
