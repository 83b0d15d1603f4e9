/**
 * bench/failover/hub — what losing the hub costs (root): the scenario of
 * test/helpers/hub-failover-scenario.ts (a primary and a standby hub, three
 * spokes with a namespace VM each, a fast path c1–c2), the primary's
 * `vnet daemon` killed (SIGKILL) or stopped (SIGSTOP, resumed at the end),
 * while vm0 pings vm1 over the fast path and vm2 through a hub, every 20 ms.
 *
 * Columns: failover — from the signal until every spoke's backbone link is
 * up to the standby (their admin interfaces, polled); the longest gap
 * between two replies and the pings lost, for each pair. Goal: failover and
 * gap ≤ 2 s, nothing lost on the fast path.
 *
 * Usage (root): node --import tsx bench/failover/hub.ts
 */
import { spokesOn, startHubFailoverScenario, watchPing, type PingWatch } from '../../test/helpers/hub-failover-scenario.ts';

interface Row {
  fault: string;
  failoverMs: number;
  fast: { gapMs: number; lost: number; sent: number };
  backbone: { gapMs: number; lost: number; sent: number };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const INTERVAL_S = 0.02;

function maxGap(p: PingWatch): number {
  let gap = 0;
  for (let i = 1; i < p.replies.length; i++) gap = Math.max(gap, p.replies[i]!.atMs - p.replies[i - 1]!.atMs);
  return gap;
}

async function run(signal: 'SIGKILL' | 'SIGSTOP'): Promise<Row> {
  const cleanups: Array<() => Promise<void> | void> = [];
  try {
    const o = await startHubFailoverScenario({ after: (fn) => { cleanups.push(fn); } });
    const count = 500; // 10 s at 20 ms
    const fast = watchPing(o, 0, o.vms[1]!.ip, { intervalS: INTERVAL_S, count });
    const backbone = watchPing(o, 0, o.vms[2]!.ip, { intervalS: INTERVAL_S, count });
    await sleep(2000);
    const t0 = performance.now();
    o.daemon('hub').kill(signal);
    let failoverMs = Number.NaN;
    for (let i = 0; i < 3000; i++) {
      if (await spokesOn(o, 'hub2')) { failoverMs = performance.now() - t0; break; }
      await sleep(5);
    }
    const [a, b] = await Promise.all([fast.done, backbone.done]);
    if (signal === 'SIGSTOP') o.daemon('hub').kill('SIGCONT');
    return {
      fault: signal === 'SIGKILL' ? 'hub killed (SIGKILL)' : 'hub stopped (SIGSTOP)',
      failoverMs,
      fast: { gapMs: maxGap(fast), lost: a.sent - a.received, sent: a.sent },
      backbone: { gapMs: maxGap(backbone), lost: b.sent - b.received, sent: b.sent },
    };
  } finally {
    for (const fn of cleanups.reverse()) await fn();
  }
}

const rows = [await run('SIGKILL'), await run('SIGSTOP')];
const ms = (n: number): string => (Number.isNaN(n) ? '—' : n.toFixed(0));
console.log(`liveness: keepalive 250 ms, dead 1500 ms (daemon defaults); pings every ${INTERVAL_S * 1000} ms`);
console.log(`${'fault'.padEnd(24)} ${'failover ms'.padStart(11)}   ${'fast path: max gap ms'.padStart(21)} ${'lost'.padStart(8)}   ${'via hub: max gap ms'.padStart(19)} ${'lost'.padStart(8)}`);
for (const r of rows) {
  console.log(`${r.fault.padEnd(24)} ${ms(r.failoverMs).padStart(11)}   ${ms(r.fast.gapMs).padStart(21)} ${`${r.fast.lost}/${r.fast.sent}`.padStart(8)}   ${ms(r.backbone.gapMs).padStart(19)} ${`${r.backbone.lost}/${r.backbone.sent}`.padStart(8)}`);
}
const worst = Math.max(...rows.map((r) => Math.max(r.failoverMs, r.backbone.gapMs)));
console.log(`goal ≤ 2000 ms: ${worst <= 2000 ? 'met' : 'NOT met'} (worst ${ms(worst)} ms)`);
