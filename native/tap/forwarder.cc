// The native forwarder: its endpoints, flows and counters as JavaScript
// drives them (forwarder.h says what it does and why; the thread's loop is
// forwarder_thread.cc, its reads and writes forwarder_io.cc).
#include "forwarder.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "monotonic.h"

namespace vnet_tap {
namespace {

constexpr size_t kLinkRxBytes = 256 * 1024 + 4 + 65535 + 14 + 4 + 10;  // a read plus the largest message
constexpr size_t kLinkCipherBytes = 2 * (kRecordHeader + kRecordMaxPlain + kRecordTag);  // a read's worth, and a whole record

uint64_t Mac48(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 6; i++) v = (v << 8) | p[i];
  return v;
}

}  // namespace

size_t Forwarder::KeyHash::operator()(const Key& k) const {
  uint64_t h = k.src * 0x9e3779b97f4a7c15ull ^ (k.dst + 0x632be59bd9b4e019ull) * 0xc2b2ae3d27d4eb4full ^ k.ingress;
  return static_cast<size_t>(h ^ (h >> 29));
}

Forwarder::Forwarder(uint32_t busy_poll_us, PollPolicyOptions adaptive, uint32_t ttl_ms, std::function<void()> notify)
    : notify_(std::move(notify)), busy_poll_ns_(uint64_t{busy_poll_us} * 1000), policy_(adaptive), ttl_ns_(uint64_t{ttl_ms} * 1000000) {}

Forwarder::~Forwarder() {
  stop_ = true;
  if (wakefd_ >= 0) {
    uint64_t one = 1;
    (void)!::write(wakefd_, &one, sizeof one);
  }
  if (thread_.joinable()) thread_.join();
  for (Endpoint* e : endpoints_) {
    if (e == nullptr) continue;
    if (e->fd >= 0) ::close(e->fd);
    delete e;
  }
  if (epfd_ >= 0) ::close(epfd_);
  if (wakefd_ >= 0) ::close(wakefd_);
  if (schedstat_fd_ >= 0) ::close(schedstat_fd_);
}

int Forwarder::Start() {
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) return errno;
  wakefd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wakefd_ < 0) return errno;
  struct epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeId;
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev) < 0) return errno;
  scratch_.resize(1 << 20);
  try {
    thread_ = std::thread([this] { Run(); });
  } catch (const std::system_error& e) {
    return e.code().value() != 0 ? e.code().value() : EAGAIN;
  }
  return 0;
}

Forwarder::Endpoint* Forwarder::Get(uint32_t id) {
  return id < endpoints_.size() ? endpoints_[id] : nullptr;
}

static int AttachFd(int epfd, int fd, uint64_t data, int* dup_out) {
  int d = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) return -errno;
  struct epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = data;
  if (::epoll_ctl(epfd, EPOLL_CTL_ADD, d, &ev) < 0) {
    int err = errno;
    ::close(d);
    return -err;
  }
  *dup_out = d;
  return 0;
}

int Forwarder::Attach(int fd, Endpoint* e) {
  // Configured whole before its fd is in the epoll set: the thread never sees it half made.
  std::lock_guard<std::mutex> lock(mu_);
  uint32_t id = 0;
  while (id < endpoints_.size() && endpoints_[id] != nullptr) id++;
  if (id == kWakeId) {
    delete e;
    return -EMFILE;
  }
  static uint32_t next_gen = 1;
  e->gen = next_gen++;
  int rc = AttachFd(epfd_, fd, (uint64_t{e->gen} << 32) | id, &e->fd);
  if (rc < 0) {
    delete e;
    return rc;
  }
  if (id == endpoints_.size()) endpoints_.push_back(e);
  else endpoints_[id] = e;
  return static_cast<int>(id);
}

int Forwarder::AttachTap(int fd, int hdr_size, int mtu) {
  auto* e = new Endpoint();
  e->hdr_size = hdr_size;
  e->mtu = mtu;
  return Attach(fd, e);
}

int Forwarder::AttachLink(int fd, uint32_t max_message_bytes, uint64_t high_water, const RecordState* records, const std::vector<uint8_t>& cipher) {
  auto* e = new Endpoint();
  e->is_link = true;
  e->max_message = max_message_bytes;
  e->high_water = high_water;
  e->rx.resize(kLinkRxBytes);
  if (records != nullptr) {
    e->records = std::make_unique<RecordLayer>(*records);
    if (!e->records->ok() || cipher.size() > kLinkCipherBytes) {
      delete e;
      return -EIO;
    }
    e->crx.resize(kLinkCipherBytes);
    std::memcpy(e->crx.data(), cipher.data(), cipher.size());
    e->crx_fill = cipher.size();
  }
  return Attach(fd, e);
}

void Forwarder::Detach(uint32_t id, std::vector<uint8_t>* backlog, std::vector<UpItem>* queued, EndpointCounters* counts,
                       bool* has_records, RecordState* records, std::vector<uint8_t>* cipher) {
  std::lock_guard<std::mutex> lock(mu_);
  Endpoint* e = Get(id);
  *has_records = false;
  if (e == nullptr) return;
  if (e->records) {
    *has_records = true;
    *records = e->records->state();
    cipher->assign(e->crx.begin(), e->crx.begin() + static_cast<ptrdiff_t>(e->crx_fill));
  }
  if (e->fd >= 0) {
    ::epoll_ctl(epfd_, EPOLL_CTL_DEL, e->fd, nullptr);
    ::close(e->fd);
  }
  backlog->assign(e->out.begin() + static_cast<ptrdiff_t>(e->out_off), e->out.end());
  *counts = e->c;
  std::vector<UpItem> keep;
  for (UpItem& item : up_) (item.endpoint == id ? *queued : keep).push_back(std::move(item));
  up_.swap(keep);
  if (e->rx_fill > 0) {
    UpItem rest{kUpLinkBytes, id, 0, std::vector<uint8_t>(e->rx.begin(), e->rx.begin() + static_cast<ptrdiff_t>(e->rx_fill)), {}};
    queued->push_back(std::move(rest));
  }
  for (auto it = flows_.begin(); it != flows_.end();) {
    if (it->first.ingress == id || it->second.target == id) it = flows_.erase(it);
    else ++it;
  }
  for (uint32_t& f : inflight_) if (f == id) f = kWakeId;
  policy_.Forget(id);
  delete e;
  endpoints_[id] = nullptr;
}

