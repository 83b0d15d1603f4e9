// The POSIX side of a TAP device, free of N-API: open /dev/net/tun, configure
// the interface, read and write frames. Every function reports failure as a
// SysError (errno + the call that failed) and never throws; tap_addon.cc turns
// these into JS errors.
#pragma once

#include <sys/types.h>
#include <cstddef>
#include <cstdint>
#include <string>

namespace vnet_tap {

struct SysError {
  int err = 0;                  // errno, 0 when the call succeeded
  const char* syscall = "";     // e.g. "ioctl(TUNSETIFF)"
  bool ok() const { return err == 0; }
};

struct OpenOptions {
  std::string name;             // interface name; empty lets the kernel pick tapN
  std::string netns;            // a network namespace file (/var/run/netns/NAME); empty: the caller's
  bool attach = false;          // the device must exist: attach one more queue, configure nothing
  bool multi_queue = false;     // IFF_MULTI_QUEUE (when creating; attaching tries it first)
  bool vnet_hdr = false;        // IFF_VNET_HDR: every read/write carries a virtio_net_hdr
  int vnet_hdr_size = 10;       // 10 (virtio_net_hdr) or 12 (with num_buffers)
  bool offload = true;          // with vnet_hdr: TUNSETOFFLOAD CSUM|TSO4|TSO6 (+USO4|USO6 if accepted)
  int persist = -1;             // -1 leave alone, 0/1 TUNSETPERSIST
  bool has_mac = false;
  uint8_t mac[6] = {0, 0, 0, 0, 0, 0};
  int mtu = 0;                  // 0 leaves the MTU alone
  bool up = false;              // set IFF_UP after configuring
};

struct OpenResult {
  int fd = -1;
  std::string name;             // the name the kernel gave the device
  unsigned offload_flags = 0;   // TUN_F_* flags the kernel accepted
  int vnet_hdr_size = 0;        // 0 without IFF_VNET_HDR (as the device has it, when attaching)
  bool multi_queue = false;     // the device is IFF_MULTI_QUEUE
};

// Opens (creating or attaching) a TAP device; on failure closes everything it opened.
// With opts.netns the whole open runs on a short-lived helper thread that
// setns()es into that namespace (and back), so no other thread, the caller's
// included, ever changes namespace: the tun file is bound to the namespace it
// was opened in, the fd works from any thread afterwards.
SysError OpenTap(const OpenOptions& opts, OpenResult* out);

// Steers every frame the kernel sends on the device to queue `queue` (an
// eBPF program `return queue;`, TUNSETSTEERINGEBPF; the kernel takes it
// modulo the number of queues), or back to the flow hash with queue < 0.
// The device-wide setting, made through any attached queue's fd.
SysError SetSteering(int fd, int queue);

// Interface configuration through an AF_INET datagram socket (by name, so only
// while the device is still in this process's network namespace).
SysError SetMac(const std::string& name, const uint8_t mac[6]);
SysError SetMtu(const std::string& name, int mtu);
SysError SetUp(const std::string& name, bool up);

// One write of [header (padded with zeros to hdr_size), frame]. hdr_size 0 means
// no header. Returns bytes written or -errno (retrying EINTR).
ssize_t WriteFrame(int fd, int hdr_size, const uint8_t* hdr, size_t hdr_len,
                   const uint8_t* frame, size_t frame_len);

}  // namespace vnet_tap
