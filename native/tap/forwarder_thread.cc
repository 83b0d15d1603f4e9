// The native forwarder's thread: epoll, then a batch served under the mutex,
// then — by the poll policy (poll_policy.h) or a fixed busyPollUs — a short
// spin for the answer before sleeping again.
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <pthread.h>

#include <cstdio>
#include <string>

#include "forwarder.h"
#include "monotonic.h"

namespace vnet_tap {
namespace {

constexpr uint64_t kYieldEveryNs = 5000;           // while spinning, sched_yield this often: a task waiting for this CPU runs
constexpr uint64_t kSchedulingEveryNs = 50000000;  // how often the thread's scheduling is read for the policy

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace

void Forwarder::Run() {
  pthread_setname_np(pthread_self(), "vnet-forwarder");  // for top -H, perf sched, /proc/PID/task/TID/comm
  const std::string schedstat = "/proc/self/task/" + std::to_string(::syscall(SYS_gettid)) + "/schedstat";
  schedstat_fd_ = ::open(schedstat.c_str(), O_RDONLY | O_CLOEXEC);  // absent without CONFIG_SCHEDSTATS: never counted contended
  struct epoll_event evs[64];
  uint64_t spin_until = 0;
  while (!stop_) {
    int n = spin_until != 0 ? Spin(evs, 64, spin_until) : 0;
    if (n == 0) n = ::epoll_wait(epfd_, evs, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    bool notify = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      uint64_t now = MonotonicNs();
      size_t before = up_.size();
      for (int i = 0; i < n; i++) {
        uint64_t data = evs[i].data.u64;
        if (data == kWakeId) {
          uint64_t v;
          (void)!::read(wakefd_, &v, sizeof v);
          continue;
        }
        uint32_t id = static_cast<uint32_t>(data);
        Endpoint* e = Get(id);
        if (e == nullptr || e->gen != static_cast<uint32_t>(data >> 32) || e->failed) continue;  // detached meanwhile
        Serve(id, evs[i].events, now);
      }
      if (up_.size() > before && !notified_) notified_ = notify = true;
      spin_until = SpinUntil(MonotonicNs());
    }
    if (notify) notify_();
  }
}

// With the mutex held, after a batch: when to stop spinning (0: sleep now).
uint64_t Forwarder::SpinUntil(uint64_t now) {
  if (busy_poll_ns_ > 0) return now + busy_poll_ns_;
  if (!policy_.enabled()) return 0;
  ReportScheduling(now);
  return policy_.SpinUntil(now);
}

// Polls without sleeping until an event comes or `until`; the events' count
// (0: none came). It yields the CPU at the start and every few µs: a task
// waiting for this CPU — often the one the batch just woke, whose answer the
// spin waits for — runs first (a yield costs a system call when none waits).
int Forwarder::Spin(struct epoll_event* evs, int max, uint64_t until) {
  const uint64_t start = MonotonicNs();
  uint64_t yield_at = start;
  int n = 0;
  while (!stop_) {
    n = ::epoll_wait(epfd_, evs, max, 0);
    if (n > 0 || (n < 0 && errno != EINTR)) break;
    n = 0;
    const uint64_t now = MonotonicNs();
    if (now >= until) break;
    if (now >= yield_at) {
      sched_yield();
      yield_at = now + kYieldEveryNs;
    } else {
      for (int i = 0; i < 16; i++) CpuRelax();
    }
  }
  const uint64_t spent = MonotonicNs() - start;
  std::lock_guard<std::mutex> lock(mu_);
  poll_.spins++;
  if (n > 0) poll_.hits++;
  poll_.spin_ns += spent;
  if (busy_poll_ns_ == 0) policy_.Spun(spent);
  return n;
}

// Reports the thread's run-queue wait and time slices to the policy (every 50 ms).
void Forwarder::ReportScheduling(uint64_t now) {
  if (now < scheduling_at_) return;
  scheduling_at_ = now + kSchedulingEveryNs;
  if (schedstat_fd_ < 0) return;
  char buf[128];
  ssize_t r = ::pread(schedstat_fd_, buf, sizeof buf - 1, 0);
  if (r <= 0) return;
  buf[r] = 0;
  unsigned long long run_ns = 0, wait_ns = 0, slices = 0;
  if (std::sscanf(buf, "%llu %llu %llu", &run_ns, &wait_ns, &slices) == 3) policy_.Scheduling(wait_ns, slices);
}

void Forwarder::Serve(uint32_t id, uint32_t events, uint64_t now) {
  Endpoint* e = Get(id);
  if (e->is_link && (events & EPOLLOUT) != 0) FlushBacklog(id);
  if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) == 0) return;
  if (Get(id) == nullptr || e->failed) return;
  if (e->is_link) ReadLink(id, now);
  else ReadTap(id, now);
}

}  // namespace vnet_tap
