// Another process's open file, taken as a file descriptor of this one
// (loaded by src/host/qemu-unread.ts):
//
//   takeProcessFd(pid, fd) -> number
//       pidfd_open(pid) then pidfd_getfd(pidfd, fd): a new descriptor here
//       for the same open file (its offset, flags and queue shared with the
//       process), made non-blocking (a flag of the open file: the process's
//       too; QEMU's are already) so that a read of an empty queue returns
//       EAGAIN; the caller closes it. Needs ptrace access to `pid` (root,
//       or its parent at Yama scope <= 1). Throws an Error carrying errno,
//       code ("ESRCH", "EBADF", "EPERM", "ENOSYS") and syscall.
//
// What it is for: the frames a stopped QEMU never read from its TAP device
// are still in the device's queue; the daemon reads them from QEMU's own
// file before that QEMU quits (and the kernel purges the queue).
#include "process_fd_addon.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <string>

#include "napi_errors.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

namespace vnet_tap {
namespace {

int WholeArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string("takeProcessFd: ") + name + " must be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= 0 && v <= 2147483647.0) || std::floor(v) != v) {
    throw Napi::RangeError::New(info.Env(), std::string("takeProcessFd: ") + name + " must be a whole number in [0, 2147483647]");
  }
  return static_cast<int>(v);
}

Napi::Value TakeProcessFd(const Napi::CallbackInfo& info) {
  const int pid = WholeArg(info, 0, "pid");
  const int fd = WholeArg(info, 1, "fd");
  if (pid == 0) throw Napi::RangeError::New(info.Env(), "takeProcessFd: pid must be a process's id, not 0");
  const long pidfd = syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0) throw SysErrorToJs(info.Env(), SysError{errno, "pidfd_open"});
  const long taken = syscall(SYS_pidfd_getfd, static_cast<int>(pidfd), fd, 0);
  const int err = errno;
  close(static_cast<int>(pidfd));
  if (taken < 0) throw SysErrorToJs(info.Env(), SysError{err, "pidfd_getfd"});
  const int mine = static_cast<int>(taken);
  const int flags = fcntl(mine, F_GETFL);
  if (flags < 0 || ((flags & O_NONBLOCK) == 0 && fcntl(mine, F_SETFL, flags | O_NONBLOCK) < 0)) {
    const int ferr = errno;
    close(mine);
    throw SysErrorToJs(info.Env(), SysError{ferr, "fcntl(O_NONBLOCK)"});
  }
  return Napi::Number::New(info.Env(), static_cast<double>(taken));
}

}  // namespace

void RegisterProcessFd(Napi::Env env, Napi::Object exports) {
  exports.Set("takeProcessFd", Napi::Function::New(env, TakeProcessFd, "takeProcessFd"));
}

}  // namespace vnet_tap
