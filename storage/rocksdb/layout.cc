#include "storage/rocksdb/layout.h"

namespace tellonce::storage::rocks {

std::string BigEndian64(uint64_t value) {
  std::string bytes(8, '\0');
  for (int i = 7; i >= 0; --i) {
    bytes[i] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
  return bytes;
}

uint64_t FromBigEndian64(std::string_view bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < 8 && i < bytes.size(); ++i) {
    value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  }
  return value;
}

std::string PrefixEnd(std::string prefix) {
  prefix.back() = static_cast<char>(static_cast<unsigned char>(prefix.back()) + 1);
  return prefix;
}

namespace keys {
namespace {

// <tag> \0 <a> \0
std::string Tagged(char tag, std::string_view a) {
  std::string key(1, tag);
  key.push_back('\0');
  key.append(a);
  key.push_back('\0');
  return key;
}

}  // namespace

std::string CitizenConsentsPrefix(std::string_view citizen_id) { return Tagged('c', citizen_id); }
std::string CitizenConsent(std::string_view citizen_id, std::string_view consent_id) {
  return CitizenConsentsPrefix(citizen_id).append(consent_id);
}
std::string ActivePrefix(std::string_view citizen_id, std::string_view consumer) {
  return Tagged('a', citizen_id).append(consumer).append(1, '\0');
}
std::string Active(std::string_view citizen_id, std::string_view consumer,
                   std::string_view consent_id) {
  return ActivePrefix(citizen_id, consumer).append(consent_id);
}
bool IsActive(std::string_view key) { return key.size() >= 2 && key[0] == 'a' && key[1] == '\0'; }
std::string Request(std::string_view portal, std::string_view request_id) {
  return Tagged('r', portal).append(request_id);
}
std::string CitizenEventsPrefix(std::string_view citizen_id) { return Tagged('e', citizen_id); }
std::string Published(std::string_view provider, std::string_view event_id) {
  return Tagged('p', provider).append(event_id);
}

std::string Event(uint64_t index) { return "e" + BigEndian64(index); }
std::string Node(int level, uint64_t index) {
  std::string key("n");
  key.push_back(static_cast<char>(level));
  return key + BigEndian64(index);
}
std::string Checkpoint(uint64_t tree_size) { return "c" + BigEndian64(tree_size); }

std::string Delivery(uint64_t sequence) { return "d" + BigEndian64(sequence); }
std::string PendingPrefix(std::string_view subscriber) {
  std::string key("p");
  key.append(subscriber);
  key.push_back('\0');
  return key;
}
std::string Pending(std::string_view subscriber, uint64_t sequence) {
  return PendingPrefix(subscriber) + BigEndian64(sequence);
}

}  // namespace keys
}  // namespace tellonce::storage::rocks