void Forwarder::Install(uint32_t ingress, uint64_t src, uint64_t dst, uint32_t target, bool count_traffic) {
  std::lock_guard<std::mutex> lock(mu_);
  if (Get(ingress) == nullptr || Get(target) == nullptr) return;
  flows_[Key{ingress, src, dst}] = Entry{target, MonotonicNs() + ttl_ns_, count_traffic};
}

void Forwarder::Flush() {
  std::lock_guard<std::mutex> lock(mu_);
  flows_.clear();
}

void Forwarder::TakeUp(std::vector<UpItem>* out) {
  std::lock_guard<std::mutex> lock(mu_);
  notified_ = false;
  for (UpItem& item : up_) inflight_.push_back(item.endpoint);
  out->swap(up_);
  up_.clear();
}

void Forwarder::Ack() {
  std::lock_guard<std::mutex> lock(mu_);
  for (uint32_t id : inflight_) {
    Endpoint* e = id == kWakeId ? nullptr : Get(id);
    if (e != nullptr && e->up_pending > 0) e->up_pending--;
  }
  inflight_.clear();
}

void Forwarder::TakeCounters(std::vector<std::pair<uint32_t, EndpointCounters>>* endpoints, std::vector<TrafficDelta>* traffic) {
  std::lock_guard<std::mutex> lock(mu_);
  for (uint32_t id = 0; id < endpoints_.size(); id++) {
    Endpoint* e = endpoints_[id];
    if (e == nullptr) continue;
    const EndpointCounters& c = e->c;
    if (c.rx_frames + c.tx_frames + c.tx_dropped == 0) continue;
    endpoints->push_back({id, c});
    e->c = EndpointCounters{};
  }
  for (auto& kv : traffic_) traffic->push_back(kv.second);
  traffic_.clear();
}

PollStats Forwarder::Poll() {
  std::lock_guard<std::mutex> lock(mu_);
  PollStats s = poll_;
  s.denied = policy_.denied();
  s.contended = policy_.contended_refusals();
  return s;
}

int64_t Forwarder::WriteLink(uint32_t id, const struct iovec* iov, int iovcnt) {
  std::lock_guard<std::mutex> lock(mu_);
  Endpoint* e = Get(id);
  if (e == nullptr || !e->is_link) return -EBADF;
  size_t before = up_.size();
  int64_t r = WriteOrQueue(*e, id, iov, iovcnt);
  if (up_.size() > before && !notified_) {  // the write failed the link: JS hears it now, not at the next wake-up
    notified_ = true;
    notify_();
  }
  return r;
}

bool Forwarder::RecordsInfo(uint32_t id, RecordKeyInfo* out) {
  std::lock_guard<std::mutex> lock(mu_);
  Endpoint* e = Get(id);
  if (e == nullptr || e->records == nullptr) return false;
  *out = e->records->info();
  return true;
}

int64_t Forwarder::Backlog(uint32_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  Endpoint* e = Get(id);
  if (e == nullptr) return -EBADF;
  if (e->failed) return -(e->err != 0 ? e->err : EPIPE);
  return static_cast<int64_t>(e->out.size() - e->out_off);
}

const Forwarder::Entry* Forwarder::Lookup(uint32_t ingress, const uint8_t* frame, uint64_t now) {
  auto it = flows_.find(Key{ingress, Mac48(frame + 6), Mac48(frame)});
  if (it == flows_.end()) return nullptr;
  if (now >= it->second.expires_ns) {
    flows_.erase(it);
    return nullptr;
  }
  return &it->second;
}

void Forwarder::CountTraffic(const uint8_t* frame, size_t len) {
  uint64_t src = Mac48(frame + 6), dst = Mac48(frame);
  TrafficDelta& t = traffic_[Key{0, src, dst}];
  t.src = src;
  t.dst = dst;
  t.frames++;
  t.bytes += len;
}

void Forwarder::Up(UpItem item) {
  Endpoint* e = Get(item.endpoint);
  if (e != nullptr) e->up_pending++;
  up_.push_back(std::move(item));
}

void Forwarder::Fail(uint32_t id, int err) {
  Endpoint* e = Get(id);
  if (e == nullptr || e->failed) return;
  e->failed = true;
  e->err = err;
  ::epoll_ctl(epfd_, EPOLL_CTL_DEL, e->fd, nullptr);
  Up(UpItem{kUpFailed, id, err, {}, {}});
}

void Forwarder::SetWantWrite(Endpoint& e, uint32_t id, bool want) {
  if (e.want_write == want || e.failed) return;
  e.want_write = want;
  struct epoll_event ev{};
  ev.events = want ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
  ev.data.u64 = (uint64_t{e.gen} << 32) | id;
  ::epoll_ctl(epfd_, EPOLL_CTL_MOD, e.fd, &ev);
}

}  // namespace vnet_tap
