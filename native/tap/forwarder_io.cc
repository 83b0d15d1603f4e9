// The native forwarder's reads and writes (forwarder.h has the stages). Every
// function here runs with the forwarder's mutex held.
#include <errno.h>
#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "forwarder.h"
#include "tap_fd.h"

namespace vnet_tap {
namespace {

constexpr size_t kHeader = 4;
constexpr uint8_t kTypeFrame = 0x02;
constexpr uint8_t kTypeOffloadFrame = 0x03;
constexpr size_t kMinFrame = 14;
constexpr size_t kMaxFrame = 65535 + 14 + 4;
constexpr size_t kVhdr = 10;
constexpr size_t kMaxControl = 2 + 4096 + 512;  // the largest control body (auth)
constexpr size_t kPortOverhead = 18;            // port.ts PORT_FRAME_OVERHEAD: Ethernet header + VLAN tag
constexpr uint32_t kMaxBatchFrames = 64;
constexpr size_t kMaxRecord = 65536 + 512;

bool NeedsWork(const uint8_t* hdr) { return hdr != nullptr && ((hdr[0] & 1) != 0 || (hdr[1] & 0x7f) != 0); }
bool IsGso(const uint8_t* hdr) { return hdr != nullptr && (hdr[1] & 0x7f) != 0; }

// Errors after which only this frame is lost (tap-device.ts isFatalTapErrno's complement).
bool FrameLevel(int err) {
  return err == EIO || err == EAGAIN || err == ENOBUFS || err == EINVAL || err == EMSGSIZE || err == EFAULT;
}

// The kinds of message the forwarder may pass on or hand up whole; anything else makes the link raw.
bool FrameHeaderOk(uint8_t type, size_t len, size_t max_message) {
  if (type == kTypeFrame) return len >= kMinFrame && len <= std::min(max_message, kMaxFrame);
  if (type == kTypeOffloadFrame) return len >= kVhdr + kMinFrame && len <= std::min(max_message, kMaxFrame + kVhdr);
  return false;
}
bool ControlHeaderOk(uint8_t type, size_t len) {
  return (type == 0x01 || (type >= 0x04 && type <= 0x08)) && len <= kMaxControl;
}

}  // namespace

struct Forwarder::Staged {
  uint32_t link;
  std::vector<struct iovec> iov;
};

// Gathers bytes for one link (one writev per link per batch, in order).
static void Stage(std::vector<Forwarder::Staged>& staged, uint32_t link, const void* p, size_t len) {
  auto s = std::find_if(staged.begin(), staged.end(), [&](const Forwarder::Staged& x) { return x.link == link; });
  if (s == staged.end()) s = staged.insert(staged.end(), Forwarder::Staged{link, {}});
  s->iov.push_back({const_cast<void*>(p), len});
}

void Forwarder::WriteStaged(std::vector<Staged>& staged) {
  for (Staged& s : staged) {
    Endpoint* t = Get(s.link);
    if (t != nullptr) WriteOrQueue(*t, s.link, s.iov.data(), static_cast<int>(s.iov.size()));
  }
  staged.clear();
}

void Forwarder::ReadTap(uint32_t id, uint64_t now) {
  Endpoint& e = *Get(id);
  const size_t hs = static_cast<size_t>(e.hdr_size);
  uint8_t* buf = scratch_.data();
  uint8_t heads[kMaxBatchFrames][kHeader + kVhdr];
  std::vector<Staged> staged;
  UpItem up{kUpTapBatch, id, 0, {}, {}};
  bool going_up = e.up_pending > 0;
  size_t used = 0;
  int fatal = 0;
  for (uint32_t count = 0; count < kMaxBatchFrames && scratch_.size() - used >= kMaxRecord; count++) {
    ssize_t n = ::read(e.fd, buf + used, kMaxRecord);
    if (n < 0 && errno == EINTR) { count--; continue; }
    if (n < 0) { if (errno != EAGAIN) fatal = errno; break; }
    if (n == 0) { fatal = EIO; break; }
    const uint8_t* rec = buf + used;
    used += static_cast<size_t>(n);
    const size_t len = static_cast<size_t>(n) - std::min(hs, static_cast<size_t>(n));
    const Entry* entry = going_up || len < kMinFrame ? nullptr : Lookup(id, rec + hs, now);
    Endpoint* t = entry == nullptr ? nullptr : Get(entry->target);
    if (t != nullptr && !t->failed) {
      const uint8_t* frame = rec + hs;
      const uint8_t* vh = hs > 0 && NeedsWork(rec) ? rec : nullptr;
      bool done = true;
      if (t->is_link) {
        if (t->out.size() - t->out_off > t->high_water) {
          t->c.tx_dropped++;
        } else {
          uint8_t* h = heads[count];
          size_t body = len + (vh != nullptr ? kVhdr : 0);
          h[0] = vh != nullptr ? kTypeOffloadFrame : kTypeFrame;
          h[1] = static_cast<uint8_t>(body >> 16);
          h[2] = static_cast<uint8_t>(body >> 8);
          h[3] = static_cast<uint8_t>(body);
          if (vh != nullptr) std::memcpy(h + kHeader, vh, kVhdr);
          Stage(staged, entry->target, h, kHeader + (vh != nullptr ? kVhdr : 0));
          Stage(staged, entry->target, frame, len);
          t->c.tx_frames++;
          t->c.tx_bytes += len;
        }
      } else {
        done = DeliverToTap(entry->target, vh, frame, len);
      }
      if (done) {
        policy_.Forwarded(id, entry->target, now, len);
        e.c.rx_frames++;
        e.c.rx_bytes += len;
        if (entry->count_traffic) CountTraffic(frame, len);
        continue;
      }
    }
    going_up = true;
    up.records.push_back(static_cast<uint32_t>(up.data.size()));
    up.records.push_back(static_cast<uint32_t>(n));
    up.data.insert(up.data.end(), rec, rec + n);
  }
  WriteStaged(staged);
  if (!up.records.empty()) Up(std::move(up));
  if (fatal != 0) Fail(id, fatal);
}

void Forwarder::ReadLink(uint32_t id, uint64_t now) {
  for (int round = 0; round < 8; round++) {
    Endpoint* e = Get(id);
    if (e == nullptr || e->failed) return;
    std::vector<uint8_t>& buf = e->records ? e->crx : e->rx;
    size_t& fill = e->records ? e->crx_fill : e->rx_fill;
    size_t room = buf.size() - fill;
    ssize_t n = ::read(e->fd, buf.data() + fill, room);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      if (errno != EAGAIN) Fail(id, errno);
      return;
    }
    if (n == 0) {
      // The peer closed: JS reads the end itself. A records link ending inside a record is truncated.
      Fail(id, e->records && e->crx_fill > 0 ? kRecordErrTruncated : 0);
      return;
    }
    fill += static_cast<size_t>(n);
    if (e->records) {
      if (!OpenRecords(*e, id, now)) return;
    } else {
      ParseLink(*e, id, now);
    }
    if (static_cast<size_t>(n) < room) return;
  }
}

