import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../../src/common/logger.ts';
import { PatternsListener, type PeerAddress } from '../../src/patterns/listener.ts';
import { runLocalPatterns } from '../../src/patterns/local-run.ts';
import { encodeHeader, encodeHello, MSG_ARRIVE, MSG_DATA, MSG_RELEASE, PatternsDecoder, referencePayload, type Hello, type PatternsMessage } from '../../src/patterns/wire.ts';
import { runWorker } from '../../src/patterns/worker.ts';
import { PATTERN_KINDS, patternEdges, type PatternKind } from '../../src/topology/patterns.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = silentLogger();

function degrees(kind: PatternKind, n: number): number[] {
  const d = new Array<number>(n).fill(0);
  for (const [a, b] of patternEdges(kind, n)) {
    d[a]!++;
    d[b]!++;
  }
  return d;
}

function definedFor(kind: PatternKind, n: number): boolean {
  try {
    patternEdges(kind, n);
    return true;
  } catch {
    return false;
  }
}

/** A hand-driven peer: dials a worker as `hello.index`, and records what the worker sends. */
async function fakePeer(target: PeerAddress, hello: Hello): Promise<{ socket: Socket; received: PatternsMessage[]; closed: Promise<unknown> }> {
  const socket = connect(target);
  await once(socket, 'connect');
  const received: PatternsMessage[] = [];
  const d = new PatternsDecoder({ reference: referencePayload(hello.messageBytes) });
  socket.on('data', (c: Buffer) => received.push(...d.push(c).messages));
  socket.on('error', () => {});
  const closed = once(socket, 'close');
  socket.write(encodeHello(hello));
  return { socket, received, closed };
}

