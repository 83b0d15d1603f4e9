/**
 * QEMU's migration driven by the engine's stop rules
 * (src/migration/qemu/qemu-migration-plan.ts): the settings each rule asks
 * for, `query-migrate` read totally, the progress in the control protocol's
 * shape, and the rules' decisions turned into QMP parameters.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseQueryMigrate, QEMU_MAX_DOWNTIME_MS, QemuRuleDriver, qemuMigrationSettings } from '../../../src/migration/qemu/qemu-migration-plan.ts';
import { createStopRule } from '../../../src/migration/stop-rules/create-stop-rule.ts';

const MiB = 1 << 20;
const answer = (status: string, ram: Record<string, number>): unknown => ({ status, ram: { total: 128 * MiB, ...ram } });

describe('QEMU migration plan', () => {
  it('always pauses before the switchover with events on; auto-converge for the qemu and time-bound rules only; the downtime limit set', () => {
    for (const name of ['qemu', 'xen', 'smart-stop', 'time-bound'] as const) {
      const s = qemuMigrationSettings(createStopRule(name, { deadlineMs: 5000 }));
      const caps = Object.fromEntries(s.capabilities.map((c) => [c.capability, c.state]));
      assert.equal(caps['pause-before-switchover'], true, name);
      assert.equal(caps.events, true, name);
      assert.equal(caps['auto-converge'], name === 'qemu' || name === 'time-bound', name);
      assert.ok(s.parameters['downtime-limit']! > 0 && s.parameters['downtime-limit']! < QEMU_MAX_DOWNTIME_MS);
    }
  });

  it('reads query-migrate totally: missing or bad figures are 0, the status kept', () => {
    assert.deepEqual(parseQueryMigrate(null), { status: 'none', transferred: 0, remaining: 0, total: 0, dirtyPagesRate: 0, dirtySyncCount: 0, mbps: 0, downtimeMs: undefined, errorDesc: undefined });
    const r = parseQueryMigrate({ status: 'failed', 'error-desc': 'boom', ram: { transferred: -5, remaining: 'x', total: 4096 }, downtime: 12 });
    assert.equal(r.status, 'failed');
    assert.equal(r.transferred, 0);
    assert.equal(r.remaining, 0);
    assert.equal(r.total, 4096);
    assert.equal(r.downtimeMs, 12);
    assert.equal(r.errorDesc, 'boom');
  });

  it('maps progress: phase, iteration (dirty-sync rounds), bytes, pages left of RAM, dirty rate, an ETA from the rate', () => {
    const d = new QemuRuleDriver(createStopRule('qemu'), 1000);
    const o = d.observe(parseQueryMigrate(answer('active', { transferred: 10 * MiB, remaining: 64 * MiB, 'dirty-pages-rate': 300, 'dirty-sync-count': 1, mbps: 800 })), 3000);
    assert.deepEqual(o.progress, { phase: 'memory', iteration: 1, bytesSent: 10 * MiB, pagesLeft: 64 * 256, ramPages: 128 * 256, dirtyRate: 300, etaMs: Math.round((64 * MiB) / (800e6 / 8 / 1000)), elapsedMs: 2000 });
    assert.equal(d.observe(parseQueryMigrate(answer('pre-switchover', {})), 3100).progress.phase, 'paused');
    assert.equal(d.observe(parseQueryMigrate(answer('completed', {})), 3200).progress.phase, 'done');
  });

  it('asks the rule once per finished round; a stop raises the downtime limit to QEMU\'s maximum, once, and no round is judged after it', () => {
    // Xen's limits stop a migration that never converges (it has sent 3 times RAM): feed such rounds, each polled twice.
    const d = new QemuRuleDriver(createStopRule('xen'), 0);
    let stops = 0;
    let decisions = 0;
    let afterStop = 0;
    for (let round = 1; round <= 40; round++) {
      for (const sameRound of [0, 1]) {
        const o = d.observe(parseQueryMigrate(answer('active', { transferred: round * 50 * MiB + sameRound, remaining: 60 * MiB, 'dirty-sync-count': round, mbps: 100 })), round * 1000 + sameRound);
        if (o.decision !== undefined) {
          decisions++;
          if (stops > 0) afterStop++;
          assert.equal(sameRound, 0, 'a decision only when a round has just ended');
        }
        if (o.setParameters?.['downtime-limit'] === QEMU_MAX_DOWNTIME_MS) stops++;
      }
    }
    assert.equal(stops, 1, 'the switchover forced once');
    assert.ok(d.forced);
    assert.equal(afterStop, 0);
    assert.ok(decisions >= 2, `rounds judged until the stop (${decisions})`);
  });

  it('the time-bound rule: past its deadline it switches over', () => {
    const d = new QemuRuleDriver(createStopRule('time-bound', { deadlineMs: 2000 }), 0);
    const early = d.observe(parseQueryMigrate(answer('active', { transferred: 10 * MiB, remaining: 100 * MiB, 'dirty-sync-count': 1, mbps: 10_000, 'dirty-pages-rate': 5000 })), 500);
    assert.notEqual(early.setParameters?.['downtime-limit'], QEMU_MAX_DOWNTIME_MS);
    const late = d.observe(parseQueryMigrate(answer('active', { transferred: 300 * MiB, remaining: 50 * MiB, 'dirty-sync-count': 4, mbps: 100, 'dirty-pages-rate': 5000 })), 2500);
    assert.equal(late.setParameters?.['downtime-limit'], QEMU_MAX_DOWNTIME_MS, JSON.stringify(late.decision));
  });
});
