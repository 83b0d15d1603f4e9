import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ModelGuest } from '../../../src/migration/guests/memory-guest.ts';
import { runVirtualMigration } from '../../../src/migration/drivers/virtual-time.ts';
import { receiveMigration, sendMigration } from '../../../src/migration/drivers/socket-migration.ts';
import { connectMigration, listenMigration, type MigrationConnectOptions, type MigrationListenOptions } from '../../../src/migration/drivers/socket-channel.ts';
import { SmartStop } from '../../../src/migration/stop-rules/smart-stop.ts';
import { TimeBound } from '../../../src/migration/stop-rules/time-bound.ts';
import { XenStop } from '../../../src/migration/stop-rules/xen-stop.ts';
import { createContentKeyer, memoryDigest, diskDigest } from '../../../src/migration/engine/content-key.ts';
import { realClock, type Clock } from '../../../src/common/clock.ts';
import { createCa, issueHostCertificate } from '../../../src/pki/certs.ts';
import type { StopRule } from '../../../src/migration/stop-rules/stop-rule.ts';
import { createEmptyGuest, type ModelGuestInit } from '../../../src/migration/guests/memory-guest.ts';
import type { GuestGeometry, Guest } from '../../../src/migration/guest.ts';
import type { MigrationResult } from '../../../src/migration/engine/migration-result.ts';
import { startDelayRelay } from '../../../src/common/delay-relay.ts';
import { silentLogger } from '../../../src/common/logger.ts';
import { MigrationAbortedError } from '../../../src/migration/errors.ts';
import { OneWriteGuest, assertSameAsReplay } from '../guests/sync-guests.ts';

const WL = { dirtyRate: 1500, wssShare: 0.3, hotShare: 0.05, locality: 0.8, zeroShare: 0.2, dupShare: 0.1, bytesPerWrite: 200, rewriteShare: 0.2 };
const BW = 60e6;

function guest(seed = 9): ModelGuest {
  return new ModelGuest({ name: 'g', pageCount: 2048, blockCount: 128, representation: 'bytes', memoryWorkload: WL, diskWorkload: { writeRate: 30, wssShare: 0.2, zeroShare: 0.3 }, seed });
}

function clockFromNow(): Clock {
  const t0 = realClock.now();
  return { ...realClock, now: () => realClock.now() - t0 };
}

async function pair(channels: number, listen: MigrationListenOptions = {}, connect: Partial<MigrationConnectOptions> = {}): Promise<{ out: Duplex[]; inn: Duplex[]; close: () => Promise<void> }> {
  const l = await listenMigration(listen);
  const acc = l.accept(channels);
  const out = await connectMigration({ host: '127.0.0.1', port: l.port, channels, ...connect });
  const inn = await acc;
  return { out, inn, close: async () => { for (const s of [...out, ...inn]) s.destroy(); await l.close(); } };
}

async function overSockets(rule: () => StopRule, g: ModelGuest, channels: number, listen: MigrationListenOptions = {}, connect: Partial<MigrationConnectOptions> = {}) {
  const p = await pair(channels, listen, connect);
  const clock = clockFromNow();
  try {
    const rp = receiveMigration({ channels: p.inn, clock, timeoutMs: 20_000 });
    const r = await sendMigration({ guest: g, rule: rule(), channels: p.out, clock, paceBps: BW, timeoutMs: 20_000 });
    return { r, rr: await rp };
  } finally {
    await p.close();
  }
}

test('a guest migrates over loopback TCP, bit-identical, with one and with two channels', async () => {
  const keyer = await createContentKeyer();
  for (const [rule, ch] of [[() => new SmartStop(), 1], [() => new TimeBound({ deadlineMs: 4000 }), 2]] as const) {
    const g = guest();
    const { r, rr } = await overSockets(rule, g, ch);
    assert.equal(r.ok, true, r.error?.message);
    assert.equal(rr.ok, true, rr.error?.message);
    assert.equal(memoryDigest(rr.guest!.memory, keyer), memoryDigest(g.memory, keyer));
    assert.equal(diskDigest(rr.guest!.disk, keyer), diskDigest(g.disk, keyer));
    assert.equal(rr.guest!.runState, 'running');
  }
});

