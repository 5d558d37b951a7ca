#ifndef TELLONCE_CONNECTORS_ATOMIC_FILE_H_
#define TELLONCE_CONNECTORS_ATOMIC_FILE_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace tellonce::connectors {

// Replaces the file at `path` with `contents` so that a reader (or a crash) sees either
// the old file or the whole new one, never a mix: writes "<path>.tmp.<pid>", syncs it,
// renames it over `path` and syncs the folder. The new file gets mode 0644 (less the
// umask). Errors (the temporary file is then removed): INTERNAL, or PERMISSION_DENIED /
// NOT_FOUND for the folder, naming the path and the system's reason. Thread-safe for
// distinct paths; concurrent writers of one path need their own lock (the last rename
// wins).
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents);

}  // namespace tellonce::connectors

#endif  // TELLONCE_CONNECTORS_ATOMIC_FILE_H_
