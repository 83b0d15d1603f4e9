import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseDaemonConfig, type DaemonConfigInput } from '../../src/dataplane/daemon-config.ts';
import { isEmptyPlan, planReload } from '../../src/dataplane/reload-plan.ts';

/** The reload planner: the running configuration and the new one in, the changes out. */

const BASE: DaemonConfigInput = {
  host: 'h2',
  role: 'spoke',
  listen: { host: '127.0.0.1', port: 7002 },
  hub: { host: '127.0.0.1', port: 7000 },
  ports: [
    { name: 'vm1', type: 'memory', mac: '02:00:00:00:00:01' },
    { name: 'vm2', type: 'memory', mac: '02:00:00:00:00:02', security: { maxMacs: 4 } },
  ],
  fastPath: [{ peer: 'h3', host: '127.0.0.1', port: 7003 }],
  rules: [{ id: 'r1', priority: 10, src: 'any', dst: '02:00:00:00:00:09', action: 'drop' }],
};

const config = (over: Partial<DaemonConfigInput> = {}) => parseDaemonConfig({ ...BASE, ...over });
const plan = (next: Partial<DaemonConfigInput>) => planReload(config(), config(next), { defaultLogLevel: 'info' });

describe('planReload', () => {
  it('the same configuration: nothing to do', () => {
    const p = plan({});
    assert.ok(isEmptyPlan(p), JSON.stringify(p));
  });

  it('a port added and one removed; the unchanged one is not named', () => {
    const p = plan({ ports: [BASE.ports![1]!, { name: 'vm3', type: 'memory', mac: '02:00:00:00:00:03' }] });
    assert.deepEqual(p.portsAdded.map((x) => x.name), ['vm3']);
    assert.deepEqual(p.portsRemoved, ['vm1']);
    assert.deepEqual(p.portsReplaced, []);
    assert.deepEqual(p.security, []);
    assert.deepEqual(p.fixed, []);
  });

  it('a port whose security limits changed is changed in place, not replaced', () => {
    const p = plan({ ports: [BASE.ports![0]!, { ...BASE.ports![1]!, security: { maxMacs: 16, floodFramesPerSecond: 50 } }] });
    assert.deepEqual(p.security.map((x) => [x.name, x.security?.maxMacs, x.security?.floodFramesPerSecond]), [['vm2', 16, 50]]);
    assert.deepEqual(p.portsReplaced, []);
    assert.deepEqual(p.portsAdded, []);
  });

  it('a port whose MAC or MTU changed is replaced', () => {
    const p = plan({ ports: [{ ...BASE.ports![0]!, mac: '02:00:00:00:00:11' }, { ...BASE.ports![1]!, mtu: 9000 }] });
    assert.deepEqual(p.portsReplaced.map((x) => x.name), ['vm1', 'vm2']);
    assert.deepEqual(p.security, []);
  });

  it('rules: the new set when it changed, nothing when only the order of keys differs', () => {
    const r2 = { id: 'r2', priority: 20, src: 'any', dst: '02:00:00:00:00:0a', action: 'flood' as const };
    assert.deepEqual(plan({ rules: [...BASE.rules!, r2] }).rules?.map((r) => r.id), ['r1', 'r2']);
    assert.equal(plan({ rules: [{ action: 'drop', dst: '02:00:00:00:00:09', src: 'any', priority: 10, id: 'r1' }] }).rules, undefined);
  });

  it('fast-path links: the new set; a peer whose address changed is redialled, an unchanged one is not', () => {
    const p = plan({ fastPath: [{ peer: 'h3', host: '127.0.0.1', port: 7033 }, { peer: 'h4', host: '127.0.0.1', port: 7004 }] });
    assert.deepEqual(p.fastPath?.links.map((l) => [l.peer, l.address.port]), [['h3', 7033], ['h4', 7004]]);
    assert.deepEqual(p.fastPath?.redial, ['h3']);
    const q = plan({ fastPath: [...BASE.fastPath!, { peer: 'h4', host: '127.0.0.1', port: 7004 }] });
    assert.deepEqual(q.fastPath?.redial, []);
  });

  it('the log level: set, and back to the default when the key goes away', () => {
    assert.equal(plan({ logLevel: 'debug' }).logLevel, 'debug');
    assert.equal(planReload(config({ logLevel: 'debug' }), config(), { defaultLogLevel: 'warn' }).logLevel, 'warn');
    assert.equal(planReload(config({ logLevel: 'info' }), config(), { defaultLogLevel: 'info' }).logLevel, undefined);
  });

  it('fixed settings (host id, role, listen address, transport, timers) are named, sorted', () => {
    assert.deepEqual(plan({ host: 'h9' }).fixed, ['host']);
    assert.deepEqual(plan({ role: 'hub' }).fixed, ['role']);
    assert.deepEqual(plan({ listen: { host: '127.0.0.1', port: 7102 }, transport: 'tcp' }).fixed, ['listen']);
    assert.deepEqual(plan({ keepaliveMs: 300, hub: { host: '127.0.0.1', port: 7100 } }).fixed, ['hub', 'keepaliveMs']);
    assert.deepEqual(plan({ metrics: { host: '127.0.0.1', port: 9100 } }).fixed, ['metrics']);
  });

  it('fixed settings changed along with run-time ones: both are in the plan (the applier refuses the whole)', () => {
    const p = plan({ transport: 'tls', tls: { dir: '/etc/vnet/pki' }, logLevel: 'debug' });
    assert.deepEqual(p.fixed, ['tls', 'transport']);
    assert.equal(p.logLevel, 'debug');
    assert.ok(!isEmptyPlan(p));
  });
});