test('a guest migrates over mutual TLS with the deployment CA', async () => {
  const ca = await createCa();
  const a = await issueHostCertificate(ca, 'host-a');
  const b = await issueHostCertificate(ca, 'host-b');
  const g = guest(2);
  const { r, rr } = await overSockets(() => new SmartStop(), g, 1,
    { tls: { ca: ca.cert, cert: b.cert, key: b.key, requestCert: true, rejectUnauthorized: true } },
    { tls: { ca: ca.cert, cert: a.cert, key: a.key, servername: 'host-b', checkServerIdentity: () => undefined } });
  assert.equal(r.ok, true, r.error?.message);
  assert.equal(rr.ok, true);
});

// How close real and virtual time come (bytes, time, iterations) is a figure, not an assertion: a loaded
// machine adds scheduling delay that moves iteration boundaries. bench/migration/real-vs-virtual.ts prints it.
test('real time over sockets and virtual time over an emulated link run the same engine: every rule delivers every page, bit-identical', async () => {
  const keyer = await createContentKeyer();
  for (const rule of [() => new XenStop(), () => new SmartStop(), () => new TimeBound({ deadlineMs: 3000 })]) {
    const v = await runVirtualMigration({ guest: guest(), rule: rule() }, { link: { bandwidthBps: BW, rttMs: 0 }, batchBytes: 64 * 1024 });
    const g = guest();
    const { r, rr } = await overSockets(rule, g, rule().kind === 'time-bound' ? 2 : 1);
    const name = rule().name;
    assert.ok(v.ok && r.ok && rr.ok, name);
    assert.equal(r.rule, v.rule);
    // Every page goes out at least once, whatever the timing.
    assert.ok(r.sender.memoryPagesSent >= 2048 && v.sender.memoryPagesSent >= 2048, `${name}: ${r.sender.memoryPagesSent} / ${v.sender.memoryPagesSent} pages`);
    assert.ok(r.iterations >= 1 && v.iterations >= 1);
    assert.equal(memoryDigest(rr.guest!.memory, keyer), memoryDigest(g.memory, keyer), name);
    assert.equal(diskDigest(rr.guest!.disk, keyer), diskDigest(g.disk, keyer), name);
  }
});

/**
 * A guest whose run-time calls (advance, pause, resume, throttle) are recorded, so a twin can be put through
 * exactly the same calls: the comparison then holds whatever the machine's load did to their timing. No disk
 * workload: a gated disk write's fate depends on acknowledgements, not on these calls.
 */
function recordedGuest(seed: number): { guest: ModelGuest; replayOn(twin: ModelGuest): void } {
  const g = new ModelGuest({ name: 'g', pageCount: 2048, blockCount: 128, representation: 'bytes', memoryWorkload: WL, seed });
  const calls: Array<[('advance' | 'pause' | 'resume' | 'setThrottle'), number]> = [];
  for (const m of ['advance', 'pause', 'resume', 'setThrottle'] as const) {
    const original = g[m].bind(g);
    g[m] = (x: number): void => { calls.push([m, x]); original(x); };
  }
  return { guest: g, replayOn: (twin) => { for (const [m, x] of calls) twin[m](x); } };
}

test('the destination killed mid-migration: the sender aborts and the source runs on untouched', async () => {
  const keyer = await createContentKeyer();
  const recorded = recordedGuest(5);
  const g = recorded.guest;
  const twin = new ModelGuest({ name: 'g', pageCount: 2048, blockCount: 128, representation: 'bytes', memoryWorkload: WL, seed: 5 });
  const p = await pair(1);
  const clock = clockFromNow();
  let killed = false;
  const r = await sendMigration({
    guest: g, rule: new SmartStop(), channels: p.out, clock, paceBps: BW, timeoutMs: 20_000,
    progressEveryMs: 50,
    onProgress: (e) => { if (!killed && e.phase === 'memory') { killed = true; for (const s of p.inn) s.destroy(); } },
  });
  await p.close();
  assert.equal(killed, true);
  assert.equal(r.ok, false);
  assert.equal(r.error?.code, 'VNET_ERR_MIGRATION_ABORTED');
  assert.match(r.error?.message ?? '', /\((peer|link)\)/);
  assert.equal(g.runState, 'running');
  assert.equal(g.throttle, 1);
  // What the migration did to the source is only what its own calls did: the twin, put through the same calls, matches.
  recorded.replayOn(twin);
  assert.equal(memoryDigest(g.memory, keyer), memoryDigest(twin.memory, keyer));
  assert.equal(diskDigest(g.disk, keyer), diskDigest(twin.disk, keyer));
  const later = clock.now() + 5_000;
  g.advance(later);
  twin.advance(later);
  assert.equal(memoryDigest(g.memory, keyer), memoryDigest(twin.memory, keyer), 'and it runs on as the twin does');
});

