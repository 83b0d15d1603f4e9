/**
 * A QEMU guest's copy refused end to end (root, QEMU, namespaces): the
 * overlay of test/helpers/qemu-migration-check.ts (a hub and three spokes as
 * `vnet daemon` processes, the controller in this process, VM A a Linux
 * guest under QEMU on c1, VM P a namespace on c3 pinging it every 10 ms),
 * the daemons started with the fault hook VNET_FAULT_QEMU_RAM_DIGEST=destination,
 * so a destination's digest of its loaded copy never equals the source's.
 *
 *   - the move of A to c2 ends aborted, the destination's failure naming
 *     VNET_ERR_QEMU_MEMORY_MISMATCH; it never reported ready
 *   - the source's QEMU migration had completed (its digest logged: the guest
 *     was stopped for good there), yet A runs on c1 again: the controller has
 *     it on c1, c2 kept neither its port nor a QEMU, and it answers P's pings
 *     through c1's port
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { QEMU_SENT_LOG } from '../../src/host/qemu-migration-send.ts';
import { QEMU_RAM_FAULT_ENV } from '../../src/host/qemu-ram-verify.ts';
import { PING_INTERVAL_MS, Pinger } from '../helpers/migration-probes.ts';
import { startNetnsOverlay, type NetnsOverlay } from '../helpers/netns-overlay.ts';
import { checkStillOnSource, copyRefused, migrationOver } from '../helpers/qemu-migration-check.ts';
import { waitFor } from '../helpers/wait.ts';

test('a QEMU guest whose copy on the destination differs from its RAM: the move aborts, the guest keeps running on the source and answering pings', { timeout: 900_000 }, async (t) => {
  process.env[QEMU_RAM_FAULT_ENV] = 'destination';
  let o: NetnsOverlay;
  try {
    o = await startNetnsOverlay(t, {
      hosts: ['c1', 'c2', 'c3'],
      vms: [{ host: 'c1', qemu: { memoryMiB: 128, nic: 'stream' } }, { host: 'c3' }],
      policy: '',
      tools: ['ping', 'qemu-system-x86_64'],
    });
  } finally {
    delete process.env[QEMU_RAM_FAULT_ENV]; // the daemons have their copy of the environment
  }
  const [a] = o.vms;
  await waitFor(async () => (await o.exec(1, ['ping', '-n', '-c', '1', '-W', '1', a!.ip])).code === 0, 'the QEMU guest answering P', 240_000);
  await waitFor(() => o.model.getVm(a!.mac)?.host === 'c1', 'the controller sees A on c1', 30_000);
  const ping = new Pinger(o, 1, a!.ip);
  t.after(() => ping.stop());
  await ping.more(50, 'pings before the move', 120_000);

  const started = await o.model.startMigration!('vm0', 'c2', 'test', { rule: 'qemu' });
  const done = await migrationOver(o, started.id);
  t.diagnostic(`migration: ${done.state} (${done.error ?? ''})`);
  assert.equal(done.state, 'failed');
  assert.ok(copyRefused(done), `aborted for the refused copy: ${JSON.stringify(done)}`);
  const steps = o.migrationSteps(started.id).map((r) => `${r.step}:${r.state}`);
  assert.ok(!steps.includes('ready:ok') && !steps.some((s) => s.startsWith('commit')), `never ready, never committed: ${JSON.stringify(steps)}`);
  assert.match(readFileSync(o.logOf('c2'), 'utf8'), /fault injection: one bit of this copy's RAM digest flipped/);
  const digestMs = await waitFor(() => o.logged('c1', QEMU_SENT_LOG, 'ramDigestMs'), 'the source\'s completed migration and its digest in c1\'s log');
  t.diagnostic(`the source's RAM digest took ${digestMs} ms`);

  await checkStillOnSource(o, ping, 0);
  t.diagnostic(`pings answered ${ping.seqs.size} of ${ping.maxSeq} (every ${PING_INTERVAL_MS} ms), lost ${ping.lost().length} while the guest was stopped for the refused move`);
});
