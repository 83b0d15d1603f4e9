/**
 * The migration agent end to end in one process, driven as the controller
 * drives it (`handle()`): three real daemons over the in-memory transport (a
 * hub with a peer VM, the source and the destination spokes with a
 * migration link between them), a migration agent on each spoke with a real
 * mutual-TLS migration channel on loopback, and a model-guest VM on the
 * source that the peer talks to.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { realClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { parseMac } from '../../src/common/mac.ts';
import type { MigrationCommand, MigrationReport, MigrationReportState, StopRuleName } from '../../src/control/migration-control.ts';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { MemoryPort } from '../../src/dataplane/memory-port.ts';
import { MemoryNetwork, MemoryTransport } from '../../src/dataplane/memory-transport.ts';
import { MigrationAgent, type MigrationAgentComponents } from '../../src/host/migration-agent.ts';
import { MigrationChannelListener } from '../../src/host/migration-channel.ts';
import { createModelGuest, ModelGuestVm, type VmRuntime } from '../../src/host/vm-runtime.ts';
import type { Guest } from '../../src/migration/guest.ts';
import { testPki } from '../controller/fixtures/test-pki.ts';
import { seqOf, testFrame } from '../helpers/ethernet.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = silentLogger();
const clock = realClock;
const MOVER = parseMac('02:00:00:00:00:21');
const PEER = parseMac('02:00:00:00:00:22');
const VM = { mac: '02:00:00:00:00:21', port: 'vm1', ip: '10.0.0.21' };

interface Side {
  daemon: Daemon;
  agent: MigrationAgent;
  reports: MigrationReport[];
}

interface World {
  hub: Daemon;
  src: Side;
  dst: Side;
  atSrc: MemoryPort;
  gotSrc: number[];
  peerPort: MemoryPort;
  guest: Guest;
  vm: ModelGuestVm;
}

type AgentHooks = Pick<MigrationAgentComponents, 'makePort' | 'makeRuntime'>;

async function side(net: MemoryNetwork, host: string, hub: Daemon, hooks: AgentHooks = {}): Promise<Side> {
  const pki = testPki();
  const creds = { ...pki.host(host), ca: pki.ca };
  const daemon = await Daemon.start(
    { logger, transport: new MemoryTransport({ logger }, { localHost: host, network: net, keepaliveMs: 100, deadMs: 1500 }) },
    { hostId: host, role: 'spoke', listen: { host: '127.0.0.1', port: 0 }, hub: { ...hub.listenAddress!, id: 'hub' } },
  );
  const channel = await MigrationChannelListener.listen({ logger, clock }, { ...creds, host: '127.0.0.1', port: 0 });
  const agent = new MigrationAgent({ daemon, logger, clock, channel, credentials: creds, ...hooks }, { progressEveryMs: 20 });
  const reports: MigrationReport[] = [];
  agent.onReport((r) => reports.push(r));
  return { daemon, agent, reports };
}

interface WorldOptions {
  /** The source's port for the VM (default a memory port). */
  srcPort?: MemoryPort;
  /** The source's runtime for the VM (default the model-guest VM). */
  runtime?: (vm: ModelGuestVm) => VmRuntime;
  dstHooks?: AgentHooks;
}

