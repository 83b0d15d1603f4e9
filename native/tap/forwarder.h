// The native forwarder: the daemon's hot path for established flows, on one
// thread of its own, free of N-API (forwarder_addon.cc is the JS face).
//
// Endpoints are TAP queues and link sockets — plain TCP, or a TLS link's TCP
// socket switched to native AEAD records (records.h) — that JS attached (each a
// dup() of the fd, so JS closing its own never leaves this thread with a
// recycled number). One epoll thread serves them all:
//
//   TAP readable    read up to 64 frames → per frame: flow table lookup by
//                   (ingress, src MAC, dst MAC) → a hit that is a link: the
//                   wire message header (0x02, or 0x03 with the virtio-net
//                   header when it asks for offload work) and the frame are
//                   gathered per link and written with one writev per link per
//                   batch; a hit that is a TAP: written to it. Everything else
//                   (a miss, a runt, a broadcast JS did not install) goes up.
//   link readable   read → (records: open each record, in order, into the
//                   plaintext buffer; a bad one fails the link) → split into wire messages → a frame message whose
//                   (ingress, src, dst) hits a TAP endpoint is written to it,
//                   one that hits another link (a hub's relay) is written on
//                   as it came, gathered per link;
//                   every other message goes up whole, as its bytes, for the
//                   link's own decoder (so every decoding error, and every
//                   control message, is JS's). A header that is not a
//                   well-formed frame or control message switches the link to
//                   "raw": all its bytes from there on go up, the decoder says
//                   what was wrong.
//   link writable   the backlog (what a write left unwritten) is written.
//   up              items (a TAP batch, a link's bytes, a failure) queue here
//                   and `notify` wakes JS, which takes and handles them, then
//                   acks. While an ingress has items up, its later frames go up
//                   too: frames of one ingress never overtake each other.
//
// JS writes (control messages, frames it forwarded itself) go through
// WriteLink under the same mutex, after any backlog: the byte stream never
// interleaves. On a records link everything written (one batch's frames for
// that link together: a burst is coalesced, a lone frame never waits) is
// sealed first, under the same mutex, so the record counter and the stream
// order are one. Flow entries live `ttl` (JS refreshes learning when one expires
// and a frame goes up again); Flush drops them all (JS calls it on every rule,
// port, link or learning change). Counters are deltas JS takes and merges.
//
// Sleeping: after a batch the thread sleeps in epoll_wait — unless it spins
// first: polling epoll_wait(0) with a pause between polls and a sched_yield
// at the start and every 5 µs (a task waiting for this CPU — the VM's process
// the batch just woke — runs; no yield storm), until an event comes (a hit)
// or the deadline. How long: `busy_poll_us` after every batch when set (a
// fixed override), else what the adaptive policy grants (poll_policy.h: only
// while answers come back quickly, not for bulk, within a CPU budget, not on
// oversubscribed CPUs), else none.
#pragma once

#include <sys/epoll.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "poll_policy.h"
#include "records.h"

namespace vnet_tap {

struct EndpointCounters {
  uint64_t rx_frames = 0, rx_bytes = 0, tx_frames = 0, tx_bytes = 0, tx_dropped = 0;
};

enum UpKind : uint8_t { kUpTapBatch = 1, kUpLinkBytes = 2, kUpFailed = 3 };

struct UpItem {
  UpKind kind;
  uint32_t endpoint;
  int err = 0;                    // kUpFailed: errno (0: the peer closed the connection)
  std::vector<uint8_t> data;      // a TAP batch's records, back to back; a link's message bytes
  std::vector<uint32_t> records;  // TAP batch: (offset, length) per record
};

// Busy polling's counts since the forwarder started.
struct PollStats {
  uint64_t spins = 0, hits = 0, spin_ns = 0, denied = 0;
  uint64_t contended = 0;  // spins not granted because the CPUs were oversubscribed
};

struct TrafficDelta {
  uint64_t src, dst, frames, bytes;
};

class Forwarder {
 public:
  struct Staged;  // bytes gathered for one link during one batch (forwarder_io.cc)

  // notify: called on the forwarder's thread when items went up (coalesce it: uv_async_send).
  // busy_poll_us > 0: spin that long after every batch; else `adaptive` decides (cap_ns 0: never spin).
  Forwarder(uint32_t busy_poll_us, PollPolicyOptions adaptive, uint32_t ttl_ms, std::function<void()> notify);
  ~Forwarder();
  int Start();  // 0 or errno

  // Attach: fd is dup()ed. Returns the endpoint id (>= 0) or -errno.
  int AttachTap(int fd, int hdr_size, int mtu);
  // records: the link's record layer state (keys, counters) when it carries native
  // records, with `cipher` the bytes of a record JS had begun to receive.
  int AttachLink(int fd, uint32_t max_message_bytes, uint64_t high_water, const RecordState* records, const std::vector<uint8_t>& cipher);
  // Stops serving the endpoint; returns what it still held: the unwritten backlog
  // (link), the bytes read but not yet handed up (link), items queued for it,
  // and its counts not yet taken; for a records link, the record state and the
  // bytes of records not yet opened (*has_records set).
  void Detach(uint32_t id, std::vector<uint8_t>* backlog, std::vector<UpItem>* queued, EndpointCounters* counts,
              bool* has_records, RecordState* records, std::vector<uint8_t>* cipher);

