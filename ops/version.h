#ifndef TELLONCE_OPS_VERSION_H_
#define TELLONCE_OPS_VERSION_H_

namespace tellonce::ops {

// The release of this build, from project(VERSION) in the top CMakeLists.txt.
inline constexpr char kVersion[] = TELLONCE_VERSION;

}  // namespace tellonce::ops

#endif  // TELLONCE_OPS_VERSION_H_