async function world(t: { after(fn: () => Promise<void>): void }, opts: WorldOptions = {}): Promise<World> {
  const net = new MemoryNetwork();
  const hub = await Daemon.start({ logger, transport: new MemoryTransport({ logger }, { localHost: 'hub', network: net, keepaliveMs: 100, deadMs: 1500 }) }, { hostId: 'hub', role: 'hub', listen: { host: '127.0.0.1', port: 0 } });
  const src = await side(net, 'hA', hub);
  const dst = await side(net, 'hB', hub, opts.dstHooks);
  t.after(async () => {
    await Promise.all([src.agent.close(), dst.agent.close()]);
    await Promise.all([src.daemon.close(), dst.daemon.close(), hub.close()]);
  });
  const atSrc = opts.srcPort ?? new MemoryPort({ name: VM.port, mac: MOVER });
  const gotSrc: number[] = [];
  atSrc.onDeliver((f) => gotSrc.push(seqOf(Buffer.from(f))));
  const peerPort = new MemoryPort({ name: 'vm2', mac: PEER });
  peerPort.onDeliver(() => undefined);
  src.daemon.addPort(atSrc, VM.ip);
  hub.addPort(peerPort, '10.0.0.22');
  const guest = createModelGuest('vm1', { profile: 'idle', memoryMiB: 4, diskMiB: 1 }, clock.now());
  const vm = new ModelGuestVm({ clock }, { name: 'vm1', mac: MOVER, port: VM.port, guest });
  src.agent.addVm(opts.runtime?.(vm) ?? vm);
  // The coordinator's first step: a link between source and destination.
  src.daemon.applyFastPathLinks(1, [{ peer: 'hB', address: dst.daemon.listenAddress!, reason: 'migration' }]);
  dst.daemon.applyFastPathLinks(1, [{ peer: 'hA', address: src.daemon.listenAddress!, reason: 'migration' }]);
  await waitFor(() => src.daemon.link('hB') && dst.daemon.link('hA') && src.daemon.link('hub') && dst.daemon.link('hub'), 'backbone and migration link up');
  // The peer and the VM talk: the hub learns the VM behind the source.
  atSrc.transmit(testFrame(PEER, MOVER, 0));
  peerPort.transmit(testFrame(MOVER, PEER, 1));
  await waitFor(() => gotSrc.length === 1, 'the peer heard at the source');
  return { hub, src, dst, atSrc, gotSrc, peerPort, guest, vm };
}

const states = (s: Side, id: string): MigrationReportState[] => s.reports.filter((r) => r.id === id).map((r) => r.state);
const last = (s: Side, id: string): MigrationReport | undefined => s.reports.filter((r) => r.id === id).at(-1);
const reached = (s: Side, id: string, state: MigrationReportState): Promise<MigrationReport> =>
  waitFor(() => s.reports.find((r) => r.id === id && r.state === state), `${s.daemon.hostId} reports ${id} ${state}`);

function prepare(id: string): MigrationCommand {
  return { type: 'migrate-prepare', id, vm: VM, from: 'hA' };
}

function start(id: string, address: { host: string; port: number }, rule: StopRuleName = 'smart-stop'): MigrationCommand {
  return { type: 'migrate-start', id, vm: VM, to: 'hB', address, rule, ...(rule === 'time-bound' ? { deadlineMs: 10_000 } : {}) };
}

const verdict = (type: 'migrate-commit' | 'migrate-abort' | 'migrate-query', id: string): MigrationCommand => ({ type, id });

/** Prepare on the destination, start on the source; resolves with the destination's `prepared` report. */
async function begin(w: World, id: string, rule?: StopRuleName): Promise<void> {
  w.dst.agent.handle(prepare(id));
  const prepared = await reached(w.dst, id, 'prepared');
  assert.ok(prepared.address !== undefined);
  assert.ok(w.dst.daemon.holdStats(VM.port) !== undefined, 'the destination port exists, held');
  w.src.agent.handle(start(id, prepared.address, rule));
}

function samePages(a: Guest, b: Guest): boolean {
  if (a.memory.pageCount !== b.memory.pageCount) return false;
  for (let i = 0; i < a.memory.pageCount; i++) if (Buffer.compare(a.memory.readPage(i) as Uint8Array, b.memory.readPage(i) as Uint8Array) !== 0) return false;
  for (let i = 0; i < (a.disk?.blockCount ?? 0); i++) if (Buffer.compare(a.disk!.readBlock(i) as Uint8Array, b.disk!.readBlock(i) as Uint8Array) !== 0) return false;
  return Buffer.compare(a.readDeviceState(), b.readDeviceState()) === 0;
}

