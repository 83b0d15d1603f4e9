/**
 * Frames that reach a QEMU guest after it stopped on its own and before the
 * source holds its port (root, QEMU, namespaces). QEMU decides its
 * switchover and the source hears of it a millisecond or two later; a frame
 * delivered in between stays in the stopped QEMU, which quits at the
 * commit. The overlay and move of test/helpers/qemu-migration-check.ts
 * (VM A a Linux guest under QEMU on c1, its NIC a stream port or a TAP
 * device, moved to c2
 * while P on c3 pings it every 10 ms), with that window widened to 100 ms by
 * the fault hook VNET_FAULT_QEMU_HOLD_DELAY_MS (the source holds the port
 * late), so about ten of P's pings reach the stopped QEMU:
 *
 *   - the source reclaimed them at the commit: its `released` log counts at
 *     least 3 frames reclaimed (delivered at or after QEMU's STOP; on a TAP
 *     device also read back from the device, which the stopped QEMU never
 *     read: at least one), and the warning of the hook is in its log
 *   - P lost at most one ping over the whole move (one that QEMU may have
 *     read while it was stopping, before its STOP event), not the ten of the
 *     late hold
 *   - everything else the shared check asserts (A answers from c2, the
 *     cutover's order, no frame lost)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { QEMU_HOLD_DELAY_FAULT_ENV, SOURCE_RELEASED_LOG } from '../../src/host/source-migration.ts';
import { checkQemuMove } from '../helpers/qemu-migration-check.ts';
import { waitFor } from '../helpers/wait.ts';

for (const nic of ['stream', 'tap'] as const) {
  test(`${nic === 'tap' ? 'a TAP device' : 'a stream port'}: frames that reach a QEMU guest after its own STOP and before a late hold are reclaimed at the commit: its pings are answered from c2`, { timeout: 600_000 }, async (t) => {
    process.env[QEMU_HOLD_DELAY_FAULT_ENV] = '100';
    t.after(() => { delete process.env[QEMU_HOLD_DELAY_FAULT_ENV]; });
    const { overlay: o, lost } = await checkQemuMove(t, nic);
    assert.match(readFileSync(o.logOf('c1'), 'utf8'), /fault injection: the port is held late at the pause/);
    const reclaimed = await waitFor(() => o.logged('c1', SOURCE_RELEASED_LOG, 'reclaimed'), 'the source\'s released log');
    const unread = o.logged('c1', SOURCE_RELEASED_LOG, 'unread');
    t.diagnostic(`reclaimed ${reclaimed} frames (read back from the TAP: ${unread ?? '—'}); pings lost ${JSON.stringify(lost)}`);
    if (nic === 'tap') assert.ok(unread !== undefined && unread >= 1, `the frames left on the stopped QEMU's TAP were read back (${unread})`);
    assert.ok(reclaimed >= 3, `the frames P sent over the 100 ms of the late hold were reclaimed (${reclaimed})`);
    assert.ok(lost.length <= 1, `lost ${lost.length} pings: ${JSON.stringify(lost)}`);
  });
}
