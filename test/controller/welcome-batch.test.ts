import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WelcomeBatch } from '../../src/controller/welcome-batch.ts';
import { waitFor } from '../helpers/wait.ts';

test('queued hellos are welcomed in arrival order, at most maxBatch at a time, one batch per turn of the event loop', async () => {
  const seen: string[] = [];
  const batches: number[][] = [];
  const q = new WelcomeBatch<number>((batch) => {
    batches.push(batch);
    seen.push(`batch ${batches.length}`);
    // Work queued by a batch (an API request, a timer) runs before the next batch.
    setImmediate(() => seen.push(`after batch ${batches.length}`));
  }, 4);
  for (let i = 0; i < 10; i++) q.push(i);
  assert.equal(q.size, 10);
  assert.deepEqual(batches, [], 'nothing is welcomed in the turn the hellos arrived');
  await waitFor(() => batches.length === 3, 'three batches');
  assert.deepEqual(batches, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
  await waitFor(() => seen.length === 6, 'the work queued by the last batch');
  assert.deepEqual(seen, ['batch 1', 'after batch 1', 'batch 2', 'after batch 2', 'batch 3', 'after batch 3']);
  assert.equal(q.size, 0);
});

test('clear drops what is queued; a bad batch size is refused', async () => {
  const batches: number[][] = [];
  const q = new WelcomeBatch<number>((batch) => batches.push(batch), 2);
  q.push(1);
  q.push(2);
  q.clear();
  q.push(3);
  await waitFor(() => batches.length === 1, 'the batch pushed after clear');
  assert.deepEqual(batches, [[3]]);
  assert.throws(() => new WelcomeBatch<number>(() => undefined, 0), RangeError);
});
