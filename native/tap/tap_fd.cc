// See tap_fd.h. Linux only.
#include "tap_fd.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>

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

SysError OpenTap(const OpenOptions& opts, OpenResult* out) {
  if (opts.name.size() >= IFNAMSIZ) return SysError{ENAMETOOLONG, "TUNSETIFF"};
  // O_CLOEXEC: children (ip, ping, ...) must not inherit the device, or closing
  // it here would not remove it.
  FdGuard fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0) return Fail("open(/dev/net/tun)");

  struct ifreq ifr;
  FillName(&ifr, opts.name);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (opts.vnet_hdr ? IFF_VNET_HDR : 0);
  if (::ioctl(fd.get(), TUNSETIFF, &ifr) < 0) return Fail("ioctl(TUNSETIFF)");
  out->name.assign(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));

  if (opts.persist >= 0 && ::ioctl(fd.get(), TUNSETPERSIST, static_cast<unsigned long>(opts.persist)) < 0) {
    return Fail("ioctl(TUNSETPERSIST)");
  }

  out->offload_flags = 0;
  if (opts.vnet_hdr) {
    int size = opts.vnet_hdr_size;
    if (size != 10 && size != 12) return SysError{EINVAL, "ioctl(TUNSETVNETHDRSZ)"};
    if (::ioctl(fd.get(), TUNSETVNETHDRSZ, &size) < 0) return Fail("ioctl(TUNSETVNETHDRSZ)");
    if (opts.offload) {
      unsigned base = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
      // USO is newer; kernels without it answer EINVAL, then we settle for TSO.
      unsigned with_uso = base | TUN_F_USO4 | TUN_F_USO6;
      if (::ioctl(fd.get(), TUNSETOFFLOAD, with_uso) == 0) {
        out->offload_flags = with_uso;
      } else if (errno == EINVAL && ::ioctl(fd.get(), TUNSETOFFLOAD, base) == 0) {
        out->offload_flags = base;
      } else {
        return Fail("ioctl(TUNSETOFFLOAD)");
      }
    }
  }

  SysError e;
  if (opts.has_mac && !(e = SetMac(out->name, opts.mac)).ok()) return e;
  if (opts.mtu > 0 && !(e = SetMtu(out->name, opts.mtu)).ok()) return e;
  if (opts.up && !(e = SetUp(out->name, true)).ok()) return e;

  out->fd = fd.release();
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
