/**
 * bench/cutover/profile — where a namespace VM's cutover time goes (root).
 * The overlay of vnet-overlay.ts (hub and three spokes as `vnet daemon`
 * processes, the controller in this process); VM x (idle model guest, 16
 * MiB) moves c1→c2→c1… `--moves N` times (default 6) under a 10 ms ping
 * from vmp on c3. For each move, from the migration's record in the
 * controller's database (times as the controller saw them, ms):
 *
 *   paused→ready   the source's `paused` report until the destination's
 *                  `ready`: the final copy (last dirty pages, device state)
 *                  and the report's trip
 *   ready→commit   the commit point written (same pass: ~0)
 *   commit→acks    the rules that point at the destination pushed to every
 *                  daemon until the last acknowledged (each host's ack, from
 *                  its `rules-changed` event, in the last column)
 *   cutover        pause → every daemon acknowledged (the API's figure,
 *                  the goal: < 50 ms)
 *   →released      every daemon acknowledged until the source released
 *                  (migrate-commit, flush of the held frames)
 *   →resumed       until the destination resumed (migrate-commit to it,
 *                  thaw)
 *
 * Usage (root): node --import tsx bench/cutover/profile.ts [--moves N]
 */
import { silentLogger } from '../../src/common/logger.ts';
import type { MigrationView } from '../../src/controller/api-model.ts';
import { openStore } from '../../src/controller/store/store.ts';
import { startNetnsOverlay } from '../../test/helpers/netns-overlay.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const arg = process.argv.indexOf('--moves');
const moves = arg > 0 ? Number(process.argv[arg + 1]) : 6;
if (!Number.isInteger(moves) || moves < 1 || moves > 100) throw new Error(`--moves: a whole number 1..100, not ${process.argv[arg + 1]}`);

interface Row { paused: number; ready: number; commit: number; acks: number; cutover: number; released: number; resumed: number; perHost: string }

const cleanups: Array<() => Promise<void> | void> = [];
const rows: Row[] = [];
try {
  const o = await startNetnsOverlay({ after: (fn) => { cleanups.push(fn); } }, {
    hosts: ['c1', 'c2', 'c3'],
    vms: [{ host: 'c1', guest: { profile: 'idle', memoryMiB: 16, diskMiB: 4 } }, { host: 'c3' }],
    policy: '',
    tools: ['ping'],
  });
  const [x] = o.vms;
  const first = await o.exec(1, ['ping', '-n', '-c', '3', '-i', '0.2', '-W', '2', x!.ip]);
  if (first.code !== 0) throw new Error(`vmp cannot reach vmx: ${first.stdout}${first.stderr}`);
  o.spawn(1, ['ping', '-q', '-i', '0.01', x!.ip]);
  let at = 'c1';
  for (let i = 0; i < moves; i++) {
    const to = at === 'c1' ? 'c2' : 'c1';
    const started = await o.model.startMigration!('vm0', to, 'bench', { rule: 'smart-stop' });
    let done: MigrationView | undefined;
    for (let k = 0; k < 12_000 && done === undefined; k++) {
      const m = o.model.getMigration(started.id);
      if (m !== undefined && (m.step === 'done' || m.step === 'aborted')) done = m;
      else await sleep(10);
    }
    if (done?.state !== 'succeeded') throw new Error(`move ${i + 1} did not succeed: ${JSON.stringify(done ?? o.model.getMigration(started.id))}`);
    at = to;
    const store = openStore({ path: o.dbPath, logger: silentLogger() });
    try {
      const run = store.getMigration(started.id)!.run!;
      const p = run.pausedMs!;
      const acks = (store.db.prepare(`SELECT at_ms, data FROM events WHERE type = 'rules-changed' AND at_ms >= ? AND at_ms <= ? ORDER BY id`).all(run.commitMs!, run.acknowledgedMs!) as Array<{ at_ms: number; data: string }>)
        .map((e) => `${(JSON.parse(e.data) as { host: string }).host}+${e.at_ms - run.commitMs!}`);
      rows.push({
        paused: 0, ready: run.readyMs! - p, commit: run.commitMs! - run.readyMs!, acks: run.acknowledgedMs! - run.commitMs!,
        cutover: done.cutover?.timeMs ?? Number.NaN, released: run.releasedMs! - run.acknowledgedMs!, resumed: run.resumedMs! - run.acknowledgedMs!,
        perHost: acks.join(' '),
      });
    } finally {
      store.close();
    }
    // The migration's fast-path link goes after its grace period: the next move starts from the same overlay.
    for (let k = 0; k < 3000 && o.model.getLink('c1', 'c2') !== undefined; k++) await sleep(10);
  }
} catch (err) {
  console.error(err);
} finally {
  for (const fn of cleanups.reverse()) await fn();
}
const f = (n: number): string => (Number.isNaN(n) ? '—' : n.toFixed(0)).padStart(8);
console.log(`${'move'.padEnd(5)}${'→ready'.padStart(8)}${'→commit'.padStart(8)}${'→acks'.padStart(8)}${'cutover'.padStart(8)}${'→releas'.padStart(8)}${'→resume'.padStart(8)}  acks per host (ms after the commit)`);
for (const [i, r] of rows.entries()) console.log(`${String(i + 1).padEnd(5)}${f(r.ready)}${f(r.commit)}${f(r.acks)}${f(r.cutover)}${f(r.released)}${f(r.resumed)}  ${r.perHost}`);
const sorted = rows.map((r) => r.cutover).sort((a, b) => a - b);
if (sorted.length > 0) console.log(`cutover (pause → all acknowledged): min ${sorted[0]} ms, median ${sorted[Math.floor(sorted.length / 2)]} ms, max ${sorted[sorted.length - 1]} ms over ${sorted.length} moves`);
process.exit(0);
