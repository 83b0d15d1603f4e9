// CLOCK_MONOTONIC in nanoseconds: the one clock of the native code (the
// forwarder's flow expiry and polling, a records key's age).
#pragma once

#include <stdint.h>
#include <time.h>

namespace vnet_tap {

inline uint64_t MonotonicNs() {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1000000000ull + static_cast<uint64_t>(t.tv_nsec);
}

}  // namespace vnet_tap
