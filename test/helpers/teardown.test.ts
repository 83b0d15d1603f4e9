import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lifoAfter } from './teardown.ts';

/** A stand-in for a test context: collects `after` hooks and runs them in registration order, as node:test does. */
function fifoContext(): { after(fn: () => Promise<void> | void): void; run(): Promise<unknown> } {
  const hooks: Array<() => Promise<void> | void> = [];
  return {
    after: (fn) => { hooks.push(fn); },
    async run() {
      for (const h of hooks) { try { await h(); } catch (err) { return err; } }
      return undefined;
    },
  };
}

test('lifoAfter runs teardown the last registered first, awaiting each', async () => {
  const ctx = fifoContext();
  const td = lifoAfter(ctx);
  const order: string[] = [];
  td.after(() => { order.push('work dir'); });
  td.after(async () => { await new Promise((r) => setImmediate(r)); order.push('namespaces'); });
  td.after(() => { order.push('daemons'); });
  assert.equal(await ctx.run(), undefined);
  assert.deepEqual(order, ['daemons', 'namespaces', 'work dir']);
});

test('lifoAfter runs every function when one fails, and throws the first failure', async () => {
  const ctx = fifoContext();
  const td = lifoAfter(ctx);
  const ran: string[] = [];
  td.after(() => { ran.push('a'); throw new Error('a failed'); });
  td.after(() => { ran.push('b'); throw new Error('b failed'); });
  td.after(() => { ran.push('c'); });
  const err = await ctx.run();
  assert.deepEqual(ran, ['c', 'b', 'a']);
  assert.match((err as Error).message, /b failed/);
});
