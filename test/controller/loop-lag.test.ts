import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Histogram, Registry } from 'prom-client';
import { sampleLoopLag } from '../../src/controller/loop-lag.ts';
import { waitFor } from '../helpers/wait.ts';

test('a busy spell of the event loop is recorded in the lag histogram as at least as long', async () => {
  const registry = new Registry();
  const lag = new Histogram({ name: 'lag_seconds', help: 'lag', buckets: [0.05, 0.25, 1], registers: [registry] });
  const stop = sampleLoopLag(lag, 20);
  const count = async (le: number | '+Inf'): Promise<number> =>
    (await lag.get()).values.find((v) => v.metricName === 'lag_seconds_bucket' && v.labels.le === le)?.value ?? 0;
  try {
    await waitFor(async () => (await count('+Inf')) >= 1, 'a first sample');
    const end = performance.now() + 300;
    while (performance.now() < end) { /* the loop is monopolised */ }
    const before = await count('+Inf');
    await waitFor(async () => (await count('+Inf')) > before, 'the sample after the spell');
    assert.ok((await count('+Inf')) - (await count(0.25)) >= 1, 'a sample over 250 ms');
  } finally {
    stop();
  }
});
