/**
 * A real guest that really moves (root, QEMU), its NIC on a stream port
 * (QEMU's `-netdev stream` to the daemon's Unix socket): the check of
 * test/helpers/qemu-migration-check.ts.
 */
import { test } from 'node:test';
import { checkQemuMove } from '../helpers/qemu-migration-check.ts';

test('a QEMU guest moves from c1 to c2 by QEMU\'s own migration over the overlay while a VM on c3 pings it every 10 ms', { timeout: 600_000 }, async (t) => {
  await checkQemuMove(t, 'stream');
});