test('the source cancelled by an AbortSignal: the receiver reports the abort and keeps nothing', async () => {
  const g = guest(7);
  const p = await pair(1);
  const clock = clockFromNow();
  const ac = new AbortController();
  const rp = receiveMigration({ channels: p.inn, clock, timeoutMs: 20_000 });
  const r = await sendMigration({ guest: g, rule: new SmartStop(), channels: p.out, clock, paceBps: BW, signal: ac.signal, progressEveryMs: 50, onProgress: (e) => { if (e.phase === 'memory') ac.abort(); } });
  const rr = await rp;
  await p.close();
  assert.equal(r.ok, false);
  assert.match(r.error?.message ?? '', /\(cancelled\)/);
  assert.equal(g.runState, 'running');
  assert.equal(rr.ok, false);
  assert.equal(rr.guest, undefined);
  assert.equal(rr.error?.code, 'VNET_ERR_MIGRATION_ABORTED');
});

test('a live checkpoint over a socket: the store keeps the image paused and the source runs on', async () => {
  const keyer = await createContentKeyer();
  const g = guest(8);
  const p = await pair(1);
  const clock = clockFromNow();
  try {
    const rp = receiveMigration({ channels: p.inn, clock, timeoutMs: 20_000 });
    const r = await sendMigration({ guest: g, rule: new TimeBound({ deadlineMs: 4000 }), channels: p.out, clock, paceBps: BW, keep: true, timeoutMs: 20_000 });
    const rr = await rp;
    assert.ok(r.ok && rr.ok, r.error?.message ?? rr.error?.message);
    assert.equal(rr.guest?.runState, 'paused');
    assert.equal(g.runState, 'running');
    assert.equal(memoryDigest(rr.guest!.memory, keyer), r.sender.memDigest);
  } finally {
    await p.close();
  }
});

// ---- synchronous disk replication over real connections ----------------------

/** Channels through a userspace delay relay (`oneWayMs` each way) on loopback. */
async function relayed(oneWayMs: number): Promise<{ out: Duplex[]; inn: Duplex[]; close: () => Promise<void> }> {
  const l = await listenMigration();
  const relay = await startDelayRelay({ logger: silentLogger() }, { listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: l.port }, delayMs: oneWayMs });
  const acc = l.accept(1);
  const out = await connectMigration({ host: '127.0.0.1', port: relay.port });
  const inn = await acc;
  return { out, inn, close: async () => { for (const x of [...out, ...inn]) x.destroy(); await relay.close(); await l.close(); } };
}

