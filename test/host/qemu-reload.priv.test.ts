/**
 * A QEMU VM's port added and removed by configuration reloads (root; QEMU
 * under TCG, the guest of scripts/guest-build.sh): a daemon started without
 * the port boots the guest when a reload adds it — the same code path as at
 * start (host/qemu-guests.ts) — and the guest answers a ping from a VM in a
 * namespace on the daemon's TAP port; the reload that removes it stops that
 * QEMU (its process gone) and removes the port. Both reloads say so in
 * their outcome.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/common/logger.ts';
import { parseDaemonConfig } from '../../src/dataplane/daemon-config.ts';
import { startDaemonFromConfig } from '../../src/host/daemon-runner.ts';
import { QemuVm } from '../../src/host/qemu-vm.ts';
import { requireTools, run, useNetns, waitFor } from '../helpers/netns.ts';

requireTools(['ip', 'ping', 'qemu-system-x86_64']);

test('a reload that adds a qemu: stream port boots its guest (it answers a ping); the reload that removes it stops its QEMU and removes the port', { timeout: 600_000 }, async (t) => {
  const h = await useNetns(t);
  const ns = await h.namespace();
  const tap = h.linkName();
  h.trackHostLink(tap);
  const dir = mkdtempSync(join(tmpdir(), 'vnet-qreload-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const base = {
    host: 'h1', role: 'hub', listen: { host: '127.0.0.1', port: 0 },
    qemu: { dir, bootTimeoutMs: 300_000 },
    ports: [{ name: tap, type: 'tap', mac: '02:00:00:98:00:01', ip: '10.98.0.1/24', netns: ns }],
  };
  const running = await startDaemonFromConfig({ logger: silentLogger() }, parseDaemonConfig(base));
  t.after(() => running.close());
  const guest = { name: 'qv1', type: 'stream', mac: '02:00:00:98:00:02', ip: '10.98.0.2/24', qemu: { memoryMiB: 128 } };

  const added = await running.reload(parseDaemonConfig({ ...base, ports: [...base.ports, guest] }), 'h1.yaml');
  assert.ok(added.applied, JSON.stringify(added));
  assert.deepEqual(added.qemu.booting, ['qv1']);
  const vm = await waitFor(() => running.migrations.vm('qv1'), 'the guest booted and registered with the migration agent', 300_000);
  assert.ok(vm instanceof QemuVm);
  const pid = vm.process.pid;
  assert.ok(pid !== undefined && existsSync(`/proc/${pid}`), 'QEMU runs');
  // One ping at a time, each bounded; the guest's ARP and first answer under TCG can take a few.
  await waitFor(async () => (await run(['ip', 'netns', 'exec', ns, 'ping', '-c', '1', '-W', '2', '10.98.0.2'], { allowFailure: true })).code === 0, 'the guest answers a ping from the namespace', 120_000);

  const removed = await running.reload(parseDaemonConfig(base), 'h1.yaml');
  assert.ok(removed.applied && removed.plan.portsRemoved.includes('qv1'), JSON.stringify(removed));
  assert.deepEqual(removed.qemu.stopped, ['qv1']);
  assert.ok(vm.gone);
  assert.equal(existsSync(`/proc/${pid}`), false, 'the QEMU process is gone');
  assert.equal(running.daemon.port('qv1'), undefined, 'the port is removed');
  assert.equal(running.migrations.vm('qv1'), undefined, 'its VM is forgotten');
  assert.deepEqual(running.daemon.facts().ports.map((p) => p.name), [tap]);
});
