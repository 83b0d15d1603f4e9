/**
 * The hub is not a single point of failure (root): the primary hub's
 * `vnet daemon` process is killed (SIGKILL), or stopped (SIGSTOP) and later
 * resumed, while
 *
 *   (a) vm0 (c1) pings vm1 (c2) over their fast-path link: not one ping lost;
 *   (b) vm0 (c1) pings vm2 (c3), which has no fast path: the spokes move to
 *       the standby hub and the pings come back through it.
 *
 * The controller reports the primary lost (killed: down; stopped: lost,
 * while its control channel may still look up) and every spoke on the
 * standby. A resumed primary settles as the standby's trunk peer: spokes stay
 * where they are and no ping is answered twice. Conditions are waited for;
 * no duration is asserted (the figures are bench/failover/hub.ts's).
 * Fails (does not skip) without root, `ip` or `ping`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spokesOn, startHubFailoverScenario, watchPing } from '../helpers/hub-failover-scenario.ts';
import { waitFor } from '../helpers/wait.ts';

for (const signal of ['SIGKILL', 'SIGSTOP'] as const) {
  test(`hub ${signal === 'SIGKILL' ? 'killed' : 'stopped'}: fast-path pings lose nothing, the others resume through the standby hub`, { timeout: 180_000 }, async (t) => {
    const o = await startHubFailoverScenario(t);
    const model = o.model;
    const fast = watchPing(o, 0, o.vms[1]!.ip, { intervalS: 0.05, count: 300 }); // 15 s, across the whole fault
    const backbone = watchPing(o, 0, o.vms[2]!.ip, { intervalS: 0.05 });
    t.after(() => { backbone.child.kill('SIGINT'); });
    await waitFor(() => fast.replies.length >= 20 && backbone.replies.length >= 20, 'both pairs answering');

    const faultAt = Date.now();
    o.daemon('hub').kill(signal);

    await waitFor(() => spokesOn(o, 'hub2'), 'every spoke on the standby hub', 30_000);
    await waitFor(() => backbone.replies.some((r) => r.atMs > faultAt + 100) && backbone.replies.length > 0, 'the pair without a fast path answering again, through the standby', 30_000);
    const last = backbone.replies.at(-1)!.seq;
    await waitFor(() => backbone.replies.some((r) => r.seq >= last + 10), 'and going on answering', 30_000);

    // The controller saw it.
    await waitFor(() => ['c1', 'c2', 'c3'].every((h) => model.getHost(h)?.hub === 'hub2'), 'the controller reporting every spoke on hub2', 30_000);
    const lostAs = signal === 'SIGKILL' ? ['down'] : ['lost', 'down'];
    await waitFor(() => lostAs.includes(model.getHost('hub')?.hubState ?? ''), `the controller reporting the primary ${lostAs.join(' or ')}`, 30_000);
    const events = model.listEvents({ limit: 1000 }).events;
    assert.ok(events.some((e) => e.type === 'hub-changed' && e.payload.hub === 'hub' && lostAs.includes(e.payload.state)), 'a hub-changed event for the primary');
    assert.ok(events.some((e) => e.type === 'spoke-hub-changed' && e.payload.host === 'c3' && e.payload.hub === 'hub2' && e.payload.previous === 'hub'), 'c3\'s failover as an event');

    if (signal === 'SIGSTOP') {
      // The primary resumes: it comes back as the standby's trunk peer; nobody moves back, nothing arrives twice.
      o.daemon('hub').kill('SIGCONT');
      await waitFor(() => model.getHost('hub')?.hubState === 'standby', 'the resumed primary reported as standby (trunk up again)', 60_000);
      const resumedAt = backbone.replies.at(-1)!.seq;
      await waitFor(() => backbone.replies.some((r) => r.seq >= resumedAt + 20), 'pings through the standby after the primary resumed', 30_000);
      assert.ok(await spokesOn(o, 'hub2'), 'spokes stayed on the standby hub');
    }

    const a = await fast.done;
    assert.equal(a.received, a.sent, `the fast-path pair lost pings:\n${a.output.split('\n').filter((l) => /no answer|loss/.test(l)).slice(0, 20).join('\n')}`);
    assert.equal(a.sent, 300);
    assert.equal(fast.duplicates, 0, 'no duplicate replies on the fast path');
    // Through the hubs: nothing twice, the failover included. (A reply arrived twice once in two loaded CI runs: the
    // standby's rule for vm0 still named the lost primary, so it flooded the reply to every spoke, and c2 sent its copy
    // on to c1 over their fast path. A spoke no longer relays link to link by rule but for a VM that migrated away.)
    assert.deepEqual(backbone.duplicateSeqs, [], 'no duplicate replies through the hubs');
  });
}
