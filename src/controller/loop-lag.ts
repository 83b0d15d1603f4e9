import type { Histogram } from 'prom-client';

/**
 * The controller's event-loop lag, as a histogram (`vnet_controller_event_loop_lag_seconds`):
 * a timer asks to run every `intervalMs` and records how much later than
 * that it ran. Everything the controller does — welcomes, reports, pushes,
 * heartbeats, the API — waits behind whatever holds the loop, so this is
 * what a busy spell cost everyone (prom-client's default gauges give only
 * the last window's percentiles, and forget the spells between scrapes).
 *
 * Returns the stop function.
 */
export function sampleLoopLag(lag: Histogram, intervalMs = 100): () => void {
  let expected = performance.now() + intervalMs;
  const timer = setInterval(() => {
    const now = performance.now();
    lag.observe(Math.max(0, now - expected) / 1000);
    expected = now + intervalMs;
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
