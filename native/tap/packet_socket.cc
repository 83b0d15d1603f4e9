// See packet_socket.h. Linux only.
#include "packet_socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

// Older uapi headers predate PACKET_IGNORE_OUTGOING (Linux 4.20).
#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

namespace vnet_tap {
namespace {

constexpr uint32_t kMaxBatch = 64;

SysError Fail(const char* syscall) { return SysError{errno, syscall}; }

// SO_RCVBUFFORCE / SO_SNDBUFFORCE need CAP_NET_ADMIN (the daemon has it: it
// opened a packet socket); without it the plain option, capped by rmem_max.
SysError SetBuffer(int fd, int force_opt, int opt, int bytes, const char* what) {
  if (bytes <= 0) return SysError{};
  if (::setsockopt(fd, SOL_SOCKET, force_opt, &bytes, sizeof bytes) == 0) return SysError{};
  if (::setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof bytes) == 0) return SysError{};
  return Fail(what);
}

}  // namespace

SysError OpenPacket(const PacketOpenOptions& opts, PacketOpenResult* out) {
  if (opts.ifname.empty() || opts.ifname.size() >= IFNAMSIZ) return SysError{EINVAL, "if_nametoindex"};
  unsigned ifindex = ::if_nametoindex(opts.ifname.c_str());
  if (ifindex == 0) return Fail("if_nametoindex");
  // Protocol 0: the socket receives nothing until it is bound to the interface below.
  int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Fail("socket(AF_PACKET)");
  auto fail = [fd](SysError e) { ::close(fd); return e; };
  int one = 1;
  out->ignore_outgoing = ::setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) == 0;
  if (!out->ignore_outgoing && errno != ENOPROTOOPT) return fail(Fail("setsockopt(PACKET_IGNORE_OUTGOING)"));
  SysError e = SetBuffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, opts.rcv_buf, "setsockopt(SO_RCVBUF)");
  if (!e.ok()) return fail(e);
  e = SetBuffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, opts.snd_buf, "setsockopt(SO_SNDBUF)");
  if (!e.ok()) return fail(e);
  struct sockaddr_ll addr;
  std::memset(&addr, 0, sizeof addr);
  addr.sll_family = AF_PACKET;
  addr.sll_protocol = htons(ETH_P_ALL);
  addr.sll_ifindex = static_cast<int>(ifindex);
  if (::bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) < 0) return fail(Fail("bind(AF_PACKET)"));
  if (opts.promisc) {
    struct packet_mreq mr;
    std::memset(&mr, 0, sizeof mr);
    mr.mr_ifindex = static_cast<int>(ifindex);
    mr.mr_type = PACKET_MR_PROMISC;
    if (::setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0) return fail(Fail("setsockopt(PACKET_ADD_MEMBERSHIP)"));
  }
  out->fd = fd;
  out->ifindex = static_cast<int>(ifindex);
  return SysError{};
}

PacketReadResult ReadPackets(int fd, uint8_t* scratch, uint32_t slot, uint32_t max, PacketRecord* records) {
  PacketReadResult r;
  if (max > kMaxBatch) max = kMaxBatch;
  struct mmsghdr msgs[kMaxBatch];
  struct iovec iovs[kMaxBatch];
  struct sockaddr_ll from[kMaxBatch];
  std::memset(msgs, 0, sizeof(struct mmsghdr) * max);
  for (uint32_t i = 0; i < max; i++) {
    iovs[i] = {scratch + static_cast<size_t>(i) * slot, slot};
    msgs[i].msg_hdr.msg_iov = &iovs[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &from[i];
    msgs[i].msg_hdr.msg_namelen = sizeof from[i];
  }
  int n;
  do {
    // MSG_TRUNC: msg_len is the frame's length on the wire even when it did not fit its slot.
    n = ::recvmmsg(fd, msgs, max, MSG_DONTWAIT | MSG_TRUNC, nullptr);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) r.empty = true;
    else r.err = errno;
    return r;
  }
  if (static_cast<uint32_t>(n) < max) r.empty = true;
  for (int i = 0; i < n; i++) {
    // Without PACKET_IGNORE_OUTGOING the socket also hears what is sent on the interface, ours included.
    if (from[i].sll_pkttype == PACKET_OUTGOING) { r.outgoing++; continue; }
    uint32_t wire = msgs[i].msg_len;
    records[r.count++] = {static_cast<uint32_t>(i) * slot, wire < slot ? wire : slot, wire};
  }
  return r;
}

PacketWriteResult WritePackets(int fd, const uint8_t* const* frames, const size_t* lens, uint32_t n) {
  PacketWriteResult r;
  struct mmsghdr msgs[kMaxBatch];
  struct iovec iovs[kMaxBatch];
  uint32_t done = 0;
  while (done < n && r.fatal == 0) {
    uint32_t chunk = n - done < kMaxBatch ? n - done : kMaxBatch;
    std::memset(msgs, 0, sizeof(struct mmsghdr) * chunk);
    for (uint32_t i = 0; i < chunk; i++) {
      iovs[i] = {const_cast<uint8_t*>(frames[done + i]), lens[done + i]};
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int sent = ::sendmmsg(fd, msgs, chunk, MSG_DONTWAIT);
    if (sent < 0) {
      if (errno == EINTR) continue;
      // The first frame of the chunk was refused: count it, go on with the next.
      if (IsFatalPacketError(errno)) { r.fatal = errno; break; }
      r.last_err = errno;
      r.dropped++;
      done++;
      continue;
    }
    r.written += static_cast<uint32_t>(sent);
    done += static_cast<uint32_t>(sent);
  }
  if (r.fatal != 0) r.dropped += n - done;
  return r;
}

int64_t TakeKernelDrops(int fd) {
  struct tpacket_stats st;
  socklen_t len = sizeof st;
  if (::getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) < 0) return -errno;
  return st.tp_drops;
}

bool InterfaceExists(int ifindex) {
  char name[IF_NAMESIZE];
  return ::if_indextoname(static_cast<unsigned>(ifindex), name) != nullptr;
}

bool IsFatalPacketError(int err) {
  // ENETDOWN: the interface is down (set down, or a TAP with no reader yet): frames are lost, the port is fine.
  // ENXIO / ENODEV: the interface was deleted.
  return !(err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS || err == EMSGSIZE || err == EINVAL ||
           err == ENETDOWN || err == EFAULT);
}

}  // namespace vnet_tap