// Opens every whole record read so far into the plaintext buffer, parsing it
// whenever it fills; false when the link failed (a bad record, the limit).
bool Forwarder::OpenRecords(Endpoint& e, uint32_t id, uint64_t now) {
  size_t off = 0;
  bool parsed = false;
  while (true) {
    size_t plain = 0, used = 0;
    int r = e.records->Open(e.crx.data() + off, e.crx_fill - off, e.rx.data() + e.rx_fill, e.rx.size() - e.rx_fill, &plain, &used);
    if (r < 0) {
      Fail(id, -r);
      return false;
    }
    if (r == 0 && used == 0) break;  // the rest of a record is still on its way
    if (r == 0) {                    // no room for it: hand up or forward what is open first
      if (parsed) {
        Fail(id, EMSGSIZE);  // the plaintext buffer holds less than one record after a parse: never for our own limits
        return false;
      }
      ParseLink(e, id, now);
      parsed = true;
      continue;
    }
    e.rx_fill += plain;
    off += used;
    parsed = false;
  }
  if (off > 0) {
    std::memmove(e.crx.data(), e.crx.data() + off, e.crx_fill - off);
    e.crx_fill -= off;
  }
  ParseLink(e, id, now);
  return true;
}

size_t Forwarder::ParseLink(Endpoint& e, uint32_t id, uint64_t now) {
  UpItem up{kUpLinkBytes, id, 0, {}, {}};
  std::vector<Staged> staged;  // relays to other links: the messages as they came, by reference into rx
  bool going_up = e.up_pending > 0;
  const uint8_t* rx = e.rx.data();
  size_t off = 0;
  size_t passed = 0;
  while (!e.raw && e.rx_fill - off >= kHeader) {
    const uint8_t type = rx[off];
    const size_t len = (size_t{rx[off + 1]} << 16) | (size_t{rx[off + 2]} << 8) | rx[off + 3];
    const bool frame = FrameHeaderOk(type, len, e.max_message);
    if (!frame && !ControlHeaderOk(type, len)) {
      e.raw = true;  // the link's decoder will name the error
      break;
    }
    if (e.rx_fill - off < kHeader + len) break;
    const uint8_t* msg = rx + off;
    if (frame && !going_up) {
      const uint8_t* vh = type == kTypeOffloadFrame ? msg + kHeader : nullptr;
      const uint8_t* data = msg + kHeader + (vh != nullptr ? kVhdr : 0);
      const size_t flen = len - (vh != nullptr ? kVhdr : 0);
      const Entry* entry = Lookup(id, data, now);
      Endpoint* t = entry == nullptr ? nullptr : Get(entry->target);
      bool done = false;
      if (t != nullptr && !t->failed && t->is_link) {
        if (t->out.size() - t->out_off > t->high_water) {
          t->c.tx_dropped++;
        } else {
          Stage(staged, entry->target, msg, kHeader + len);  // a relayed frame is the same message on the next link
          t->c.tx_frames++;
          t->c.tx_bytes += flen;
        }
        done = true;
      } else if (t != nullptr && !t->failed) {
        done = DeliverToTap(entry->target, vh, data, flen);
      }
      if (done) {
        policy_.Forwarded(id, entry->target, now, flen);
        e.c.rx_frames++;
        e.c.rx_bytes += flen;
        off += kHeader + len;
        passed++;
        continue;
      }
    }
    going_up = true;
    up.data.insert(up.data.end(), msg, msg + kHeader + len);
    off += kHeader + len;
  }
  if (e.raw) {
    up.data.insert(up.data.end(), rx + off, rx + e.rx_fill);
    off = e.rx_fill;
  }
  WriteStaged(staged);  // before the buffer moves under the iovecs
  if (off > 0) {
    std::memmove(e.rx.data(), rx + off, e.rx_fill - off);
    e.rx_fill -= off;
  }
  if (!up.data.empty()) Up(std::move(up));
  return passed;
}

