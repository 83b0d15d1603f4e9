// Adaptive busy polling: when the native forwarder spins instead of sleeping.
// Pure — no clock, no syscalls: the forwarder passes `now` (ns, monotonic),
// so tests feed it timestamps (poll_policy_addon.cc exposes it as PollPolicy).
//
//   turns    a frame forwarded from endpoint A to B opens a turn A→B (or
//            extends it: `last` moves on); the next frame forwarded B→A answers
//            it, and the delay from A→B's last frame to that answer is one
//            sample of A→B's answer delay. A turn not answered within `cap` is
//            a miss: a one-way stream, or answers slower than spinning could
//            pay for.
//   window   per direction: the 90th percentile of its last 16 samples plus a
//            quarter, at most `cap`; none before 4 samples, none when that
//            percentile is a miss. Request/response traffic gets a window,
//            one-way traffic never does.
//   bulk     a frame over 4 KiB (a GSO super-frame: a bulk transfer, whose
//            reverse carries its ACKs) marks both directions of its pair bulk
//            for 10 ms: no window for either. A bulk transfer keeps the thread
//            busy without spinning, and a spin's CPU is the transfer's loss.
//   spin     after a batch the forwarder asks SpinUntil: the latest of
//            (a frame's time + its direction's window) over the batch's
//            frames, if the budget's credit covers it whole; 0 means sleep.
//   budget   credit accrues at `budget_permille` of elapsed time, up to
//            100 ms worth of it, and every spin is paid from it: spinning
//            averages at most that share of one core over a second. A spin
//            is granted whole or not at all (cut short, it would likely miss).
//   contention  the forwarder reports the thread's scheduling (cumulative
//            run-queue wait and time slices, /proc's schedstat) every 50 ms;
//            while the last interval's wait per time slice is over 50 µs the
//            CPUs are oversubscribed: no spin is granted (every µs spun is
//            taken from a task that waits, the answerer's perhaps).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <unordered_map>

namespace vnet_tap {

struct PollPolicyOptions {
  uint64_t cap_ns = 200000;         // the longest window granted (0: adaptive polling off)
  uint32_t budget_permille = 250;   // the share of one core spinning may take, in thousandths
};

class PollPolicy {
 public:
  static constexpr uint32_t kSamples = 16;
  static constexpr uint32_t kMinSamples = 4;
  static constexpr uint64_t kMiss = UINT64_MAX;
  static constexpr uint64_t kCreditWindowNs = 100000000;  // the credit holds at most this much time's accrual
  static constexpr size_t kBulkFrameBytes = 4096;          // frames above this are GSO super-frames: bulk
  static constexpr uint64_t kBulkHoldNs = 10000000;        // a pair stays bulk this long after such a frame
  static constexpr uint64_t kContendedWaitNs = 50000;      // run-queue wait per time slice above which the CPUs count as oversubscribed

  explicit PollPolicy(PollPolicyOptions o) : o_(o), max_credit_(static_cast<int64_t>(kCreditWindowNs / 1000 * o.budget_permille)) { credit_ = max_credit_; }

  bool enabled() const { return o_.cap_ns > 0 && o_.budget_permille > 0; }

  // A frame of `len` bytes went from `in` to `out` at `now`.
  void Forwarded(uint32_t in, uint32_t out, uint64_t now, size_t len) {
    const uint64_t key = Key(in, out);
    Dir* d = key == last_key_ ? last_dir_ : nullptr;
    if (d == nullptr) {
      d = &dirs_[key];
      // The first frame of a run in this direction answers the reverse's turn
      // (frames after it find the reverse answered already).
      auto r = dirs_.find(Key(out, in));
      if (r != dirs_.end() && r->second.pending) {
        const uint64_t delay = now - r->second.last;
        Record(r->second, delay <= o_.cap_ns ? delay : kMiss);
        r->second.pending = false;
      }
      last_key_ = key;
      last_dir_ = d;
    }
    if (d->pending && now - d->first > o_.cap_ns) {
      Record(*d, kMiss);  // unanswered for longer than the cap: the turn counts as a miss, a new one opens
      d->first = now;
    } else if (!d->pending) {
      d->pending = true;
      d->first = now;
    }
    d->last = now;
    if (len > kBulkFrameBytes) {
      d->bulk_until = now + kBulkHoldNs;
      dirs_[Key(out, in)].bulk_until = d->bulk_until;  // node-based: d stays valid
    }
    if (d->window > 0 && now >= d->bulk_until) deadline_ = std::max(deadline_, now + d->window);
  }

