/**
 * QEMU VMs through the migration agents, driven as the controller drives
 * them (`handle()`), in one process (root for nothing but QEMU's speed; no
 * namespaces): two daemons over the in-memory transport (hA the hub, hB its
 * spoke), a migration agent on each with a real mutual-TLS channel on
 * loopback and a QemuHost in a temporary directory, and on hA a real guest
 * booted by QEMU on a stream port.
 *
 *   - commit: the destination's QEMU runs the guest (`cont` at the commit,
 *     not before: it is paused while `ready`), the source's QEMU quits
 *   - abort after the pause: the source's guest runs again, the
 *     destination's QEMU is gone and its port removed
 *   - a copy whose RAM differs from the source's (the fault hook
 *     VNET_FAULT_QEMU_RAM_DIGEST=destination flips a bit of the
 *     destination's digest): the destination reports `failed` with
 *     VNET_ERR_QEMU_MEMORY_MISMATCH instead of `ready`, discards its QEMU;
 *     the abort runs the source's guest again although its QEMU migration
 *     had completed (postmigrate)
 *
 * Exactly one copy runs, checked with QMP `query-status` on both.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { realClock } from '../../src/common/clock.ts';
import { silentLogger } from '../../src/common/logger.ts';
import { parseMac } from '../../src/common/mac.ts';
import type { MigrationReport, MigrationReportState } from '../../src/control/migration-control.ts';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { MemoryNetwork, MemoryTransport } from '../../src/dataplane/memory-transport.ts';
import { StreamPort } from '../../src/dataplane/stream-port.ts';
import { MigrationAgent } from '../../src/host/migration-agent.ts';
import { MigrationChannelListener } from '../../src/host/migration-channel.ts';
import { QemuHost } from '../../src/host/qemu-host.ts';
import { QEMU_RAM_FAULT_ENV } from '../../src/host/qemu-ram-verify.ts';
import type { QemuVm } from '../../src/host/qemu-vm.ts';
import { testPki } from '../controller/fixtures/test-pki.ts';
import { requireTools } from '../helpers/netns.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = silentLogger();
const clock = realClock;
const VM = { mac: '02:00:00:00:00:31', port: 'qvm1', ip: '10.0.0.31', portKind: 'stream' as const };

interface Side { daemon: Daemon; agent: MigrationAgent; qemu: QemuHost; reports: MigrationReport[] }

async function side(t: { after(fn: () => Promise<void> | void): void }, net: MemoryNetwork, host: string, hub: Daemon | undefined): Promise<Side> {
  const pki = testPki();
  const creds = { ...pki.host(host), ca: pki.ca };
  const daemon = await Daemon.start(
    { logger, transport: new MemoryTransport({ logger }, { localHost: host, network: net, keepaliveMs: 100, deadMs: 1500 }) },
    { hostId: host, role: hub === undefined ? 'hub' : 'spoke', listen: { host: '127.0.0.1', port: 0 }, ...(hub !== undefined ? { hub: { ...hub.listenAddress!, id: hub.hostId } } : {}) },
  );
  const dir = mkdtempSync(join(tmpdir(), `vnet-qa-${host}-`));
  const qemu = new QemuHost({ logger, clock }, { dir, bootTimeoutMs: 240_000 });
  const channel = await MigrationChannelListener.listen({ logger, clock }, { ...creds, host: '127.0.0.1', port: 0 });
  const agent = new MigrationAgent({ daemon, logger, clock, channel, credentials: creds, qemu }, { progressEveryMs: 50 });
  const reports: MigrationReport[] = [];
  agent.onReport((r) => reports.push(r));
  t.after(async () => {
    await agent.close();
    for (const vm of agent.vms) await vm.close?.();
    await daemon.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { daemon, agent, qemu, reports };
}

const reached = (s: Side, id: string, state: MigrationReportState): Promise<MigrationReport> =>
  waitFor(() => s.reports.find((r) => r.id === id && r.state === state), `${s.daemon.hostId} reports ${id} ${state}`, 120_000);

const running = async (vm: QemuVm): Promise<boolean> => (await vm.qmp.execute<{ running: boolean }>('query-status')).running;

/** Both hosts, the guest booted on hA, and the migration prepared on hB and started on hA. */
async function started(t: { after(fn: () => Promise<void> | void): void }, id: string): Promise<{ a: Side; b: Side; vm: QemuVm }> {
  requireTools(['qemu-system-x86_64']);
  const net = new MemoryNetwork();
  const a = await side(t, net, 'hA', undefined);
  const b = await side(t, net, 'hB', a.daemon);
  await waitFor(() => a.daemon.link('hB') && b.daemon.link('hA'), 'the link between the two hosts');
  const port = await StreamPort.listen({ name: VM.port, mac: parseMac(VM.mac), mtu: 1500, path: a.qemu.socketPath(VM.port), logger });
  a.daemon.addPort(port, VM.ip);
  const vm = await a.qemu.boot({ name: VM.port, mac: port.mac, port: VM.port, socketPath: port.path, memoryMiB: 128, ip: `${VM.ip}/24` });
  a.agent.addVm(vm);
  assert.ok(await running(vm));
  b.agent.handle({ type: 'migrate-prepare', id, vm: VM, from: 'hA' });
  const prepared = await reached(b, id, 'prepared');
  assert.ok(b.daemon.port(VM.port) instanceof StreamPort, 'the destination holds a stream port for it');
  a.agent.handle({ type: 'migrate-start', id, vm: VM, to: 'hB', address: prepared.address!, rule: 'qemu' });
  return { a, b, vm };
}