bool Forwarder::DeliverToTap(uint32_t tid, const uint8_t* vh, const uint8_t* frame, size_t len) {
  Endpoint& t = *Get(tid);
  if (t.hdr_size == 0 && NeedsWork(vh)) return false;  // JS segments it in software
  const bool fits = (len >= kMinFrame && len <= static_cast<size_t>(t.mtu) + kPortOverhead) || (t.hdr_size > 0 && IsGso(vh) && len >= kMinFrame);
  if (!fits) return false;  // JS counts the drop
  ssize_t w = WriteFrame(t.fd, t.hdr_size, vh, vh != nullptr ? kVhdr : 0, frame, len);
  if (w >= 0) {
    t.c.tx_frames++;
    t.c.tx_bytes += len;
  } else if (FrameLevel(static_cast<int>(-w))) {
    t.c.tx_dropped++;
  } else {
    t.c.tx_dropped++;
    Fail(tid, static_cast<int>(-w));
  }
  return true;
}

int64_t Forwarder::WriteOrQueue(Endpoint& e, uint32_t id, const struct iovec* iov, int iovcnt) {
  if (e.failed) return -(e.err != 0 ? e.err : EPIPE);
  if (!e.records) return WriteBytes(e, id, iov, iovcnt);
  sealed_.clear();
  int err = e.records->Seal(iov, iovcnt, &sealed_);
  if (err != 0) {
    Fail(id, err);
    return -err;
  }
  struct iovec one{sealed_.data(), sealed_.size()};
  return WriteBytes(e, id, &one, 1);
}

// Writes (or queues behind the backlog) bytes as they are.
int64_t Forwarder::WriteBytes(Endpoint& e, uint32_t id, const struct iovec* iov, int iovcnt) {
  size_t skip = 0;
  if (e.out_off == e.out.size()) {
    e.out.clear();
    e.out_off = 0;
    for (int i = 0; i < iovcnt;) {
      int c = std::min(iovcnt - i, IOV_MAX);
      ssize_t w = ::writev(e.fd, iov + i, c);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        if (errno == EAGAIN) break;
        int err = errno;
        Fail(id, err);
        return -err;
      }
      size_t chunk = 0;
      for (int k = i; k < i + c; k++) chunk += iov[k].iov_len;
      skip += static_cast<size_t>(w);
      if (static_cast<size_t>(w) < chunk) break;
      i += c;
    }
  }
  for (int i = 0; i < iovcnt; i++) {
    const uint8_t* p = static_cast<const uint8_t*>(iov[i].iov_base);
    size_t len = iov[i].iov_len;
    size_t drop = std::min(skip, len);
    skip -= drop;
    if (drop < len) e.out.insert(e.out.end(), p + drop, p + len);
  }
  size_t backlog = e.out.size() - e.out_off;
  if (backlog > 0) SetWantWrite(e, id, true);
  return static_cast<int64_t>(backlog);
}

void Forwarder::FlushBacklog(uint32_t id) {
  Endpoint& e = *Get(id);
  while (e.out_off < e.out.size()) {
    ssize_t w = ::write(e.fd, e.out.data() + e.out_off, e.out.size() - e.out_off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      if (errno != EAGAIN) Fail(id, errno);
      return;
    }
    e.out_off += static_cast<size_t>(w);
  }
  e.out.clear();
  e.out_off = 0;
  SetWantWrite(e, id, false);
}

}  // namespace vnet_tap