  // After a batch: spin until the returned time (0: sleep now). Clears the batch's deadline.
  uint64_t SpinUntil(uint64_t now) {
    Refill(now);
    const uint64_t deadline = deadline_;
    deadline_ = 0;
    if (!enabled() || deadline <= now) return 0;
    if (contended_) {
      contended_refusals_++;
      return 0;
    }
    if (credit_ < static_cast<int64_t>(deadline - now)) {  // a spin cut short would likely miss: none at all
      denied_++;
      return 0;
    }
    return deadline;
  }

  // A spin took `ns`: paid from the credit.
  void Spun(uint64_t ns) { credit_ -= static_cast<int64_t>(std::min<uint64_t>(ns, INT64_MAX / 2)); }

  // The thread's scheduling so far (cumulative run-queue wait in ns, time slices):
  // the interval since the last report decides whether the CPUs are oversubscribed.
  void Scheduling(uint64_t run_delay_ns, uint64_t timeslices) {
    if (reported_ && timeslices > timeslices_) {
      contended_ = (run_delay_ns - std::min(run_delay_ns, run_delay_ns_)) / (timeslices - timeslices_) > kContendedWaitNs;
    }
    reported_ = true;
    run_delay_ns_ = run_delay_ns;
    timeslices_ = timeslices;
  }
  bool contended() const { return contended_; }

  // The window granted after a frame from `in` to `out` (0: none).
  uint64_t Window(uint32_t in, uint32_t out) const {
    auto it = dirs_.find(Key(in, out));
    return it == dirs_.end() ? 0 : it->second.window;
  }

  // Spins refused because the budget was spent; because the CPUs were oversubscribed.
  uint64_t denied() const { return denied_; }
  uint64_t contended_refusals() const { return contended_refusals_; }

  // An endpoint went away: its directions are forgotten.
  void Forget(uint32_t id) {
    for (auto it = dirs_.begin(); it != dirs_.end();) {
      if (static_cast<uint32_t>(it->first >> 32) == id || static_cast<uint32_t>(it->first) == id) it = dirs_.erase(it);
      else ++it;
    }
    last_key_ = UINT64_MAX;
    last_dir_ = nullptr;
  }

 private:
  struct Dir {
    bool pending = false;
    uint64_t first = 0, last = 0;  // the open turn's first and last frame
    uint64_t samples[kSamples] = {};
    uint32_t n = 0, head = 0;
    uint64_t window = 0;
    uint64_t bulk_until = 0;
  };

  static uint64_t Key(uint32_t in, uint32_t out) { return (uint64_t{in} << 32) | out; }

  void Record(Dir& d, uint64_t sample) {
    d.samples[d.head] = sample;
    d.head = (d.head + 1) % kSamples;
    if (d.n < kSamples) d.n++;
    if (d.n < kMinSamples) {
      d.window = 0;
      return;
    }
    uint64_t sorted[kSamples];
    std::copy(d.samples, d.samples + d.n, sorted);
    const uint32_t k = (d.n * 9 + 9) / 10 - 1;  // ceil(0.9 n) - 1: the 90th percentile
    std::nth_element(sorted, sorted + k, sorted + d.n);
    const uint64_t p90 = sorted[k];
    d.window = p90 == kMiss ? 0 : std::min(o_.cap_ns, p90 + p90 / 4);
  }

  void Refill(uint64_t now) {
    if (now > refilled_) {
      const uint64_t dt = std::min<uint64_t>(now - refilled_, kCreditWindowNs);
      credit_ = std::min(max_credit_, credit_ + static_cast<int64_t>(dt / 1000 * o_.budget_permille));
    }
    refilled_ = std::max(refilled_, now);
  }

  PollPolicyOptions o_;
  std::unordered_map<uint64_t, Dir> dirs_;
  uint64_t last_key_ = UINT64_MAX;
  Dir* last_dir_ = nullptr;  // dirs_ is node-based: the pointer stays valid until Forget
  uint64_t deadline_ = 0;
  int64_t max_credit_;
  int64_t credit_;
  uint64_t refilled_ = 0;
  uint64_t denied_ = 0;
  bool reported_ = false, contended_ = false;
  uint64_t run_delay_ns_ = 0, timeslices_ = 0;
  uint64_t contended_refusals_ = 0;
};

}  // namespace vnet_tap