/** As `started`; resolves at hA's `paused` and hB's `ready` (its copy verified). */
async function toReady(t: { after(fn: () => Promise<void> | void): void }, id: string): Promise<{ a: Side; b: Side; vm: QemuVm }> {
  const s = await started(t, id);
  await reached(s.a, id, 'paused');
  await reached(s.b, id, 'ready');
  return s;
}

test('a QEMU VM committed: the destination\'s QEMU runs it only from the commit on, the source\'s quits', { timeout: 600_000 }, async (t) => {
  const { a, b, vm } = await toReady(t, 'qc1');
  assert.equal(await running(vm), false, 'the source is stopped at the switchover');
  const copy = b.agent.vm(VM.port);
  assert.equal(copy, undefined, 'the destination registers its copy only at the commit');
  a.agent.handle({ type: 'migrate-commit', id: 'qc1' });
  await reached(a, 'qc1', 'released');
  b.agent.handle({ type: 'migrate-commit', id: 'qc1' });
  await reached(b, 'qc1', 'resumed');
  const moved = b.agent.vm(VM.port);
  assert.ok(moved?.qemu !== undefined, 'a QEMU VM runtime on the destination');
  assert.equal(await running(moved.qemu), true, 'the destination runs the guest');
  // A QEMU VM's `released` follows the hand-over; its QEMU quits and then its port goes, after the report.
  await waitFor(() => vm.gone, 'the source QEMU gone');
  await waitFor(() => a.daemon.port(VM.port) === undefined, 'the source letting the port go after its QEMU quit');
  assert.equal(a.agent.vm(VM.port), undefined);
});

test('a QEMU VM migration aborted after the pause: the source runs the guest again, the destination\'s copy is discarded', { timeout: 600_000 }, async (t) => {
  const { a, b, vm } = await toReady(t, 'qa1');
  b.agent.handle({ type: 'migrate-abort', id: 'qa1' });
  await reached(b, 'qa1', 'aborted');
  a.agent.handle({ type: 'migrate-abort', id: 'qa1' });
  await reached(a, 'qa1', 'aborted');
  await waitFor(() => running(vm), 'the source guest running again', 30_000);
  assert.equal(b.agent.vm(VM.port), undefined);
  await waitFor(() => b.daemon.port(VM.port) === undefined, 'the destination dropped the copy\'s port');
  assert.equal(a.agent.vm(VM.port), vm, 'the VM is still the source\'s');
});

test('a QEMU VM whose copy differs from the source\'s RAM: the destination fails instead of ready, the abort runs the guest on the source again after its migration completed', { timeout: 600_000 }, async (t) => {
  process.env[QEMU_RAM_FAULT_ENV] = 'destination';
  t.after(() => { delete process.env[QEMU_RAM_FAULT_ENV]; });
  const { a, b, vm } = await started(t, 'qm1');
  const failed = await reached(b, 'qm1', 'failed');
  assert.equal(failed.error?.code, 'VNET_ERR_QEMU_MEMORY_MISMATCH', JSON.stringify(failed));
  assert.match(failed.error?.message ?? '', /differs from the source's .*the source keeps running the guest/);
  assert.equal(b.reports.some((r) => r.id === 'qm1' && r.state === 'ready'), false, 'never ready');
  await reached(a, 'qm1', 'paused');
  await waitFor(async () => (await vm.qmp.execute<{ status: string }>('query-status')).status === 'postmigrate', 'the source QEMU\'s migration completed (postmigrate)', 120_000);
  assert.equal(await running(vm), false);
  await waitFor(() => b.daemon.port(VM.port) === undefined, 'the destination dropped the copy\'s port');
  a.agent.handle({ type: 'migrate-abort', id: 'qm1', reason: 'the destination failed' });
  await reached(a, 'qm1', 'aborted');
  await waitFor(() => running(vm), 'the source guest running again', 30_000);
  assert.equal(a.agent.vm(VM.port), vm, 'the VM is still the source\'s');
  assert.equal(b.agent.vm(VM.port), undefined);
});
