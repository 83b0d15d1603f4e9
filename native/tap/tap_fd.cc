// See tap_fd.h. Linux only.
#include "tap_fd.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <net/if_arp.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>
#include <system_error>
#include <thread>

// Older uapi headers predate UDP segmentation offload (Linux 6.2).
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif

namespace vnet_tap {
namespace {

SysError Fail(const char* syscall) { return SysError{errno, syscall}; }

// Closes a file descriptor on scope exit unless released (exception- and early-return-safe).
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() { if (fd_ >= 0) ::close(fd_); }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }
  int release() { int fd = fd_; fd_ = -1; return fd; }
 private:
  int fd_;
};

void FillName(struct ifreq* ifr, const std::string& name) {
  std::memset(ifr, 0, sizeof *ifr);
  std::strncpy(ifr->ifr_name, name.c_str(), IFNAMSIZ - 1);
}

// A throwaway socket for SIOCSIF* ioctls.
SysError WithControlSocket(const char* what, int (*op)(int sock, struct ifreq* ifr, const void* arg),
                           const std::string& name, const void* arg) {
  FdGuard sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (sock.get() < 0) return Fail("socket(AF_INET)");
  struct ifreq ifr;
  FillName(&ifr, name);
  if (op(sock.get(), &ifr, arg) < 0) return Fail(what);
  return SysError{};
}

}  // namespace

namespace {

// Attach mode: the device must exist in this (thread's) namespace. TUNSETIFF
// would create a missing one, so look first (a device deleted between the two
// calls is created afresh, and then has no other queue: harmless, and rare).
SysError CheckExists(const std::string& name) {
  FdGuard sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (sock.get() < 0) return Fail("socket(AF_INET)");
  struct ifreq ifr;
  FillName(&ifr, name);
  if (::ioctl(sock.get(), SIOCGIFINDEX, &ifr) < 0) return Fail("ioctl(SIOCGIFINDEX)");
  return SysError{};
}

// TUNSETOFFLOAD CSUM|TSO4|TSO6, with USO4|USO6 where the kernel has them.
SysError SetOffload(int fd, unsigned* accepted) {
  unsigned base = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
  // USO is newer; kernels without it answer EINVAL, then we settle for TSO.
  unsigned with_uso = base | TUN_F_USO4 | TUN_F_USO6;
  if (::ioctl(fd, TUNSETOFFLOAD, with_uso) == 0) {
    *accepted = with_uso;
  } else if (errno == EINVAL && ::ioctl(fd, TUNSETOFFLOAD, base) == 0) {
    *accepted = base;
  } else {
    return Fail("ioctl(TUNSETOFFLOAD)");
  }
  return SysError{};
}

// OpenTap in the calling thread's namespace.
SysError OpenTapHere(const OpenOptions& opts, OpenResult* out) {
  if (opts.attach) {
    SysError e = CheckExists(opts.name);
    if (!e.ok()) return e;
  }
  // O_CLOEXEC: children (ip, ping, ...) must not inherit the device, or closing
  // it here would not remove it.
  FdGuard fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0) return Fail("open(/dev/net/tun)");

  struct ifreq ifr;
  FillName(&ifr, opts.name);
  short flags = IFF_TAP | IFF_NO_PI | (opts.vnet_hdr ? IFF_VNET_HDR : 0);
  // Attaching tries a second queue first (the daemons' VM devices are
  // multi-queue); a single-queue device answers EINVAL, and can be attached
  // only while no other file has it (persistent, reader gone).
  bool mq = opts.multi_queue || opts.attach;
  ifr.ifr_flags = static_cast<short>(flags | (mq ? IFF_MULTI_QUEUE : 0));
  int rc = ::ioctl(fd.get(), TUNSETIFF, &ifr);
  if (rc < 0 && errno == EINVAL && opts.attach) {
    FillName(&ifr, opts.name);
    ifr.ifr_flags = flags;
    rc = ::ioctl(fd.get(), TUNSETIFF, &ifr);
  }
  if (rc < 0) return Fail("ioctl(TUNSETIFF)");
  out->name.assign(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));

  // The device's own flags: a queue added to a multi-queue device takes them
  // as they are (the kernel ignores IFF_VNET_HDR in our request then).
  struct ifreq got;
  std::memset(&got, 0, sizeof got);
  if (::ioctl(fd.get(), TUNGETIFF, &got) < 0) return Fail("ioctl(TUNGETIFF)");
  bool vnet_hdr = (got.ifr_flags & IFF_VNET_HDR) != 0;
  out->multi_queue = (got.ifr_flags & IFF_MULTI_QUEUE) != 0;

  if (opts.persist >= 0 && ::ioctl(fd.get(), TUNSETPERSIST, static_cast<unsigned long>(opts.persist)) < 0) {
    return Fail("ioctl(TUNSETPERSIST)");
  }

  out->offload_flags = 0;
  out->vnet_hdr_size = 0;
  if (vnet_hdr) {
    int size = opts.vnet_hdr_size;
    if (opts.attach) {
      // Device-wide: keep what the device's creator chose.
      if (::ioctl(fd.get(), TUNGETVNETHDRSZ, &size) < 0) return Fail("ioctl(TUNGETVNETHDRSZ)");
    } else {
      if (size != 10 && size != 12) return SysError{EINVAL, "ioctl(TUNSETVNETHDRSZ)"};
      if (::ioctl(fd.get(), TUNSETVNETHDRSZ, &size) < 0) return Fail("ioctl(TUNSETVNETHDRSZ)");
    }
    out->vnet_hdr_size = size;
    if (opts.offload) {
      SysError e = SetOffload(fd.get(), &out->offload_flags);
      if (!e.ok()) return e;
    }
  }

  if (!opts.attach) {
    SysError e;
    if (opts.has_mac && !(e = SetMac(out->name, opts.mac)).ok()) return e;
    if (opts.mtu > 0 && !(e = SetMtu(out->name, opts.mtu)).ok()) return e;
    if (opts.up && !(e = SetUp(out->name, true)).ok()) return e;
  }

  out->fd = fd.release();
  return SysError{};
}

}  // namespace

