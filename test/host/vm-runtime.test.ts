/**
 * The model-guest VM runtime and the cutover guest, alone: sizes, pause and
 * resume with a traffic source, and the cutover's order (hold, then pause)
 * and its refusal of the engine's resume; a migration's catch-up of what
 * the guest ran lazily, in slices.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';
import { parseMac } from '../../src/common/mac.ts';
import { CutoverGuest } from '../../src/host/cutover-guest.ts';
import { CATCH_UP_SLICE_MS, createModelGuest, DEFAULT_MODEL_GUEST, ModelGuestVm } from '../../src/host/vm-runtime.ts';

test('a model guest of the configured size runs its profile; the default is small', () => {
  const clock = new ManualClock(1000);
  const g = createModelGuest('vm1', { profile: 'kernel-compile', memoryMiB: 2, diskMiB: 1 }, clock.now());
  assert.deepEqual([g.memory.pageCount, g.disk?.blockCount, g.memory.representation], [512, 256, 'bytes']);
  g.advance(clock.now() + 10_000);
  assert.ok(g.memoryWrites > 0, 'the workload ran');
  assert.ok(DEFAULT_MODEL_GUEST.memoryMiB <= 64 && DEFAULT_MODEL_GUEST.profile === 'idle');
  assert.equal(createModelGuest('vm2', { profile: 'idle', memoryMiB: 1, diskMiB: 0 }, 0).disk, undefined);
});

test('pause and resume stop and start the VM\'s guest and its traffic; both idempotent', async () => {
  const clock = new ManualClock(0);
  const guest = createModelGuest('vm1', { profile: 'idle', memoryMiB: 1, diskMiB: 0 }, 0);
  const calls: string[] = [];
  const vm = new ModelGuestVm({ clock }, { name: 'vm1', mac: parseMac('02:00:00:00:00:01'), port: 'vm1', guest, traffic: { start: () => calls.push('start'), stop: () => calls.push('stop') } });
  vm.start();
  await vm.pause();
  await vm.pause();
  assert.equal(guest.runState, 'paused');
  await vm.resume();
  await vm.resume();
  assert.equal(guest.runState, 'running');
  assert.deepEqual(calls, ['start', 'stop', 'start']);
});

test('the cutover guest holds the port before the guest stops, and refuses to resume until allowed', () => {
  const guest = createModelGuest('vm1', { profile: 'idle', memoryMiB: 1, diskMiB: 0 }, 0);
  const order: string[] = [];
  const g = new CutoverGuest(guest, {
    beforePause: () => order.push(`hold (guest ${guest.runState})`),
    afterPause: () => order.push(`paused (guest ${guest.runState})`),
  });
  g.pause(10);
  g.pause(11);
  assert.deepEqual(order, ['hold (guest running)', 'paused (guest paused)'], 'once, hold first');
  g.resume(12);
  assert.equal(guest.runState, 'paused');
  assert.equal(g.refusedResumes, 1);
  g.allowResume();
  g.resume(13);
  assert.equal(guest.runState, 'running');
  assert.equal(g.geometry, guest.geometry);
});

test('catchUp runs what the guest ran lazily up to now in slices, yielding to the event loop between turns: the writes of one advance, stopping on abort', async () => {
  const spec = { profile: 'npb-mg', memoryMiB: 2, diskMiB: 1, seed: 7 } as const;
  const clock = new ManualClock(0);
  const guest = createModelGuest('vm1', spec, 0);
  const vm = new ModelGuestVm({ clock }, { name: 'vm1', mac: parseMac('02:00:00:00:00:01'), port: 'vm1', guest });
  clock.advance(30_000);
  // What the event loop saw between the slices: where the guest stood at each turn.
  const seen: number[] = [];
  let watching = true;
  const watch = (): void => {
    if (!watching) return;
    seen.push(guest.advancedTo);
    setImmediate(watch);
  };
  setImmediate(watch);
  await vm.catchUp(new AbortController().signal, 0);
  watching = false;
  assert.equal(guest.advancedTo, 30_000, 'up to the time of the call');
  assert.ok(seen.some((t) => t > 0 && t < 30_000), `other work ran between the slices: ${seen.slice(0, 5).join(', ')}…`);
  assert.ok(seen.every((t, i) => i === 0 || t - seen[i - 1]! <= CATCH_UP_SLICE_MS), 'with no time for a turn, one slice a turn');
  const once = createModelGuest('vm1', spec, 0);
  once.advance(30_000);
  assert.ok(once.memoryWrites > 1000);
  assert.equal(guest.memoryWrites, once.memoryWrites, 'the same writes as one advance');
  assert.equal(guest.diskWrites, once.diskWrites);

  clock.advance(30_000);
  const stop = new AbortController();
  setImmediate(() => stop.abort());
  await vm.catchUp(stop.signal, 0);
  assert.ok(guest.advancedTo > 30_000 && guest.advancedTo < 60_000, `stopped part-way on abort: at ${guest.advancedTo}`);
});