test('sockets: a synchronous write completes only after the destination has the block, a round trip later', async () => {
  const clock = clockFromNow();
  const content = new Uint8Array(4096).fill(0xab);
  const g = new OneWriteGuest({ name: 'one', pageCount: 1024, blockCount: 64, representation: 'bytes', seed: 4 }, 200, 5, content);
  let appliedAt: number | undefined;
  const factory = (geo: GuestGeometry): Guest => {
    const dest = createEmptyGuest(geo);
    const d = dest.disk!;
    const write = d.writeBlock.bind(d);
    d.writeBlock = (i, c) => { write(i, c); if (i === 5 && c instanceof Uint8Array && c[0] === 0xab) appliedAt ??= clock.now(); };
    return dest;
  };
  const p = await relayed(10);
  try {
    const rp = receiveMigration({ channels: p.inn, clock, factory, timeoutMs: 20_000 });
    const r = await sendMigration({ guest: g, rule: new XenStop(), channels: p.out, clock, paceBps: BW, timeoutMs: 20_000 });
    const rr = await rp;
    assert.equal(r.ok, true, r.error?.message);
    assert.equal(rr.ok, true);
    assert.ok(g.issuedAt !== undefined && appliedAt !== undefined, 'written and replicated');
    const done = g.completions[0];
    assert.ok(done !== undefined, 'completed by a disk-ack');
    assert.ok(appliedAt >= g.issuedAt, 'the destination applied it after the guest issued it');
    assert.ok(done >= appliedAt, `completed at ${done}, the destination had it at ${appliedAt}`);
    assert.ok(done - g.issuedAt >= 20, `latency ${done - g.issuedAt} ms >= the 20 ms round trip`);
    assert.equal(r.sender.diskSync?.acked, 1);
  } finally {
    await p.close();
  }
});

const HEAVY: ModelGuestInit = {
  name: 'heavy', pageCount: 1024, blockCount: 256, representation: 'bytes', seed: 21, diskQueueDepth: 4,
  memoryWorkload: { dirtyRate: 200, wssShare: 0.3, hotShare: 0.05, locality: 0.8, zeroShare: 0.2, dupShare: 0.1, bytesPerWrite: 200, rewriteShare: 0.2 },
  diskWorkload: { writeRate: 400, wssShare: 0.5, zeroShare: 0.3, ioCoupling: 0.5 },
};

function writesPerSec(r: MigrationResult): number {
  const ds = r.sender.diskSync;
  return ((ds?.writes ?? 0) * 1000) / ((r.sender.pausedAt ?? 0) - (ds?.syncStartedAt ?? 0));
}

// Bounds that load cannot break (it only slows writes and lengthens latency); how close real and virtual
// time come on rate and latency is printed by bench/migration/real-vs-virtual.ts.
test('real time through a 20 ms round trip and virtual time at 20 ms RTT both keep synchronous writes within the queue-depth bound and the round-trip floor', async () => {
  const v = await runVirtualMigration({ guest: new ModelGuest(HEAVY), rule: new SmartStop() }, { link: { bandwidthBps: BW, rttMs: 20 }, batchBytes: 64 * 1024 });
  const clock = clockFromNow();
  const p = await relayed(10);
  let r: MigrationResult;
  try {
    const rp = receiveMigration({ channels: p.inn, clock, timeoutMs: 20_000 });
    r = await sendMigration({ guest: new ModelGuest(HEAVY), rule: new SmartStop(), channels: p.out, clock, paceBps: BW, timeoutMs: 20_000 });
    assert.equal((await rp).ok, true);
  } finally {
    await p.close();
  }
  assert.ok(v.ok && r.ok, r.error?.message);
  const vl = v.sender.diskSync!.latency;
  const rl = r.sender.diskSync!.latency;
  // 4 outstanding writes per >= 20 ms: at most 200 of the 400 writes/s
  assert.ok(writesPerSec(v) <= 200 && writesPerSec(r) <= 200 * 1.05, `virtual ${writesPerSec(v)}, real ${writesPerSec(r)} writes/s`);
  assert.ok(writesPerSec(r) > 0 && writesPerSec(v) > 0, 'writes were replicated synchronously');
  assert.ok(rl.meanMs >= 20 && vl.meanMs >= 20, `latency: real ${rl.meanMs}, virtual ${vl.meanMs} ms`);
});

test('sockets: a destination that reads but never acknowledges stalls the writes; the ack timeout aborts, the source keeps every write', async () => {
  const g = new ModelGuest(HEAVY);
  const p = await pair(1);
  const clock = clockFromNow();
  for (const s of p.inn) s.resume(); // read and discard: no replies at all
  try {
    const r = await sendMigration({ guest: g, rule: new SmartStop(), channels: p.out, clock, paceBps: BW / 4, diskAckTimeoutMs: 400, timeoutMs: 20_000 });
    assert.equal(r.ok, false);
    assert.match(r.error?.message ?? '', /\(timeout\).*disk acknowledgement/);
    assert.equal(g.runState, 'running');
    assert.equal(g.diskStalled, false);
    const ds = r.sender.diskSync!;
    assert.equal(ds.acked, 0);
    assert.equal(ds.completedLocally, ds.writes);
    assert.ok(ds.writes >= 4 && ds.refusals > 0);
    assertSameAsReplay(g, HEAVY);
  } finally {
    await p.close();
  }
});

