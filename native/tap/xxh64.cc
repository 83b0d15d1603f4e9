// XXH64 from the specification's steps (see xxh64.h).
#include "xxh64.h"

#include <cstring>

namespace vnet_tap {
namespace {

constexpr uint64_t kPrime1 = 0x9E3779B185EBCA87ULL;
constexpr uint64_t kPrime2 = 0xC2B2AE3D27D4EB4FULL;
constexpr uint64_t kPrime3 = 0x165667B19E3779F9ULL;
constexpr uint64_t kPrime4 = 0x85EBCA77C2B2AE63ULL;
constexpr uint64_t kPrime5 = 0x27D4EB2F165667C5ULL;
constexpr size_t kStripe = 32;

inline uint64_t Rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

// Lanes are little-endian whatever the host's byte order (T: uint64_t or uint32_t).
template <typename T>
inline T LoadLe(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  if constexpr (sizeof(T) == 8) v = __builtin_bswap64(v);
  else v = __builtin_bswap32(v);
#endif
  return v;
}

inline uint64_t Le64(const uint8_t* p) { return LoadLe<uint64_t>(p); }

// round(accN, laneN)
inline uint64_t Round(uint64_t acc, uint64_t lane) {
  acc += lane * kPrime2;
  acc = Rotl(acc, 31);
  return acc * kPrime1;
}

// mergeAccumulator(acc, accN)
inline uint64_t Merge(uint64_t acc, uint64_t lane_acc) {
  acc ^= Round(0, lane_acc);
  acc *= kPrime1;
  return acc + kPrime4;
}

// Step 2 over every whole stripe of [p, p + n); returns the bytes consumed.
inline size_t Stripes(uint64_t acc[4], const uint8_t* p, size_t n) {
  uint64_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  size_t done = 0;
  for (; n - done >= kStripe; done += kStripe) {
    const uint8_t* s = p + done;
    a0 = Round(a0, Le64(s));
    a1 = Round(a1, Le64(s + 8));
    a2 = Round(a2, Le64(s + 16));
    a3 = Round(a3, Le64(s + 24));
  }
  acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;
  return done;
}

}  // namespace

void Xxh64::Reset(uint64_t seed) {
  seed_ = seed;
  acc_[0] = seed + kPrime1 + kPrime2;
  acc_[1] = seed + kPrime2;
  acc_[2] = seed;
  acc_[3] = seed - kPrime1;
  total_ = 0;
  carried_ = 0;
}

void Xxh64::Update(const uint8_t* data, size_t len) {
  total_ += len;
  if (carried_ > 0) {
    size_t take = kStripe - carried_ < len ? kStripe - carried_ : len;
    std::memcpy(carry_ + carried_, data, take);
    carried_ += take;
    data += take;
    len -= take;
    if (carried_ < kStripe) return;
    Stripes(acc_, carry_, kStripe);
    carried_ = 0;
  }
  size_t done = Stripes(acc_, data, len);
  carried_ = len - done;
  if (carried_ > 0) std::memcpy(carry_, data + done, carried_);
}

uint64_t Xxh64::Digest() const {
  uint64_t acc;
  if (total_ >= kStripe) {
    acc = Rotl(acc_[0], 1) + Rotl(acc_[1], 7) + Rotl(acc_[2], 12) + Rotl(acc_[3], 18);
    for (uint64_t lane_acc : acc_) acc = Merge(acc, lane_acc);
  } else {
    acc = seed_ + kPrime5;
  }
  acc += total_;
  const uint8_t* p = carry_;
  size_t left = carried_;
  for (; left >= 8; p += 8, left -= 8) {
    acc ^= Round(0, Le64(p));
    acc = Rotl(acc, 27) * kPrime1 + kPrime4;
  }
  if (left >= 4) {
    acc ^= uint64_t{LoadLe<uint32_t>(p)} * kPrime1;
    acc = Rotl(acc, 23) * kPrime2 + kPrime3;
    p += 4;
    left -= 4;
  }
  for (; left > 0; p++, left--) {
    acc ^= uint64_t{*p} * kPrime5;
    acc = Rotl(acc, 11) * kPrime1;
  }
  acc ^= acc >> 33;
  acc *= kPrime2;
  acc ^= acc >> 29;
  acc *= kPrime3;
  acc ^= acc >> 32;
  return acc;
}

uint64_t Xxh64::Hash(const uint8_t* data, size_t len, uint64_t seed) {
  Xxh64 h(seed);
  h.Update(data, len);
  return h.Digest();
}

}  // namespace vnet_tap
