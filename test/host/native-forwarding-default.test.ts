/**
 * The native forwarder is `vnet daemon`'s default: which configuration and
 * environment turn it on, off or make it required (daemon-config.ts,
 * nativeForwardingChoice), and a daemon started from a configuration saying
 * so — in its start line, its metrics and `vnet status`'s line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDaemonConfig } from '../../src/dataplane/daemon-config.ts';
import { nativeForwardingChoice, NATIVE_FORWARDING_ENV } from '../../src/dataplane/forwarder-choice.ts';
import { startDaemonFromConfig } from '../../src/host/daemon-runner.ts';
import { formatNativeForwarding } from '../../src/cli/status-format.ts';
import { capturingLogger, WARN } from '../helpers/log-capture.ts';

const base = { host: 'h1', role: 'hub', listen: { host: '127.0.0.1', port: 0 }, ports: [{ name: 'vm1', type: 'memory', mac: '02:00:00:00:00:01' }] };

test('the choice: on by default with a fallback; the config decides when given; the environment otherwise', () => {
  const none = parseDaemonConfig(base);
  assert.deepEqual(nativeForwardingChoice(none, {}), { run: true, busyPollUs: 0, adaptivePoll: { capUs: 200, budgetPercent: 25 }, flowTtlMs: 1000, fallback: true });
  assert.deepEqual(nativeForwardingChoice(none, { [NATIVE_FORWARDING_ENV]: '' }), { run: true, busyPollUs: 0, adaptivePoll: { capUs: 200, budgetPercent: 25 }, flowTtlMs: 1000, fallback: true });
  assert.deepEqual(nativeForwardingChoice(none, { [NATIVE_FORWARDING_ENV]: '1' }), { run: true, busyPollUs: 0, adaptivePoll: { capUs: 200, budgetPercent: 25 }, flowTtlMs: 1000, fallback: false });
  assert.deepEqual(nativeForwardingChoice(none, { [NATIVE_FORWARDING_ENV]: '0' }), { run: false, reason: 'VNET_NATIVE_FORWARDING=0 in the environment' });
  const off = parseDaemonConfig({ ...base, nativeForwarding: false });
  assert.deepEqual(nativeForwardingChoice(off, { [NATIVE_FORWARDING_ENV]: '1' }), { run: false, reason: 'nativeForwarding: false in the configuration' });
  const given = parseDaemonConfig({ ...base, nativeForwarding: { busyPollUs: 20 } });
  assert.deepEqual(nativeForwardingChoice(given, { [NATIVE_FORWARDING_ENV]: '0' }), { run: true, busyPollUs: 20, adaptivePoll: { capUs: 200, budgetPercent: 25 }, flowTtlMs: 1000, fallback: false });
  const tuned = parseDaemonConfig({ ...base, nativeForwarding: { adaptivePoll: { capUs: 500 } } });
  assert.deepEqual(nativeForwardingChoice(tuned, {}), { run: true, busyPollUs: 0, adaptivePoll: { capUs: 500, budgetPercent: 25 }, flowTtlMs: 1000, fallback: false });
  const noSpin = parseDaemonConfig({ ...base, nativeForwarding: { adaptivePoll: false } });
  assert.deepEqual(nativeForwardingChoice(noSpin, {}), { run: true, busyPollUs: 0, adaptivePoll: false, flowTtlMs: 1000, fallback: false });
  assert.throws(() => nativeForwardingChoice(none, { [NATIVE_FORWARDING_ENV]: 'yes' }), { code: 'VNET_ERR_CONFIG', message: /VNET_NATIVE_FORWARDING: must be 0 \(off\) or 1 \(on, required\), got "yes"/ });
});

test('the config key: false or an object, nothing else', () => {
  assert.equal(parseDaemonConfig({ ...base, nativeForwarding: false }).nativeForwarding, false);
  assert.deepEqual(parseDaemonConfig({ ...base, nativeForwarding: {} }).nativeForwarding, { busyPollUs: 0, adaptivePoll: { capUs: 200, budgetPercent: 25 }, flowTtlMs: 1000 });
  assert.throws(() => parseDaemonConfig({ ...base, nativeForwarding: { adaptivePoll: { capUs: 0 } } }), { code: 'VNET_ERR_CONFIG', message: /nativeForwarding\.adaptivePoll\.capUs/ });
  assert.throws(() => parseDaemonConfig({ ...base, nativeForwarding: { adaptivePoll: { budgetPercent: 101 } } }), { code: 'VNET_ERR_CONFIG', message: /nativeForwarding\.adaptivePoll\.budgetPercent/ });
  assert.throws(() => parseDaemonConfig({ ...base, nativeForwarding: { adaptivePoll: { spinUs: 5 } } }), { code: 'VNET_ERR_CONFIG', message: /nativeForwarding\.adaptivePoll/ });
  assert.throws(() => parseDaemonConfig({ ...base, nativeForwarding: { adaptivePoll: true } }), { code: 'VNET_ERR_CONFIG', message: /nativeForwarding/ });
  assert.throws(() => parseDaemonConfig({ ...base, nativeForwarding: true }), { code: 'VNET_ERR_CONFIG', message: /nativeForwarding/ });
  assert.throws(() => parseDaemonConfig({ ...base, nativeForwarding: { busyPollUs: 5000 } }), { code: 'VNET_ERR_CONFIG', message: /nativeForwarding\.busyPollUs/ });
  assert.throws(() => parseDaemonConfig({ ...base, nativeForwarding: { spin: 1 } }), { code: 'VNET_ERR_CONFIG', message: /nativeForwarding/ });
});

/** Run `body` with VNET_NATIVE_FORWARDING set to `value` (or unset), restoring it after. */
async function withEnv<T>(value: string | undefined, body: () => Promise<T>): Promise<T> {
  const before = process.env[NATIVE_FORWARDING_ENV];
  if (value === undefined) delete process.env[NATIVE_FORWARDING_ENV];
  else process.env[NATIVE_FORWARDING_ENV] = value;
  try {
    return await body();
  } finally {
    if (before === undefined) delete process.env[NATIVE_FORWARDING_ENV];
    else process.env[NATIVE_FORWARDING_ENV] = before;
  }
}