for (const rule of ['smart-stop', 'time-bound'] as const) {
  test(`prepare → start → paused, ready → commit (${rule}): the guest arrives verified, held frames reach the destination, none lost, the VM announced`, async (t) => {
    const w = await world(t);
    await begin(w, 'm1', rule);
    await reached(w.src, 'm1', 'paused');
    // The VM is paused on the source: frames to it are held there.
    for (let s = 2; s < 12; s++) w.peerPort.transmit(testFrame(MOVER, PEER, s));
    await waitFor(() => w.src.daemon.holdStats(VM.port)?.held === 10, 'ten frames held at the source');
    assert.deepEqual(w.gotSrc, [1], 'the paused VM got nothing');
    await reached(w.dst, 'm1', 'ready');
    assert.equal(w.guest.runState, 'paused');
    const arrived = w.dst.agent.vm(VM.port);
    assert.equal(arrived, undefined, 'ready is not running: no VM runtime yet on the destination');
    assert.ok(states(w.src, 'm1').includes('progress'), 'progress reported');
    assert.equal(states(w.src, 'm1').filter((s) => s === 'paused').length, 1);

    // The controller recorded the commit point and re-pointed the rules (the source's relay included).
    w.hub.applyRules(1, [{ id: 'vm1', priority: 100, src: 'any', dst: VM.mac, action: { link: 'hB' } }]);
    w.src.daemon.applyRules(1, [{ id: 'vm1', priority: 100, src: 'any', dst: VM.mac, action: { link: 'hB' } }]);
    const gotDst: number[] = [];
    const ownAnnouncements: Buffer[] = [];
    (w.dst.daemon.port(VM.port) as MemoryPort).onDeliver((f) => {
      const frame = Buffer.from(f);
      if (frame.readUInt16BE(12) === 0x88b5) gotDst.push(seqOf(frame));
      else ownAnnouncements.push(frame);
    });
    const peerHeard: Buffer[] = [];
    w.peerPort.onDeliver((f) => peerHeard.push(Buffer.from(f)));

    w.dst.agent.handle(verdict('migrate-commit', 'm1'));
    const resumed = await reached(w.dst, 'm1', 'resumed');
    assert.equal(resumed.stats?.announced, 2, 'RARP and gratuitous ARP');
    w.src.agent.handle(verdict('migrate-commit', 'm1'));
    const released = await reached(w.src, 'm1', 'released');
    const st = released.stats!;
    // The destination's broadcast announcements may reach the held source port before its commit: held there too.
    assert.ok(st.held >= 10 && st.held <= 12, `held ${st.held}`);
    assert.deepEqual([st.flushed, st.lost, st.announced], [st.held, 0, 0], 'everything held was flushed, nothing lost');

    await waitFor(() => gotDst.length === 10, 'the held frames at the destination VM');
    assert.deepEqual(gotDst, [2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 'in order, exactly once');
    await waitFor(() => peerHeard.filter((f) => f.readUIntBE(6, 6) === MOVER).length >= 2, 'the announcement reaches the peer');
    const vmThere = w.dst.agent.vm(VM.port);
    assert.ok(vmThere !== undefined);
    assert.equal(vmThere.guest?.runState, 'running');
    assert.ok(samePages(w.guest, vmThere.guest!), 'memory, disk and device state as the source paused them');
    assert.equal(w.guest.runState, 'paused', 'the source copy never runs again');
    await waitFor(() => w.src.daemon.port(VM.port) === undefined, 'the source port removed');
    assert.equal(w.src.agent.vm(VM.port), undefined);

    // New traffic goes to the destination; a repeated commit re-reports without a second flush.
    w.peerPort.transmit(testFrame(MOVER, PEER, 12));
    await waitFor(() => gotDst.length === 11, 'traffic flows to the resumed VM');
    const before = [w.src.reports.length, w.dst.reports.length];
    w.src.agent.handle(verdict('migrate-commit', 'm1'));
    w.dst.agent.handle(verdict('migrate-commit', 'm1'));
    assert.equal(w.src.reports.length, before[0]! + 1);
    assert.equal(w.dst.reports.length, before[1]! + 1);
    assert.equal(last(w.src, 'm1')?.state, 'released');
    assert.deepEqual(last(w.src, 'm1')?.stats?.flushed, st.flushed);
    assert.deepEqual(last(w.dst, 'm1'), { ...resumed });
    // Abort after commit is refused; query answers; an unknown id is unknown.
    w.dst.agent.handle(verdict('migrate-abort', 'm1'));
    assert.equal(last(w.dst, 'm1')?.state, 'resumed');
    assert.equal(last(w.dst, 'm1')?.error?.code, 'VNET_ERR_HOST_MIGRATION_STATE');
    w.src.agent.handle(verdict('migrate-query', 'm1'));
    assert.equal(last(w.src, 'm1')?.state, 'released');
    w.dst.agent.handle(verdict('migrate-query', 'nope'));
    assert.deepEqual(last(w.dst, 'nope'), { type: 'migration', id: 'nope', state: 'unknown' });
  });
}

test('commit with a port that hands its attachment over (a TAP device shared by two daemons): hand-off while still held, then the flush, the runtime let go, the port removed, and only then released; the destination releases its steering and takes the VM over', async (t) => {
  const events: string[] = [];
  let srcDaemon: Daemon | undefined;
  class HandingPort extends MemoryPort {
    readonly multiQueue = true;
    async handOff(o: { steer?: boolean }): Promise<{ drained: number; steered: boolean }> {
      events.push(`src handOff steer=${o.steer} held=${srcDaemon?.holdStats(VM.port)?.queued ?? 'none'}`);
      await this.close();
      return { drained: 0, steered: true };
    }
  }
  class AttachedPort extends MemoryPort {
    releaseSteering(): void {
      events.push('dst releaseSteering');
    }
  }
  const w = await world(t, {
    srcPort: new HandingPort({ name: VM.port, mac: MOVER }),
    runtime: (vm) => ({
      name: vm.name, mac: vm.mac, port: vm.port, guest: vm.guest,
      pause: () => vm.pause(),
      resume: () => vm.resume(),
      relinquish: async () => { events.push(`src relinquish port=${srcDaemon?.port(VM.port) !== undefined}`); },
    }),
    dstHooks: {
      makePort: (vm) => { events.push('dst makePort'); return new AttachedPort({ name: vm.port, mac: parseMac(vm.mac) }); },
      makeRuntime: async (vm, guest) => {
        events.push('dst makeRuntime');
        const runtime = new ModelGuestVm({ clock }, { name: vm.port, mac: parseMac(vm.mac), port: vm.port, guest });
        return { name: runtime.name, mac: runtime.mac, port: runtime.port, guest, pause: () => runtime.pause(), resume: async () => { events.push('dst resume'); await runtime.resume(); } };
      },
    },
  });
  srcDaemon = w.src.daemon;
  await begin(w, 'm7');
  await reached(w.src, 'm7', 'paused');
  for (let s = 2; s < 5; s++) w.peerPort.transmit(testFrame(MOVER, PEER, s));
  await waitFor(() => w.src.daemon.holdStats(VM.port)?.held === 3, 'three frames held at the source');
  await reached(w.dst, 'm7', 'ready');
  w.src.agent.handle(verdict('migrate-commit', 'm7'));
  w.src.agent.handle(verdict('migrate-query', 'm7'));
  assert.ok(!states(w.src, 'm7').includes('released'), 'no released report while the hand-over is under way');
  const released = await reached(w.src, 'm7', 'released');
  assert.deepEqual(events, ['dst makePort', 'src handOff steer=true held=3', 'src relinquish port=true']);
  assert.equal(w.src.daemon.port(VM.port), undefined, 'the port removed before released');
  assert.deepEqual([released.stats?.held, released.stats?.flushed, released.stats?.lost], [3, 3, 0]);
  w.dst.agent.handle(verdict('migrate-commit', 'm7'));
  await reached(w.dst, 'm7', 'resumed');
  assert.deepEqual(events.slice(3), ['dst releaseSteering', 'dst makeRuntime', 'dst resume']);
  assert.equal(w.dst.agent.vm(VM.port)?.guest?.runState, 'running');
});

test('the source catches its VM\'s guest up (catchUp, in slices) before the engine starts, once, with the guest still running', async (t) => {
  const calls: string[] = [];
  const w = await world(t, {
    runtime: (vm) => ({
      name: vm.name, mac: vm.mac, port: vm.port, guest: vm.guest,
      pause: () => vm.pause(),
      resume: () => vm.resume(),
      catchUp: async (signal: AbortSignal) => {
        calls.push(`catch-up (guest ${vm.guest.runState}, ${w.src.reports.filter((r) => r.state === 'progress').length} progress reports)`);
        await vm.catchUp(signal);
      },
    }),
  });
  await begin(w, 'm1');
  await reached(w.src, 'm1', 'paused');
  assert.deepEqual(calls, ['catch-up (guest running, 0 progress reports)']);
});

test('abort after the pause: the guest runs on the source with the frames held for it, the destination keeps nothing', async (t) => {
  const w = await world(t);
  await begin(w, 'm2');
  await reached(w.src, 'm2', 'paused');
  for (let s = 2; s < 7; s++) w.peerPort.transmit(testFrame(MOVER, PEER, s));
  await waitFor(() => w.src.daemon.holdStats(VM.port)?.held === 5, 'five frames held');
  await reached(w.dst, 'm2', 'ready');
  // A commit on the source before the verdict is fine; on the destination before ready it is not — here: abort both.
  w.dst.agent.handle(verdict('migrate-abort', 'm2'));
  await reached(w.dst, 'm2', 'aborted');
  await waitFor(() => w.dst.daemon.port(VM.port) === undefined, 'the destination port removed');
  assert.equal(w.dst.agent.vm(VM.port), undefined);
  w.src.agent.handle(verdict('migrate-abort', 'm2'));
  const aborted = await reached(w.src, 'm2', 'aborted');
  assert.equal(aborted.stats?.flushed, 5);
  assert.equal(w.guest.runState, 'running');
  assert.deepEqual(w.gotSrc, [1, 2, 3, 4, 5, 6], 'the held frames delivered to the VM here, in order');
  w.peerPort.transmit(testFrame(MOVER, PEER, 7));
  await waitFor(() => w.gotSrc.length === 7, 'frames flow to the VM again');
  // Idempotent; a commit after the abort is refused.
  w.src.agent.handle(verdict('migrate-abort', 'm2'));
  assert.equal(last(w.src, 'm2')?.state, 'aborted');
  w.src.agent.handle(verdict('migrate-commit', 'm2'));
  assert.equal(last(w.src, 'm2')?.error?.code, 'VNET_ERR_HOST_MIGRATION_STATE');
  assert.equal(w.guest.runState, 'running');
});

test('a commit before ready is refused on the destination and changes nothing', async (t) => {
  const w = await world(t);
  w.dst.agent.handle(prepare('m3'));
  await reached(w.dst, 'm3', 'prepared');
  w.dst.agent.handle(verdict('migrate-commit', 'm3'));
  assert.equal(last(w.dst, 'm3')?.state, 'prepared');
  assert.equal(last(w.dst, 'm3')?.error?.code, 'VNET_ERR_HOST_MIGRATION_STATE');
  w.dst.agent.handle(prepare('m3'));
  assert.equal(last(w.dst, 'm3')?.state, 'prepared', 'a repeated prepare re-reports');
  w.dst.agent.handle({ type: 'migrate-prepare', id: 'm3', vm: VM, from: 'hC' });
  assert.equal(last(w.dst, 'm3')?.error?.code, 'VNET_ERR_HOST_MIGRATION_CONFLICT');
  w.dst.agent.handle(verdict('migrate-abort', 'm3'));
  await reached(w.dst, 'm3', 'aborted');
});

test('the destination killed before the pause: the source reports failed and its guest runs on', async (t) => {
  const w = await world(t);
  let killed = false;
  w.src.agent.onReport((r) => {
    if (r.id === 'm4' && r.state === 'progress' && !killed) { killed = true; void w.dst.agent.close(); }
  });
  await begin(w, 'm4');
  const failed = await reached(w.src, 'm4', 'failed');
  assert.equal(failed.error?.code, 'VNET_ERR_MIGRATION_ABORTED');
  assert.ok(!states(w.src, 'm4').includes('paused'));
  assert.equal(w.guest.runState, 'running');
  w.peerPort.transmit(testFrame(MOVER, PEER, 2));
  await waitFor(() => w.gotSrc.length === 2, 'frames still reach the VM on the source');
  assert.equal(w.src.daemon.holdStats(VM.port)?.held, 0);
  // The controller aborts the source after the failure: nothing to undo.
  w.src.agent.handle(verdict('migrate-abort', 'm4'));
  assert.equal(last(w.src, 'm4')?.state, 'aborted');
  assert.equal(w.guest.runState, 'running');
});

test('the destination killed after the pause: the source reports stalled and stays paused until the abort', async (t) => {
  const w = await world(t);
  w.src.agent.onReport((r) => {
    if (r.id === 'm5' && r.state === 'paused') void w.dst.agent.close();
  });
  await begin(w, 'm5');
  const stalled = await reached(w.src, 'm5', 'stalled');
  assert.equal(stalled.error?.code, 'VNET_ERR_MIGRATION_ABORTED');
  assert.equal(w.guest.runState, 'paused', 'the engine gave up, the guest did not resume on its own');
  w.peerPort.transmit(testFrame(MOVER, PEER, 2));
  await waitFor(() => w.src.daemon.holdStats(VM.port)?.held === 1, 'frames to the VM still held');
  w.src.agent.handle(verdict('migrate-query', 'm5'));
  assert.equal(last(w.src, 'm5')?.state, 'stalled');
  assert.equal(w.guest.runState, 'paused');
  w.src.agent.handle(verdict('migrate-abort', 'm5'));
  await reached(w.src, 'm5', 'aborted');
  assert.equal(w.guest.runState, 'running');
  assert.deepEqual(w.gotSrc, [1, 2]);
});

test('the source killed mid-transfer: the destination reports failed and discards its copy and port', async (t) => {
  const w = await world(t);
  let killed = false;
  w.src.agent.onReport((r) => {
    if (r.id === 'm10' && r.state === 'progress' && !killed) { killed = true; void w.src.agent.close(); }
  });
  await begin(w, 'm10');
  const failed = await reached(w.dst, 'm10', 'failed');
  assert.equal(failed.error?.code, 'VNET_ERR_MIGRATION_ABORTED');
  await waitFor(() => w.dst.daemon.port(VM.port) === undefined, 'the held port removed');
  assert.equal(w.dst.agent.vm(VM.port), undefined);
  w.dst.agent.handle(verdict('migrate-commit', 'm10'));
  assert.equal(last(w.dst, 'm10')?.state, 'failed', 'nothing to commit');
  w.dst.agent.handle(verdict('migrate-abort', 'm10'));
  assert.equal(last(w.dst, 'm10')?.state, 'aborted');
});

test('without TLS credentials every migration command is answered failed with a clear code', async (t) => {
  const w = await world(t);
  const agent = new MigrationAgent({ daemon: w.src.daemon, logger, clock });
  const reports: MigrationReport[] = [];
  agent.onReport((r) => reports.push(r));
  agent.handle(prepare('m6'));
  agent.handle(start('m7', { host: '127.0.0.1', port: 1 }));
  assert.deepEqual(reports.map((r) => [r.id, r.state, r.error?.code]), [
    ['m6', 'failed', 'VNET_ERR_HOST_MIGRATION_UNAVAILABLE'],
    ['m7', 'failed', 'VNET_ERR_HOST_MIGRATION_UNAVAILABLE'],
  ]);
  agent.handle(verdict('migrate-query', 'm6'));
  assert.equal(reports.at(-1)?.state, 'failed');
  assert.equal(w.guest.runState, 'running');
  await agent.close();
});

test('a start for a VM this host does not run fails at once', async (t) => {
  const w = await world(t);
  w.src.agent.handle({ type: 'migrate-start', id: 'm8', vm: { mac: '02:00:00:00:00:99', port: 'vm9' }, to: 'hB', address: { host: '127.0.0.1', port: 1 }, rule: 'xen' });
  assert.equal(last(w.src, 'm8')?.error?.code, 'VNET_ERR_HOST_MIGRATION_UNKNOWN_VM');
  w.src.agent.handle({ type: 'migrate-start', id: 'm9', vm: { ...VM, mac: '02:00:00:00:00:98' }, to: 'hB', address: { host: '127.0.0.1', port: 1 }, rule: 'xen' });
  assert.equal(last(w.src, 'm9')?.error?.code, 'VNET_ERR_HOST_MIGRATION_UNKNOWN_VM');
});
