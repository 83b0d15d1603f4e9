// XXH64, streaming, written from the published specification (xxHash's
// doc/xxhash_spec.md, "XXH64 algorithm description"; no code copied).
//
//   Reset(seed)   four lane accumulators from the seed (step 1)
//   Update(p, n)  whole 32-byte stripes go through the four rounds as they
//                 come (step 2); a stripe cut by the caller's chunking waits
//                 in a 32-byte carry until the next Update completes it, so
//                 any chunking hashes to the same value
//   Digest()      convergence (step 3, skipped under 32 bytes in all), the
//                 length, the carried tail (step 5) and the avalanche (step 6);
//                 the state is left as it was (Digest may be called again)
//
// The value is the one xxhash-wasm's create64(seed) gives for the same bytes
// (test/host/ram-digest-native.test.ts checks every length 0..1024 and
// streamed chunkings), so daemons on either path agree.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vnet_tap {

class Xxh64 {
 public:
  explicit Xxh64(uint64_t seed = 0) { Reset(seed); }

  void Reset(uint64_t seed);
  void Update(const uint8_t* data, size_t len);
  uint64_t Digest() const;

  // The whole of [data, data + len) at once.
  static uint64_t Hash(const uint8_t* data, size_t len, uint64_t seed = 0);

 private:
  uint64_t seed_ = 0;
  uint64_t acc_[4] = {0, 0, 0, 0};
  uint64_t total_ = 0;      // bytes taken in so far
  uint8_t carry_[32] = {};  // the start of a stripe the caller's chunk cut
  size_t carried_ = 0;
};

}  // namespace vnet_tap
