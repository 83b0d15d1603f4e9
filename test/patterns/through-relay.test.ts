import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startDelayRelay } from '../../src/common/delay-relay.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { PatternsListener } from '../../src/patterns/listener.ts';
import { runWorker } from '../../src/patterns/worker.ts';

const logger = silentLogger();

describe('Patterns over an emulated WAN link', () => {
  it('pays one round trip per round on a 2-worker bus through a 10 ms relay (data one way, arrival and release)', async () => {
    const delayMs = 10;
    const l0 = await PatternsListener.open({ host: '127.0.0.1', port: 0 });
    const l1 = await PatternsListener.open({ host: '127.0.0.1', port: 0 });
    const relay = await startDelayRelay({ logger }, { listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: l0.port }, delayMs });
    // Worker 1 reaches worker 0 through the relay; worker 0 listens on its own port behind it.
    const peers = [{ host: '127.0.0.1', port: relay.port }, { host: '127.0.0.1', port: l1.port }];
    const init = { peers, pattern: 'bus' as const, messageBytes: 16 * 1024, rounds: 10 };
    const [r0, r1] = await Promise.all([runWorker({ logger }, { ...init, index: 0, listener: l0 }), runWorker({ logger }, { ...init, index: 1, listener: l1 })]);
    await relay.close();
    assert.equal(r0.receivedMessages, 10);
    assert.equal(r1.receivedMessages, 10);
    assert.ok(r0.summary.minMs >= 2 * delayMs, `a round took ${r0.summary.minMs.toFixed(2)} ms, under one round trip`);
    // Load on the machine only lengthens rounds; the shortest shows the cost is one emulated round trip, not more.
    assert.ok(r0.summary.minMs < 2 * delayMs + 15, `shortest round ${r0.summary.minMs.toFixed(2)} ms (median ${r0.summary.medianMs.toFixed(2)})`);
  });
});