test('sockets: the destination killed during synchronous replication — pending writes complete locally, the source disk is whole', async () => {
  const g = new ModelGuest(HEAVY);
  const p = await relayed(10);
  const clock = clockFromNow();
  let killed = false;
  try {
    const rp = receiveMigration({ channels: p.inn, clock, timeoutMs: 20_000 });
    const r = await sendMigration({
      guest: g, rule: new SmartStop(), channels: p.out, clock, paceBps: BW, timeoutMs: 20_000, progressEveryMs: 20,
      onProgress: (e) => { if (!killed && e.phase === 'memory' && e.elapsedMs > 150) { killed = true; for (const x of p.inn) x.destroy(); } },
    });
    await rp;
    assert.equal(killed, true);
    assert.equal(r.ok, false);
    assert.match(r.error?.message ?? '', /\((peer|link)\)/);
    const ds = r.sender.diskSync!;
    assert.ok(ds.syncStartedAt !== undefined);
    assert.equal(ds.acked + ds.completedLocally, ds.writes, 'every write completed');
    assert.equal(g.runState, 'running');
    assert.equal(g.diskStalled, false);
    assertSameAsReplay(g, HEAVY);
  } finally {
    await p.close();
  }
});

test('the destination killed at 20 points of the transfer: always a typed abort through the promises, never an uncaught error', async () => {
  const small = (seed: number): ModelGuest => new ModelGuest({ name: 'k', pageCount: 256, blockCount: 16, representation: 'bytes', memoryWorkload: WL, diskWorkload: { writeRate: 30, wssShare: 0.2, zeroShare: 0.3 }, seed });
  // Plain encoding sends every page whole at least once: the stream is longer than the RAM, so every point below is inside it.
  const ram = 256 * 4096;
  for (let k = 0; k < 20; k++) {
    const channels = k % 2 === 0 ? 1 : 2;
    // How the destination dies: a close (FIN), a reset (RST), or a close while the source is being cancelled too.
    const how = (['close', 'reset', 'close-and-cancel', 'reset-and-cancel'] as const)[k % 4]!;
    const g = small(k + 1);
    const p = await pair(channels);
    const clock = clockFromNow();
    const ac = new AbortController();
    const killAt = Math.floor((k * ram) / 20);
    let seen = 0;
    let killed = false;
    const kill = (): void => {
      if (killed) return;
      killed = true;
      for (const s of p.inn) {
        if (how.startsWith('reset') && s instanceof Socket) s.resetAndDestroy();
        else s.destroy();
      }
      if (how.endsWith('cancel')) ac.abort();
    };
    for (const s of p.inn) s.on('data', (c: Buffer) => { seen += c.length; if (seen >= killAt) kill(); });
    try {
      const rp = receiveMigration({ channels: p.inn, clock, timeoutMs: 20_000 });
      const rule = channels === 2 ? new TimeBound({ deadlineMs: 4000, encoding: 'plain' }) : new XenStop();
      const r = await sendMigration({ guest: g, rule, channels: p.out, clock, signal: ac.signal, timeoutMs: 20_000 });
      const rr = await rp;
      const at = `point ${k} (${how}, ${channels} channels)`;
      assert.equal(killed, true, at);
      assert.equal(r.ok, false, at);
      assert.ok(r.error instanceof MigrationAbortedError, `${at}: ${String(r.error)}`);
      assert.match(r.error.message, /\((peer|link|cancelled)\)/, at);
      assert.equal(rr.ok, false, at);
      assert.ok(rr.error instanceof MigrationAbortedError, `${at}: ${String(rr.error)}`);
      assert.equal(g.runState, 'running', at);
      assert.equal(g.throttle, 1, at);
    } finally {
      await p.close();
    }
  }
});
