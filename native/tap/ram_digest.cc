// process_vm_readv into one reused buffer, hashed piece by piece (see ram_digest.h).
#include "ram_digest.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/uio.h>

#include <memory>

#include "monotonic.h"
#include "xxh64.h"

namespace vnet_tap {
namespace {

struct FreeDeleter {
  void operator()(uint8_t* p) const { free(p); }
};

}  // namespace

RamDigestResult DigestProcessRange(const RamDigestRequest& req, const std::atomic<bool>& cancel) {
  RamDigestResult res;
  res.at = req.address;
  if (req.buffer_bytes < kRamDigestMinBuffer || req.buffer_bytes > kRamDigestMaxBuffer || req.address + req.length < req.address) {
    res.status = RamDigestStatus::kSysError;
    res.err = EINVAL;
    res.syscall = "digestProcessMemory";
    return res;
  }
  void* raw = nullptr;
  if (posix_memalign(&raw, 4096, req.buffer_bytes) != 0) {
    res.status = RamDigestStatus::kSysError;
    res.err = ENOMEM;
    res.syscall = "posix_memalign";
    return res;
  }
  std::unique_ptr<uint8_t, FreeDeleter> buf(static_cast<uint8_t*>(raw));
  Xxh64 h(0);
  uint64_t at = req.address;
  const uint64_t end = req.address + req.length;
  while (at < end) {
    if (cancel.load(std::memory_order_relaxed)) {
      res.status = RamDigestStatus::kCancelled;
      res.err = ECANCELED;
      res.at = at;
      break;
    }
    size_t want = end - at < req.buffer_bytes ? static_cast<size_t>(end - at) : req.buffer_bytes;
    struct iovec local = {buf.get(), want};
    struct iovec remote = {reinterpret_cast<void*>(static_cast<uintptr_t>(at)), want};
    uint64_t t0 = MonotonicNs();
    ssize_t n = process_vm_readv(req.pid, &local, 1, &remote, 1, 0);
    int e = errno;
    uint64_t t1 = MonotonicNs();
    res.read_ns += t1 - t0;
    if (n < 0 && e == EINTR) continue;
    if (n <= 0) {
      res.status = n < 0 ? RamDigestStatus::kSysError : RamDigestStatus::kShortRead;
      res.err = n < 0 ? e : 0;
      res.syscall = "process_vm_readv";
      res.at = at;
      break;
    }
    h.Update(buf.get(), static_cast<size_t>(n));
    res.hash_ns += MonotonicNs() - t1;
    at += static_cast<uint64_t>(n);
    res.bytes += static_cast<uint64_t>(n);
  }
  res.xxh64 = h.Digest();
  return res;
}

}  // namespace vnet_tap
