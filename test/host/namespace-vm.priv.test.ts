/**
 * NamespaceVm's pause and resume on the real kernel (root), with each freezer.
 * Two namespaces run a ping to their own loopback every 20 ms: the VM's,
 * which is paused, and a witness, which is not. No clock is read: "while
 * frozen" is measured in the witness's pings, and the VM's ping must not
 * advance by one while the witness's advances by ten.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { silentLogger } from '../../src/common/logger.ts';
import { VmNamespaceNotFoundError, VmNamespaceRefusedError } from '../../src/host/errors.ts';
import { NamespaceVm } from '../../src/host/namespace-vm.ts';
import { requireTools, run, uniqueName, useNetns, waitFor, type NetnsHarness } from '../helpers/netns.ts';

requireTools(['ip', 'ping']);

const VM_MAC = 0x02_00_00_97_00_01;

/** A ping to the loopback inside a namespace; `seq` is the last icmp_seq answered. */
class Pinger {
  readonly child: ChildProcess;
  seq = 0;

  constructor(h: NetnsHarness, ns: string) {
    this.child = h.spawn(ns, ['ping', '-n', '-i', '0.02', '127.0.0.1']);
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (chunk: string) => {
      for (const m of chunk.matchAll(/icmp_seq=(\d+)/g)) this.seq = Math.max(this.seq, Number(m[1]));
    });
  }

  async running(): Promise<void> {
    await waitFor(() => this.seq >= 3 || this.child.exitCode !== null, 'the ping to answer');
    if (this.child.exitCode !== null) throw new Error(`ping exited with ${this.child.exitCode}`);
  }
}

/** Waits until the witness has pinged `n` more times; returns how far the watched pinger got meanwhile. */
async function overWitnessPings(witness: Pinger, watched: Pinger, n: number): Promise<number> {
  const start = watched.seq;
  const target = witness.seq + n;
  await waitFor(() => witness.seq >= target, `${n} pings of the witness`);
  return watched.seq - start;
}

for (const freezer of ['cgroup', 'signal'] as const) {
  test(`pause freezes every process in the VM's namespace, newcomers included, and resume lets them go on (${freezer} freezer)`, async (t: TestContext) => {
    const h = await useNetns(t);
    const vmNs = await h.namespace();
    const witnessNs = await h.namespace();
    const vm = NamespaceVm.open({ name: 'vm-a', mac: VM_MAC, netns: vmNs, freezer, logger: silentLogger() });
    t.after(() => vm.close());
    assert.equal(vm.freezer, freezer);
    assert.equal(vm.netns, vmNs);
    assert.equal(vm.mac, VM_MAC);

    const inVm = new Pinger(h, vmNs);
    const witness = new Pinger(h, witnessNs);
    await inVm.running();
    await witness.running();
    assert.ok(vm.pids().includes(inVm.child.pid!), 'the VM\'s ping is among the namespace\'s processes');
    assert.ok(!vm.pids().includes(witness.child.pid!), 'the witness is not');

    await vm.pause();
    assert.equal(vm.paused, true);
    // Output the ping wrote just before the freeze may still be on its way through the pipe: let two witness pings pass first.
    await overWitnessPings(witness, inVm, 2);
    assert.equal(await overWitnessPings(witness, inVm, 10), 0, 'the paused VM\'s ping made no progress while the witness pinged 10 times');

    // A process that enters the namespace during the pause is frozen too (at the next look, within rescanMs).
    const newcomer = new Pinger(h, vmNs);
    await waitFor(() => vm.pids().includes(newcomer.child.pid!), 'the newcomer in the namespace', 30_000);
    await overWitnessPings(witness, newcomer, 3);
    assert.equal(await overWitnessPings(witness, newcomer, 10), 0, 'the newcomer made no progress while the witness pinged 10 times');

    await vm.resume();
    assert.equal(vm.paused, false);
    const before = inVm.seq;
    const newcomerBefore = newcomer.seq;
    await waitFor(() => inVm.seq >= before + 5 && newcomer.seq >= newcomerBefore + 5, 'both pings going on after resume');

    // Again, to show a second pause works on processes adopted by the first.
    await vm.pause();
    await overWitnessPings(witness, inVm, 2);
    assert.equal(await overWitnessPings(witness, inVm, 10), 0, 'no progress in the second pause');
    await vm.close();
    const after = inVm.seq;
    await waitFor(() => inVm.seq >= after + 5, 'the ping going on after close (close resumes)');
  });
}

for (const freezer of ['cgroup', 'signal'] as const) {
  test(`a paused VM handed from one runtime to another (two daemons on one kernel) stays frozen until the second resumes it (${freezer} freezer)`, async (t: TestContext) => {
    const h = await useNetns(t);
    const vmNs = await h.namespace();
    const witnessNs = await h.namespace();
    const source = NamespaceVm.open({ name: 'vm-a', mac: VM_MAC, netns: vmNs, freezer, logger: silentLogger() });
    t.after(() => source.close());
    const inVm = new Pinger(h, vmNs);
    const witness = new Pinger(h, witnessNs);
    await inVm.running();
    await witness.running();

    await source.pause();
    await source.relinquish();
    await overWitnessPings(witness, inVm, 2);
    assert.equal(await overWitnessPings(witness, inVm, 10), 0, 'still frozen once the source let go');

    const destination = NamespaceVm.open({ name: 'vm-a', mac: VM_MAC, netns: vmNs, freezer, logger: silentLogger() });
    t.after(() => destination.close());
    await destination.adoptPaused();
    assert.equal(destination.paused, true);
    assert.equal(await overWitnessPings(witness, inVm, 10), 0, 'still frozen once the destination took it over');
    await destination.resume();
    const before = inVm.seq;
    await waitFor(() => inVm.seq >= before + 5, 'the ping going on after the destination resumed it');
    // The source's runtime is done with it: its close does nothing to the VM.
    await source.close();
    await destination.pause();
    await overWitnessPings(witness, inVm, 2);
    assert.equal(await overWitnessPings(witness, inVm, 10), 0, 'the destination pauses it again');
    await destination.close();
    const after = inVm.seq;
    await waitFor(() => inVm.seq >= after + 5, 'the ping going on after close');
  });
}

test('open refuses a namespace that does not exist, and this process\'s own', async (t) => {
  assert.throws(() => NamespaceVm.open({ name: 'x', mac: VM_MAC, netns: uniqueName('vnt-n-'), logger: silentLogger() }), (e: unknown) => e instanceof VmNamespaceNotFoundError && e.code === 'VNET_ERR_VM_NETNS_NOT_FOUND');
  assert.throws(() => NamespaceVm.open({ name: 'x', mac: VM_MAC, netns: '../../proc/self/ns/net', logger: silentLogger() }), VmNamespaceNotFoundError);
  // A name for our own namespace (ip netns attach makes /var/run/netns/NAME for a pid's namespace; del only removes the name).
  const own = uniqueName('vnt-o-');
  await run(['ip', 'netns', 'attach', own, String(process.pid)]);
  t.after(() => run(['ip', 'netns', 'del', own], { allowFailure: true }));
  assert.throws(() => NamespaceVm.open({ name: 'x', mac: VM_MAC, netns: own, logger: silentLogger() }), (e: unknown) => e instanceof VmNamespaceRefusedError && e.code === 'VNET_ERR_VM_NETNS_REFUSED');
});
