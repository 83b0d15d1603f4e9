/**
 * What a VM can do to others, on the real overlay (root): the controller in
 * this process, a hub and three spokes as `vnet daemon` processes, every VM
 * a network namespace with the TAP device its daemon made
 * (test/helpers/netns-overlay.ts).
 *
 *   c1: vm0 ── pings ──▶ c2: vm1        c3: vm2 (default port security)
 *                                           vm3 (security: { lock: false })
 *
 * 1. MAC flood: vm2 and vm3 each send a bounded number of frames with random
 *    source MACs to random unknown destinations, at a bounded rate, while
 *    vm0 pings vm1 across hosts: no ping is lost; vm2's frames are all
 *    dropped at its port as spoofed and counted; vm3 (unlocked) gets a few
 *    MACs learned and the rest are dropped by its MAC limits and counted;
 *    the hub learned none of the flood's MACs.
 * 2. Forged frame: vm3 sends broadcasts with vm1's MAC as their source;
 *    vm1 stays reachable, the conflict is counted by the daemons and appears
 *    as a `security` event in the controller's events.
 *
 * Figures of the flood (rates, loss, RTT) are in bench/security/mac-flood.ts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_PORT_SECURITY } from '../../src/dataplane/port-security.ts';
import type { DaemonFacts } from '../../src/control/daemon-control.ts';
import { flood, kernelTxDropped, pingSummary, portOf } from '../helpers/mac-flood.ts';
import { startNetnsOverlay, type NetnsOverlay } from '../helpers/netns-overlay.ts';
import { waitFor } from '../helpers/wait.ts';

const FLOOD = { count: 16_000, rate: 8_000 } as const;

describe('what a VM can do to others (namespace VMs on the real overlay)', { timeout: 240_000 }, () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  let o: NetnsOverlay;

  before(async () => {
    o = await startNetnsOverlay({ after: (fn) => { cleanups.push(fn); } }, {
      hosts: ['c1', 'c2', 'c3'],
      vms: [{ host: 'c1' }, { host: 'c2' }, { host: 'c3' }, { host: 'c3', security: '{ lock: false }' }],
      policy: '',
      tools: ['ping', 'python3'],
    });
    const first = await o.exec(0, ['ping', '-n', '-c', '3', '-i', '0.2', '-W', '2', o.vms[1]!.ip]);
    assert.equal(first.code, 0, `vm0 reaches vm1 before anything: ${first.stdout}${first.stderr}`);
  });

  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  it('a MAC flood from two VMs is contained at their port while the other VMs ping each other without loss', async () => {
    const vm1 = o.vms[1]!;
    const ping = o.exec(0, ['ping', '-n', '-q', '-c', '60', '-i', '0.05', '-W', '5', vm1.ip], 60_000);
    const [locked, unlocked] = await Promise.all([
      flood(o, 2, { ...FLOOD, src: 'random', dst: 'unknown' }),
      flood(o, 3, { ...FLOOD, src: 'random', dst: 'unknown' }),
    ]);
    const p = pingSummary((await ping).stdout);
    assert.equal(p.sent, 60);
    assert.equal(p.received, p.sent, `no ping lost during the flood (${JSON.stringify(p)})`);

    // vm2: locked, so every flood frame that reached the daemon was dropped as spoofed.
    const lost2 = await kernelTxDropped(o, 2);
    await waitFor(async () => (await portOf(o, 2)).security!['spoofed-source'] >= locked.sent - lost2, 'vm2 flood counted as spoofed', 30_000);
    const s2 = (await portOf(o, 2)).security!;
    assert.ok(s2['spoofed-source'] <= locked.sent, `no more counted than sent: ${s2['spoofed-source']} of ${locked.sent}`);
    assert.equal(s2.locked, true);
    assert.ok(s2.learnedMacs <= 1, `at most its own MAC learned behind vm2 (its kernel's own frames), none of the flood's: ${s2.learnedMacs}`);

    // vm3: unlocked, so its MAC limits did the work.
    const lost3 = await kernelTxDropped(o, 3);
    const limited = (s: NonNullable<Awaited<ReturnType<typeof portOf>>['security']>): number => s['mac-limit'] + s['mac-rate'];
    await waitFor(async () => limited((await portOf(o, 3)).security!) >= unlocked.sent - lost3 - DEFAULT_PORT_SECURITY.maxMacs, 'vm3 flood counted by the MAC limits', 30_000);
    const s3 = (await portOf(o, 3)).security!;
    assert.equal(s3.locked, false);
    assert.ok(s3.learnedMacs <= DEFAULT_PORT_SECURITY.maxMacs, `at most maxMacs learned behind vm3: ${s3.learnedMacs}`);

    const hubFdb = (await o.admin('hub', '/fdb')) as Array<{ mac: string }>;
    const floodMacs = hubFdb.filter((e) => e.mac.startsWith('0a:'));
    assert.ok(floodMacs.length <= DEFAULT_PORT_SECURITY.maxMacs, `the hub learned at most the few MACs vm3 was allowed: ${floodMacs.length}`);
  });

  it('a forged frame with another VM’s MAC leaves that VM reachable and is reported as a conflict', async () => {
    const [vm0, vm1] = [o.vms[0]!, o.vms[1]!];
    const conflicts = async (host: string): Promise<number> => ((await o.admin(host, '/status')) as DaemonFacts).macConflicts ?? 0;
    const before = { hub: await conflicts('hub'), c2: await conflicts('c2') };
    const forged = await flood(o, 3, { count: 20, rate: 200, src: vm1.mac, dst: 'broadcast' });
    assert.equal(forged.sent, 20);
    await waitFor(async () => (await conflicts('hub')) > before.hub && (await conflicts('c2')) > before.c2, 'the conflict counted at the hub and at the victim’s host', 30_000);
    const after = await o.exec(0, ['ping', '-n', '-q', '-c', '10', '-i', '0.1', '-W', '5', vm1.ip], 30_000);
    const p = pingSummary(after.stdout);
    assert.equal(p.received, p.sent, `vm1 reachable from vm0 after the forged frames (${JSON.stringify(p)})`);
    const fdb = (await o.admin('c1', '/fdb')) as Array<{ mac: string; location: unknown }>;
    assert.deepEqual(fdb.find((e) => e.mac === vm1.mac)?.location, { kind: 'link', peer: 'hub' }, `c1 still has vm1 behind the hub (${vm0.name}'s host)`);
    await waitFor(() => o.model.listEvents({ types: ['security'] }).events.some((e) => e.type === 'security' && e.payload.report.kind === 'mac-conflict' && e.payload.report.mac === vm1.mac),
      'a security event for vm1’s MAC in the controller', 30_000);

    // The same forgery from the locked VM never leaves its port.
    const spoofedBefore = (await portOf(o, 2)).security!['spoofed-source'];
    await flood(o, 2, { count: 20, rate: 200, src: vm1.mac, dst: 'broadcast' });
    await waitFor(async () => (await portOf(o, 2)).security!['spoofed-source'] >= spoofedBefore + 20 - (await kernelTxDropped(o, 2)), 'the forgery counted as spoofed at vm2', 30_000);
  });
});
