// The xxh64 of a range of another process's memory, read with
// process_vm_readv(2): no file, no bounce page, one copy per page straight
// into a small buffer that stays in cache, hashed as it goes.
//
//   read    process_vm_readv(pid, [buffer, n], [address, n]) with n the
//           buffer's size (the last piece shorter); the kernel stops at the
//           first page it cannot read and returns what it had: the next call
//           starts there, and fails with that page's errno (EFAULT: not
//           mapped; ESRCH: the process is gone; EPERM: no ptrace access).
//           A call that reads nothing and names no error is a short read.
//   hash    Xxh64::Update over each piece (xxh64.h), in the order read
//   stop    `cancel` is looked at before every piece: a digest ends within
//           one piece of being cancelled (ECANCELED)
//
// No N-API here: ram_digest_addon.cc runs it on a libuv worker thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace vnet_tap {

// Bounds of the buffer (the JS side checks its own first).
constexpr size_t kRamDigestMinBuffer = 4096;
constexpr size_t kRamDigestMaxBuffer = size_t{16} << 20;

struct RamDigestRequest {
  pid_t pid = 0;
  uint64_t address = 0;
  uint64_t length = 0;
  size_t buffer_bytes = 0;
};

enum class RamDigestStatus { kOk, kSysError, kShortRead, kCancelled };

struct RamDigestResult {
  RamDigestStatus status = RamDigestStatus::kOk;
  uint64_t xxh64 = 0;
  uint64_t bytes = 0;         // read and hashed before it ended
  int err = 0;                // errno, for kSysError (and ECANCELED)
  const char* syscall = "";   // the call that failed
  uint64_t at = 0;            // the address the failed read started at
  uint64_t read_ns = 0;       // time in process_vm_readv
  uint64_t hash_ns = 0;       // time hashing
};

RamDigestResult DigestProcessRange(const RamDigestRequest& req, const std::atomic<bool>& cancel);

}  // namespace vnet_tap