describe('Patterns workers on loopback', () => {
  it('completes every pattern on 4..8 workers with degree × rounds messages sent and received by each worker', async () => {
    const rounds = 6;
    const messageBytes = 4096;
    let runs = 0;
    for (const kind of PATTERN_KINDS) {
      for (let n = 4; n <= 8; n++) {
        if (!definedFor(kind, n)) continue;
        const { reports, coordinator } = await runLocalPatterns({ logger }, { pattern: kind, workers: n, messageBytes, rounds });
        const deg = degrees(kind, n);
        for (const r of reports) {
          const what = `${kind}/${n} worker ${r.index}`;
          assert.equal(r.neighbours.length, deg[r.index], what);
          assert.equal(r.sentMessages, deg[r.index]! * rounds, what);
          assert.equal(r.receivedMessages, deg[r.index]! * rounds, what);
          assert.equal(r.sentBytes, deg[r.index]! * rounds * messageBytes, what);
          assert.equal(r.receivedBytes, deg[r.index]! * rounds * messageBytes, what);
          assert.equal(r.roundMs.length, rounds, what);
        }
        assert.equal(coordinator.index, 0);
        assert.ok(coordinator.summary.totalMs > 0);
        runs++;
      }
    }
    assert.equal(runs, 31); // mesh is defined on 4, 6, 8 and neighbour (k = 2) on 6..8
  });

  it('synchronises all workers at every barrier: no worker starts round r+1 before every worker finished round r', async () => {
    for (const kind of ['ring', 'bus', 'all-to-all'] as const) {
      const rounds = 15;
      // Workers of unequal degree (bus ends, all-to-all) finish their exchanges at different times, so a missing barrier would show.
      const { reports } = await runLocalPatterns({ logger }, { pattern: kind, workers: 8, messageBytes: 32 * 1024, rounds });
      for (let r = 0; r < rounds; r++) {
        const lastFinish = Math.max(...reports.map((w) => w.timeline.exchanged[r]!));
        const rootRelease = reports[0]!.timeline.released[r + 1]!;
        assert.ok(rootRelease >= lastFinish, `${kind}: worker 0 released barrier ${r + 1} before every worker finished round ${r + 1}`);
        if (r + 1 < rounds) {
          const firstStart = Math.min(...reports.map((w) => w.timeline.start[r + 1]!));
          assert.ok(firstStart >= lastFinish, `${kind}: a worker started round ${r + 2} at ${firstStart} before the last finished round ${r + 1} at ${lastFinish}`);
        }
      }
    }
  });

  it('fails every worker fast, with the dead worker named, when one worker process dies mid-run', async () => {
    const n = 6;
    const listeners = await Promise.all(Array.from({ length: n - 1 }, () => PatternsListener.open({ host: '127.0.0.1', port: 0 })));
    const spare = await PatternsListener.open({ host: '127.0.0.1', port: 0 });
    const childPort = spare.port;
    spare.close();
    const peers = [...listeners.map((l) => ({ host: '127.0.0.1', port: l.port })), { host: '127.0.0.1', port: childPort }];
    const common = { pattern: 'ring' as const, messageBytes: 64 * 1024, rounds: 1_000_000, roundTimeoutMs: 30_000, connectTimeoutMs: 20_000 };
    let rootRounds = 0;
    const runs = listeners.map((listener, index) =>
      runWorker({ logger }, { ...common, index, peers, listener, ...(index === 0 ? { onRound: (r: { round: number }) => { rootRounds = r.round; } } : {}) }).then(
        () => assert.fail(`worker ${index} finished a run that lost a worker`),
        (err: unknown) => ({ index, err: err as Error & { code: string }, at: performance.now() }),
      ),
    );
    const child = spawn(process.execPath, [
      fileURLToPath(new URL('../../bin/vnet.js', import.meta.url)),
      'patterns', 'worker', '--index', String(n - 1), '--peers', peers.map((p) => `${p.host}:${p.port}`).join(','),
      '--pattern', 'ring', '--size', String(common.messageBytes), '--rounds', String(common.rounds),
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = once(child, 'exit');
    try {
      await waitFor(() => rootRounds >= 5, 'five rounds with the child worker', 30_000);
    } catch (err) {
      child.kill('SIGKILL');
      throw err;
    }
    child.kill('SIGKILL');
    const killedAt = performance.now();
    await exited;
    const results = await Promise.all(runs);
    for (const { index, err, at } of results) {
      assert.ok(at - killedAt < 3_000, `worker ${index} took ${(at - killedAt).toFixed(0)} ms to fail`);
      // Worker 5's ring neighbours (0 and 4) see its connection go; the others hear of it through aborts
      // (a neighbour may also hear the abort before its own socket reports the loss). Either way worker 5 is named.
      assert.ok(['VNET_ERR_PATTERNS_PEER_VANISHED', 'VNET_ERR_PATTERNS_PEER_ABORTED'].includes(err.code), `worker ${index}: ${err.message}`);
      if (err.code === 'VNET_ERR_PATTERNS_PEER_VANISHED') {
        assert.ok(index === 0 || index === n - 2, `worker ${index} is no neighbour of worker ${n - 1}: ${err.message}`);
        assert.match(err.message, new RegExp(`^worker ${n - 1} \\(127\\.0\\.0\\.1:${childPort}\\): `));
      } else {
        assert.match(err.message, new RegExp(`: worker ${n - 1} \\(127\\.0\\.0\\.1:${childPort}\\): (closed its connection|connection failed)`));
      }
    }
    assert.ok(results.some((r) => r.err.code === 'VNET_ERR_PATTERNS_PEER_VANISHED'), 'no worker saw the connection go');
  });

  it('rejects malformed messages from a peer, naming it, and tells the peer why', async () => {
    const messageBytes = 1000;
    const ref = referencePayload(messageBytes);
    const corrupt = Buffer.from(ref);
    corrupt[10] = corrupt[10]! ^ 1;
    const cases: { name: string; bytes: Buffer; code: string; re: RegExp }[] = [
      { name: 'garbage', bytes: Buffer.from('this is not a patterns message'), code: 'VNET_ERR_PATTERNS_PROTOCOL', re: /bad magic/ },
      { name: 'wrong size', bytes: Buffer.concat([encodeHeader(MSG_ARRIVE, 0, 0), encodeHeader(MSG_DATA, 1, 10), Buffer.alloc(10)]), code: 'VNET_ERR_PATTERNS_PROTOCOL', re: /data message of 10 bytes/ },
      { name: 'skipped round', bytes: Buffer.concat([encodeHeader(MSG_ARRIVE, 0, 0), encodeHeader(MSG_DATA, 2, messageBytes), ref]), code: 'VNET_ERR_PATTERNS_PROTOCOL', re: /data for round 2, expected round 1/ },
      { name: 'corrupt payload', bytes: Buffer.concat([encodeHeader(MSG_ARRIVE, 0, 0), encodeHeader(MSG_DATA, 1, messageBytes), corrupt]), code: 'VNET_ERR_PATTERNS_PROTOCOL', re: /round 1 differs from the reference at bytes \d+\.\.\d+/ },
      { name: 'release from a child', bytes: encodeHeader(MSG_RELEASE, 0, 0), code: 'VNET_ERR_PATTERNS_PROTOCOL', re: /not the parent of worker 0/ },
      { name: 'arrival ahead', bytes: encodeHeader(MSG_ARRIVE, 3, 0), code: 'VNET_ERR_PATTERNS_PROTOCOL', re: /arrived at barrier 3, expected barrier 0/ },
    ];
    for (const c of cases) {
      const listener = await PatternsListener.open({ host: '127.0.0.1', port: 0 });
      const peers = [{ host: '127.0.0.1', port: listener.port }, { host: '127.0.0.1', port: 1 }];
      const run = runWorker({ logger }, { index: 0, peers, listener, pattern: 'bus', messageBytes, rounds: 3, roundTimeoutMs: 10_000 });
      const failed = run.then(() => assert.fail(`${c.name}: the run succeeded`), (err: Error & { code: string }) => err);
      const peer = await fakePeer(peers[0]!, { index: 1, workers: 2, messageBytes, rounds: 3, pattern: 'bus', k: 2 });
      await waitFor(() => peer.received.some((m) => m.type === 'hello'), `${c.name}: the worker's hello`);
      peer.socket.write(c.bytes);
      const err = await failed;
      // The code is the bad bytes' own, not the 10 s round timeout's: the failure came from them, at once.
      assert.equal(err.code, c.code, `${c.name}: ${err.message}`);
      assert.match(err.message, /^worker 1 \(127\.0\.0\.1:1\): /, c.name);
      assert.match(err.message, c.re, c.name);
      await waitFor(() => peer.received.find((m) => m.type === 'abort'), `${c.name}: an abort sent to the peer`);
      await peer.closed;
    }
  });

  it('refuses a peer whose hello is for a different run', async () => {
    const listener = await PatternsListener.open({ host: '127.0.0.1', port: 0 });
    const peers = [{ host: '127.0.0.1', port: listener.port }, { host: '127.0.0.1', port: 1 }];
    const failed = runWorker({ logger }, { index: 0, peers, listener, pattern: 'bus', messageBytes: 1000, rounds: 3 }).then(
      () => assert.fail('succeeded'),
      (err: Error & { code: string }) => err,
    );
    const peer = await fakePeer(peers[0]!, { index: 1, workers: 2, messageBytes: 2000, rounds: 3, pattern: 'bus', k: 2 });
    const err = await failed;
    assert.equal(err.code, 'VNET_ERR_PATTERNS_HANDSHAKE');
    assert.match(err.message, /^worker 1 \(127\.0\.0\.1:\d+\): runs a different messageBytes \(2000, here 1000\)/);
    await peer.closed;
  });

  it('bounds a round by its timeout when a peer goes silent, naming what it waits for', async () => {
    const listener = await PatternsListener.open({ host: '127.0.0.1', port: 0 });
    const peers = [{ host: '127.0.0.1', port: listener.port }, { host: '127.0.0.1', port: 1 }];
    const failed = runWorker({ logger }, { index: 0, peers, listener, pattern: 'bus', messageBytes: 100, rounds: 3, roundTimeoutMs: 300 }).then(
      () => assert.fail('succeeded'),
      (err: Error & { code: string }) => err,
    );
    const peer = await fakePeer(peers[0]!, { index: 1, workers: 2, messageBytes: 100, rounds: 3, pattern: 'bus', k: 2 });
    const err = await failed;
    assert.equal(err.code, 'VNET_ERR_PATTERNS_ROUND_TIMEOUT');
    assert.match(err.message, /round 0 did not finish within 300 ms; still waiting for barrier arrival from worker 1 \(127\.0\.0\.1:1\)/);
    peer.socket.destroy();
  });

  it('bounds the connection set-up and names the neighbours it could not reach', async () => {
    const spare = await PatternsListener.open({ host: '127.0.0.1', port: 0 });
    const dead = spare.port;
    spare.close();
    const listener = await PatternsListener.open({ host: '127.0.0.1', port: 0 });
    const peers = [{ host: '127.0.0.1', port: dead }, { host: '127.0.0.1', port: listener.port }];
    const err = await runWorker({ logger }, { index: 1, peers, listener, pattern: 'bus', messageBytes: 100, rounds: 3, connectTimeoutMs: 400 }).then(
      (): never => assert.fail('succeeded'),
      (e: Error & { code: string }) => e,
    );
    assert.equal(err.code, 'VNET_ERR_PATTERNS_CONNECT_TIMEOUT');
    assert.match(err.message, new RegExp(`not connected within 400 ms to worker 0 \\(127\\.0\\.0\\.1:${dead}\\)`));
  });

  it('refuses invalid parameters before listening', async () => {
    const peers = [{ host: '127.0.0.1', port: 1 }, { host: '127.0.0.1', port: 2 }, { host: '127.0.0.1', port: 3 }];
    const bad: [Partial<Parameters<typeof runWorker>[1]>, RegExp][] = [
      [{ index: 3 }, /index 3 is not in 0\.\.2/],
      [{ pattern: 'mesh' }, /mesh needs a VM count/],
      [{ rounds: 0 }, /rounds 0/],
      [{ messageBytes: -1 }, /message size -1/],
    ];
    for (const [patch, re] of bad) {
      await assert.rejects(
        runWorker({ logger }, { index: 0, peers, pattern: 'ring', messageBytes: 10, rounds: 2, ...patch }),
        (e: Error & { code: string }) => e.code === 'VNET_ERR_PATTERNS_CONFIG' && re.test(e.message),
      );
    }
  });

  it('reports throughput and round statistics consistent with the timeline', async () => {
    const { coordinator: c } = await runLocalPatterns({ logger }, { pattern: 'star', workers: 5, messageBytes: 8192, rounds: 10 });
    const sum = c.roundMs.reduce((s, x) => s + x, 0);
    assert.ok(Math.abs(sum - c.summary.totalMs) < 1e-6);
    assert.ok(Math.abs(c.timeline.released[10]! - c.timeline.released[0]! - c.summary.totalMs) < 1e-6);
    assert.ok(Math.abs(c.throughput.aggregateBytesPerSecond - (2 * 4 * 8192 * 10) / (c.summary.totalMs / 1000)) < 1e-3);
    assert.deepEqual(c.barrier, { parent: null, children: [1, 2, 3, 4], height: 1 });
  });
});