SysError OpenTap(const OpenOptions& opts, OpenResult* out) {
  if (opts.name.size() >= IFNAMSIZ) return SysError{ENAMETOOLONG, "TUNSETIFF"};
  if (opts.attach && opts.name.empty()) return SysError{EINVAL, "TUNSETIFF"};
  if (opts.netns.empty()) return OpenTapHere(opts, out);

  // setns() changes only the calling thread's namespace; a thread of our own
  // does the work, so the JS thread never leaves its namespace, whatever fails.
  SysError result{};
  auto work = [&opts, out, &result]() {
    FdGuard home(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    if (home.get() < 0) { result = Fail("open(/proc/thread-self/ns/net)"); return; }
    FdGuard target(::open(opts.netns.c_str(), O_RDONLY | O_CLOEXEC));
    if (target.get() < 0) { result = Fail("open(netns)"); return; }
    if (::setns(target.get(), CLONE_NEWNET) < 0) { result = Fail("setns(CLONE_NEWNET)"); return; }
    result = OpenTapHere(opts, out);
    // Back home before the thread ends (it ends either way; nothing else runs on it).
    if (::setns(home.get(), CLONE_NEWNET) < 0 && result.ok()) {
      int err = errno;
      ::close(out->fd);
      out->fd = -1;
      result = SysError{err, "setns(CLONE_NEWNET) back"};
    }
  };
  try {
    std::thread t(work);
    t.join();
  } catch (const std::system_error& e) {
    return SysError{e.code().value() != 0 ? e.code().value() : EAGAIN, "pthread_create"};
  }
  return result;
}

SysError SetSteering(int fd, int queue) {
  int prog = -1;
  if (queue >= 0) {
    // r0 = queue; exit. A socket-filter program; the kernel takes r0 modulo the queue count.
    struct bpf_insn insns[2];
    std::memset(insns, 0, sizeof insns);
    insns[0].code = BPF_ALU64 | BPF_MOV | BPF_K;
    insns[0].dst_reg = BPF_REG_0;
    insns[0].imm = queue;
    insns[1].code = BPF_JMP | BPF_EXIT;
    union bpf_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
    attr.insns = reinterpret_cast<uint64_t>(insns);
    attr.insn_cnt = 2;
    attr.license = reinterpret_cast<uint64_t>("GPL");
    prog = static_cast<int>(::syscall(__NR_bpf, BPF_PROG_LOAD, &attr, sizeof attr));
    if (prog < 0) return Fail("bpf(BPF_PROG_LOAD)");
  }
  FdGuard guard(prog);  // the device holds its own reference to the program
  if (::ioctl(fd, TUNSETSTEERINGEBPF, &prog) < 0) return Fail("ioctl(TUNSETSTEERINGEBPF)");
  return SysError{};
}

SysError SetMac(const std::string& name, const uint8_t mac[6]) {
  return WithControlSocket("ioctl(SIOCSIFHWADDR)", [](int sock, struct ifreq* ifr, const void* arg) {
    ifr->ifr_hwaddr.sa_family = ARPHRD_ETHER;
    std::memcpy(ifr->ifr_hwaddr.sa_data, arg, 6);
    return ::ioctl(sock, SIOCSIFHWADDR, ifr);
  }, name, mac);
}

SysError SetMtu(const std::string& name, int mtu) {
  return WithControlSocket("ioctl(SIOCSIFMTU)", [](int sock, struct ifreq* ifr, const void* arg) {
    ifr->ifr_mtu = *static_cast<const int*>(arg);
    return ::ioctl(sock, SIOCSIFMTU, ifr);
  }, name, &mtu);
}

SysError SetUp(const std::string& name, bool up) {
  return WithControlSocket("ioctl(SIOCSIFFLAGS)", [](int sock, struct ifreq* ifr, const void* arg) {
    if (::ioctl(sock, SIOCGIFFLAGS, ifr) < 0) return -1;
    if (*static_cast<const bool*>(arg)) ifr->ifr_flags |= IFF_UP;
    else ifr->ifr_flags &= ~IFF_UP;
    return ::ioctl(sock, SIOCSIFFLAGS, ifr);
  }, name, &up);
}

ssize_t WriteFrame(int fd, int hdr_size, const uint8_t* hdr, size_t hdr_len,
                   const uint8_t* frame, size_t frame_len) {
  static const uint8_t kZeros[16] = {0};
  struct iovec iov[3];
  int n = 0;
  if (hdr_size > 0) {
    size_t take = hdr_len < static_cast<size_t>(hdr_size) ? hdr_len : static_cast<size_t>(hdr_size);
    if (take > 0) iov[n++] = {const_cast<uint8_t*>(hdr), take};
    if (take < static_cast<size_t>(hdr_size)) iov[n++] = {const_cast<uint8_t*>(kZeros), hdr_size - take};
  }
  iov[n++] = {const_cast<uint8_t*>(frame), frame_len};
  for (;;) {
    ssize_t w = ::writev(fd, iov, n);
    if (w >= 0) return w;
    if (errno != EINTR) return -errno;
  }
}

}  // namespace vnet_tap
