// The POSIX side of a packet-socket port, free of N-API: an AF_PACKET socket
// bound to one existing interface (a TAP device QEMU holds, a veth, ...),
// batched reads (recvmmsg) and writes (sendmmsg). Like tap_fd.h, every
// function reports failure as a SysError and never throws; packet_addon.cc
// turns these into JS errors.
#pragma once

#include <sys/types.h>
#include <cstddef>
#include <cstdint>
#include <string>

#include "tap_fd.h"

namespace vnet_tap {

struct PacketOpenOptions {
  std::string ifname;           // the interface, in this process's network namespace
  int rcv_buf = 4 << 20;        // SO_RCVBUF(FORCE) bytes
  int snd_buf = 1 << 20;        // SO_SNDBUF(FORCE) bytes
  bool promisc = true;          // PACKET_MR_PROMISC membership (frames to any MAC)
};

struct PacketOpenResult {
  int fd = -1;
  int ifindex = 0;
  bool ignore_outgoing = false; // PACKET_IGNORE_OUTGOING accepted (Linux 4.20+); else filtered per frame
};

// socket(AF_PACKET, SOCK_RAW, 0) (protocol 0: nothing is queued before the
// bind), bound to the interface's ifindex with ETH_P_ALL, own writes
// ignored, promiscuous membership, buffers set. On failure closes the socket.
SysError OpenPacket(const PacketOpenOptions& opts, PacketOpenResult* out);

// One record of a batch read: where the bytes are in the scratch buffer, how
// many were kept (at most the slot size) and how long the frame was on the
// wire (longer than `captured` when it was truncated).
struct PacketRecord {
  uint32_t offset;
  uint32_t captured;
  uint32_t wire;
};

struct PacketReadResult {
  uint32_t count = 0;           // records filled
  uint32_t outgoing = 0;        // frames skipped as our own or the host's transmissions
  bool empty = false;           // the socket had nothing more (EAGAIN)
  int err = 0;                  // errno of a failed read (0: none)
};

// Reads up to `max` frames, each into its own `slot` bytes of `scratch`,
// with one recvmmsg; frames the interface transmitted (PACKET_OUTGOING) are
// skipped and counted.
PacketReadResult ReadPackets(int fd, uint8_t* scratch, uint32_t slot, uint32_t max, PacketRecord* records);

// Sends frames with one sendmmsg (retrying EINTR, going on after a frame the
// kernel refused). Returns how many were sent, how many refused, and the errno
// of an error that means the interface is gone (0 otherwise).
struct PacketWriteResult {
  uint32_t written = 0;
  uint32_t dropped = 0;
  int fatal = 0;
  int last_err = 0;             // errno of the last frame refused
};
PacketWriteResult WritePackets(int fd, const uint8_t* const* frames, const size_t* lens, uint32_t n);

// Frames the kernel dropped for this socket (receive buffer full) since the
// last call (PACKET_STATISTICS resets on read); -errno on failure.
int64_t TakeKernelDrops(int fd);

// Whether the interface still exists (it was not deleted under the socket).
bool InterfaceExists(int ifindex);

// Errors after which the socket is useless (the interface is gone); the
// others concern one frame (queue full, too long, interface down for now).
bool IsFatalPacketError(int err);

}  // namespace vnet_tap