function gauge(exposition: string): string | undefined {
  return /^vnet_daemon_native_forwarding(?:\{[^}]*\})? (\d+)$/m.exec(exposition)?.[1];
}

test('a daemon from a config that does not mention it runs the forwarder and says so: start line, metric, status', async (t) => {
  const { logger, records } = capturingLogger();
  const running = await withEnv(undefined, () => startDaemonFromConfig({ logger }, parseDaemonConfig(base)));
  t.after(() => running.close());
  assert.deepEqual(running.daemon.nativeForwarding, { running: true, busyPollUs: 0, adaptivePoll: { capUs: 200, budgetPercent: 25 }, flowTtlMs: 1000 });
  const line = records.find((r) => r.msg.startsWith('native forwarder running'));
  assert.ok(line !== undefined, 'the start line says the forwarder runs');
  assert.deepEqual([line.busyPollUs, line.adaptivePoll, line.flowTtlMs], [0, { capUs: 200, budgetPercent: 25 }, 1000]);
  const metrics = await running.registry.metrics();
  assert.equal(gauge(metrics), '1');
  assert.match(metrics, /^vnet_daemon_native_poll_spins_total\{[^}]*result="hit"[^}]*\} 0$/m);
  assert.match(metrics, /^vnet_daemon_native_poll_spin_seconds_total(\{[^}]*\})? 0$/m);
  assert.equal(running.daemon.nativeCarriedFrames, 0);
});

test('nativeForwarding: false and VNET_NATIVE_FORWARDING=0 turn it off, saying why', async (t) => {
  for (const [config, env, reason] of [
    [{ ...base, nativeForwarding: false }, '1', /nativeForwarding: false/],
    [base, '0', /VNET_NATIVE_FORWARDING=0/],
  ] as const) {
    const { logger, records } = capturingLogger();
    const running = await withEnv(env, () => startDaemonFromConfig({ logger }, parseDaemonConfig(config)));
    t.after(() => running.close());
    assert.equal(running.daemon.nativeForwarding.running, false);
    assert.equal(running.daemon.nativeCarriedFrames, undefined);
    const line = records.find((r) => r.msg.startsWith('native forwarder off'));
    assert.match(String(line?.reason), reason);
    assert.ok(!records.some((r) => r.level >= WARN && r.msg.startsWith('native forwarder')), 'turned off on purpose: no warning');
    assert.equal(gauge(await running.registry.metrics()), '0');
  }
});

test('a bad VNET_NATIVE_FORWARDING fails the start with a ConfigError before anything listens', async () => {
  const { logger, records } = capturingLogger();
  await assert.rejects(withEnv('true', () => startDaemonFromConfig({ logger }, parseDaemonConfig(base))), { code: 'VNET_ERR_CONFIG', message: /VNET_NATIVE_FORWARDING/ });
  assert.ok(!records.some((r) => r.msg === 'daemon started'), 'nothing was started');
});

test('vnet status: one line, running with its settings and frames carried, or off and why', () => {
  assert.equal(
    formatNativeForwarding({ running: true, busyPollUs: 0, adaptivePoll: { capUs: 200, budgetPercent: 25 }, flowTtlMs: 1000, carriedFrames: 42, poll: { spins: 10, hits: 7, spinNs: 1_500_000, budgetDenied: 1, contended: 3 } }),
    'native forwarder: running (adaptive busy polling up to 200 µs, budget 25% of a core, flow TTL 1000 ms), 42 frames carried; busy polling: 10 spins (7 ended by traffic), 1.5 ms spinning, refused 1 by the budget and 3 for busy CPUs',
  );
  assert.equal(formatNativeForwarding({ running: true, busyPollUs: 50, adaptivePoll: false, flowTtlMs: 1000 }), 'native forwarder: running (busy poll 50 µs after every batch, flow TTL 1000 ms), 0 frames carried');
  assert.equal(formatNativeForwarding({ running: true, busyPollUs: 0, adaptivePoll: false, flowTtlMs: 1000 }), 'native forwarder: running (no busy polling, flow TTL 1000 ms), 0 frames carried');
  assert.equal(formatNativeForwarding({ running: false, reason: 'nativeForwarding: false in the configuration' }), 'native forwarder: off (nativeForwarding: false in the configuration)');
});
