/**
 * A real guest that really moves (root, QEMU), its NIC on a TAP device:
 * QEMU holds the device (`-netdev tap,ifname=…,script=no,downscript=no`),
 * the daemon that made it reads and writes the VM's frames through a
 * packet-socket port on it (dataplane/packet-port.ts, host/qemu-tap.ts). The
 * destination makes a TAP device of its own for the incoming QEMU, behind a
 * held packet port; QEMU's RARP on it (or its `completed` event) is the
 * destination's `ready`. The check of test/helpers/qemu-migration-check.ts
 * (the move succeeds, pings lost within the guest's own downtime, A answers
 * from c2, the source QEMU gone), and:
 *
 *   - both daemons run in this test's network namespace, so c2's device
 *     cannot take the name c1's still has: it is named apart
 *   - the source's TAP device is deleted with its port; the destination's
 *     is there and up, held by the one QEMU
 *   - the destination logged what made it ready: QEMU's RARP on its packet
 *     port or the QMP `completed` event (with `-S` QEMU keeps the RARP in
 *     its NIC's queue until `cont`, so the event is what comes first in
 *     practice; the RARP follows the commit, as with a stream port)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { QEMU_READY_LOG } from '../../src/host/qemu-cutover.ts';
import { checkQemuMove } from '../helpers/qemu-migration-check.ts';
import { waitFor } from '../helpers/wait.ts';

test('a QEMU guest on a TAP device moves from c1 to c2 by QEMU\'s own migration, its frames through packet ports, while a VM on c3 pings it every 10 ms', { timeout: 600_000 }, async (t) => {
  const { overlay: o } = await checkQemuMove(t, 'tap');
  const dev = o.vms[0]!.dev;
  const ready = readFileSync(o.logOf('c2'), 'utf8').split('\n').filter((l) => l.includes(QEMU_READY_LOG)).map((l) => JSON.parse(l) as { trigger?: string });
  assert.equal(ready.length, 1, 'c2 loaded the stream once');
  assert.ok(ready[0]!.trigger === 'rarp' || ready[0]!.trigger === 'event', JSON.stringify(ready[0]));
  t.diagnostic(`the destination was ready on ${ready[0]!.trigger === 'rarp' ? 'QEMU\'s RARP through its packet port' : 'the QMP completed event'}`);
  await waitFor(() => !existsSync(`/sys/class/net/${dev}`), `c1's TAP device ${dev} deleted with its port`, 30_000);
  const ports = (await o.admin('c2', '/ports')) as Array<{ name: string; kind: string }>;
  assert.ok(ports.some((p) => p.name === dev && p.kind === 'packet'), JSON.stringify(ports));
  assert.ok(existsSync(`/sys/class/net/${dev.slice(0, 12)}.m1`), 'c2\'s TAP device, named apart from c1\'s');
});
