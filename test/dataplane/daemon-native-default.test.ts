import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../src/common/logger.ts';
import { parseMac } from '../../src/common/mac.ts';
import { Daemon, type DaemonInit } from '../../src/dataplane/daemon.ts';
import { NATIVE_FORWARDING_ENV, resolveNativeForwarding } from '../../src/dataplane/forwarder-choice.ts';
import { MemoryPort } from '../../src/dataplane/memory-port.ts';
import { DEFAULT_ADAPTIVE_POLL } from '../../src/dataplane/native-forwarder.ts';
import { MemoryNetwork, MemoryTransport } from '../../src/dataplane/memory-transport.ts';
import { testFrame } from '../helpers/ethernet.ts';
import { waitFor } from '../helpers/wait.ts';

/** The native forwarder's default is the daemon's own (resolveNativeForwarding): every way of starting a daemon gets it. */

const logger = silentLogger();

async function daemon(t: { after(fn: () => Promise<void>): void }, env: Record<string, string>, extra: Partial<DaemonInit> = {}): Promise<Daemon> {
  const d = await Daemon.start({ logger, env, transport: new MemoryTransport({ logger }, { localHost: 'h1', network: new MemoryNetwork() }) }, { hostId: 'h1', role: 'hub', ...extra });
  t.after(() => d.close());
  return d;
}

test('resolving nativeForwarding: given is used, false is off, absent is the default (VNET_NATIVE_FORWARDING as for vnet daemon)', () => {
  assert.deepEqual(resolveNativeForwarding(undefined, {}), { init: { busyPollUs: 0, adaptivePoll: DEFAULT_ADAPTIVE_POLL, ttlMs: 1000, fallback: true } });
  assert.deepEqual(resolveNativeForwarding(undefined, { [NATIVE_FORWARDING_ENV]: '1' }), { init: { busyPollUs: 0, adaptivePoll: DEFAULT_ADAPTIVE_POLL, ttlMs: 1000, fallback: false } });
  assert.deepEqual(resolveNativeForwarding(undefined, { [NATIVE_FORWARDING_ENV]: '0' }), { init: undefined, reason: 'VNET_NATIVE_FORWARDING=0 in the environment' });
  assert.deepEqual(resolveNativeForwarding(false, { [NATIVE_FORWARDING_ENV]: '1' }), { init: undefined, reason: 'nativeForwarding: false' });
  assert.deepEqual(resolveNativeForwarding({ busyPollUs: 20 }, { [NATIVE_FORWARDING_ENV]: '0' }), { init: { busyPollUs: 20 } });
  assert.throws(() => resolveNativeForwarding(undefined, { [NATIVE_FORWARDING_ENV]: 'on' }), { code: 'VNET_ERR_CONFIG', message: /VNET_NATIVE_FORWARDING/ });
});

test('a daemon started with Daemon.start and no word on it runs the native forwarder; memory ports still forward, on the event loop', async (t) => {
  const d = await daemon(t, {});
  assert.deepEqual(d.nativeForwarding, { running: true, busyPollUs: 0, adaptivePoll: DEFAULT_ADAPTIVE_POLL, flowTtlMs: 1000 });
  const a = new MemoryPort({ name: 'vm0', mac: parseMac('02:00:00:00:00:01') });
  const b = new MemoryPort({ name: 'vm1', mac: parseMac('02:00:00:00:00:02') });
  const atA: Buffer[] = [];
  const atB: Buffer[] = [];
  a.onDeliver((f) => atA.push(Buffer.from(f)));
  b.onDeliver((f) => atB.push(Buffer.from(f)));
  d.addPort(a);
  d.addPort(b);
  for (let i = 0; i < 5; i++) {
    a.transmit(testFrame(b.mac, a.mac, i, 100));
    b.transmit(testFrame(a.mac, b.mac, i, 100));
  }
  await waitFor(() => atA.length === 5 && atB.length === 5, 'every frame delivered');
  assert.equal(d.nativeCarriedFrames, 0, 'memory ports are not carried natively');
});

test('nativeForwarding: false, or VNET_NATIVE_FORWARDING=0, keeps it off and says why', async (t) => {
  const off = await daemon(t, { [NATIVE_FORWARDING_ENV]: '1' }, { nativeForwarding: false });
  assert.deepEqual(off.nativeForwarding, { running: false, reason: 'nativeForwarding: false' });
  assert.equal(off.nativeCarriedFrames, undefined);
  const env = await daemon(t, { [NATIVE_FORWARDING_ENV]: '0' });
  assert.deepEqual(env.nativeForwarding, { running: false, reason: 'VNET_NATIVE_FORWARDING=0 in the environment' });
});