  // JS's writes to a link, in order with the forwarder's own. Returns the backlog
  // in bytes, or -errno when the link has failed.
  int64_t WriteLink(uint32_t id, const struct iovec* iov, int iovcnt);
  int64_t Backlog(uint32_t id);
  // A records link's key progress (no keys); false for any other endpoint.
  bool RecordsInfo(uint32_t id, RecordKeyInfo* out);

  void Install(uint32_t ingress, uint64_t src, uint64_t dst, uint32_t target, bool count_traffic);
  void Flush();

  void TakeUp(std::vector<UpItem>* out);
  void Ack();  // the items taken last have been handled
  void TakeCounters(std::vector<std::pair<uint32_t, EndpointCounters>>* endpoints, std::vector<TrafficDelta>* traffic);
  PollStats Poll();

 private:
  struct Endpoint {
    bool is_link = false;
    int fd = -1;                 // our dup() of the TAP's or socket's fd
    uint32_t gen = 0;            // tells a stale epoll event from a reused id
    int hdr_size = 0;            // TAP: virtio_net_hdr bytes before each frame
    int mtu = 0;
    size_t max_message = 0;      // link: the decoder's maxMessageBytes
    uint64_t high_water = 0;     // link: frames are dropped while the backlog is above this
    bool failed = false;
    int err = 0;
    bool raw = false;            // link: every byte goes up from here on
    bool want_write = false;
    uint32_t up_pending = 0;     // items up for this ingress and not yet acked
    std::vector<uint8_t> rx;     // link: bytes read, not yet parsed
    size_t rx_fill = 0;
    std::unique_ptr<RecordLayer> records;  // link: native records (else plain bytes)
    std::vector<uint8_t> crx;    // records link: bytes read, not yet opened
    size_t crx_fill = 0;
    std::vector<uint8_t> out;    // link: the backlog (sealed records on a records link)
    size_t out_off = 0;
    EndpointCounters c;
  };
  struct Key {
    uint32_t ingress;
    uint64_t src, dst;
    bool operator==(const Key& o) const { return ingress == o.ingress && src == o.src && dst == o.dst; }
  };
  struct KeyHash {
    size_t operator()(const Key& k) const;
  };
  struct Entry {
    uint32_t target;
    uint64_t expires_ns;
    bool count_traffic;
  };

  static constexpr uint32_t kWakeId = 0xffffffffu;  // the eventfd's epoll id (no endpoint has it)

  int Attach(int fd, Endpoint* e);
  void Run();
  int Spin(struct epoll_event* evs, int max, uint64_t until);
  uint64_t SpinUntil(uint64_t now);
  void ReportScheduling(uint64_t now);
  void Serve(uint32_t id, uint32_t events, uint64_t now);
  void ReadTap(uint32_t id, uint64_t now);
  void ReadLink(uint32_t id, uint64_t now);
  bool OpenRecords(Endpoint& e, uint32_t id, uint64_t now);
  size_t ParseLink(Endpoint& e, uint32_t id, uint64_t now);
  bool DeliverToTap(uint32_t tid, const uint8_t* vhdr, const uint8_t* frame, size_t len);
  void FlushBacklog(uint32_t id);
  void WriteStaged(std::vector<Staged>& staged);
  int64_t WriteOrQueue(Endpoint& e, uint32_t id, const struct iovec* iov, int iovcnt);
  int64_t WriteBytes(Endpoint& e, uint32_t id, const struct iovec* iov, int iovcnt);
  const Entry* Lookup(uint32_t ingress, const uint8_t* frame, uint64_t now);
  void CountTraffic(const uint8_t* frame, size_t len);
  void Fail(uint32_t id, int err);
  void Up(UpItem item);
  void SetWantWrite(Endpoint& e, uint32_t id, bool want);
  Endpoint* Get(uint32_t id);

  std::mutex mu_;
  std::vector<Endpoint*> endpoints_;
  std::unordered_map<Key, Entry, KeyHash> flows_;
  std::unordered_map<Key, TrafficDelta, KeyHash> traffic_;
  std::vector<UpItem> up_;
  std::vector<uint32_t> inflight_;  // endpoints of the items taken and not yet acked
  bool notified_ = false;
  std::function<void()> notify_;
  uint64_t busy_poll_ns_;
  PollPolicy policy_;
  PollStats poll_;
  int schedstat_fd_ = -1;       // this thread's /proc schedstat (the policy's contention input)
  uint64_t scheduling_at_ = 0;
  uint64_t ttl_ns_;
  int epfd_ = -1;
  int wakefd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<uint8_t> scratch_;  // one TAP batch
  std::vector<uint8_t> sealed_;   // one write's records
};

}  // namespace vnet_tap
