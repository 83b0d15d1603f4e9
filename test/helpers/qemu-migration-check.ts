/**
 * The QEMU live-migration check, shared by the privileged tests of a real
 * guest moved over the overlay on each kind of NIC
 * (test/host/qemu-migration.priv.test.ts: a stream port;
 * test/host/qemu-tap-migration.priv.test.ts: a TAP device behind a packet
 * port). A hub and three spokes, each a `vnet daemon` process, the controller
 * in this process. VM A is a Linux guest under QEMU (TCG, scripts/guest-build.sh's
 * kernel and initramfs, built once and cached in guest/out; 128 MiB) that
 * c1's daemon boots; its init puts A's address on eth0. VM P is a network
 * namespace on c3. While P pings A every 10 ms, the controller moves A from
 * c1 to c2: QEMU's own migration, its stream over the daemons' mutual-TLS
 * migration channel, the switchover paused for the agent
 * (pause-before-switchover), the destination QEMU started with `-incoming
 * defer -S` on a port of the same kind and run at the commit.
 *
 *   - the move succeeded and the controller has A on c2; a move that ended
 *     aborted because the destination refused QEMU's copy (its RAM differed
 *     from the source's: VNET_ERR_QEMU_MEMORY_MISMATCH, QEMU under TCG now
 *     and then loses a dirty page) is not a failure of vnet's: A must still
 *     answer from c1, and the move is started again (at most twice more)
 *   - pings lost: no more than fall inside the guest's own downtime (the
 *     source QEMU's STOP to the destination's RESUME, from the two daemons'
 *     logs), plus the one in flight at each edge
 *   - A answers from c2 (its frames enter at c2's port), c1 has no port for
 *     it, and the source QEMU is gone
 *   - the order of the cutover (docs/migration-protocol.md, "QEMU VMs"):
 *     every daemon acknowledged the rules and the source flushed what it
 *     held before the destination sent `cont`; the source reported
 *     `released` before its QEMU quit (the quit is off the guest's downtime)
 *
 * Bounded waits only; no wall-clock assertions (the downtime is measured,
 * and the loss bound follows from it).
 */
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import type { MigrationView } from '../../src/controller/api-views.ts';
import { QEMU_RESUMED_LOG } from '../../src/host/qemu-cutover.ts';
import { QEMU_SENT_LOG } from '../../src/host/qemu-migration-send.ts';
import { SOURCE_RELEASED_LOG } from '../../src/host/source-migration.ts';
import { startNetnsOverlay, type NetnsOverlay } from './netns-overlay.ts';
import { waitFor } from './wait.ts';
import { PING_INTERVAL_MS, Pinger, portAt } from './migration-probes.ts';

/** QEMU processes whose command line names `dir`. */
export function qemusUnder(dir: string): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
      if (cmd.startsWith('qemu-system') && cmd.includes(dir)) out.push(Number(pid));
    } catch { /* gone */ }
  }
  return out;
}

export interface QemuMoveOutcome {
  readonly overlay: NetnsOverlay;
  readonly migration: MigrationView;
  readonly downtimeMs: number;
  /** The pings (their icmp_seq) P sent over the move that A never answered. */
  readonly lost: readonly number[];
}

/** Boot the guest on c1 with its NIC of kind `nic`, move it to c2 while P pings it, and check everything above. */
export async function checkQemuMove(t: TestContext, nic: 'stream' | 'tap'): Promise<QemuMoveOutcome> {
  const kind = nic === 'tap' ? 'packet' : 'stream';
  const o = await startNetnsOverlay(t, {
    hosts: ['c1', 'c2', 'c3'],
    vms: [{ host: 'c1', qemu: { memoryMiB: 128, nic } }, { host: 'c3' }],
    policy: '',
    tools: ['ping', 'qemu-system-x86_64'],
  });
  const [a, p] = o.vms;
  // The guest boots under TCG (5-20 s, more on a loaded machine): wait until it answers.
  await waitFor(async () => (await o.exec(1, ['ping', '-n', '-c', '1', '-W', '1', a!.ip])).code === 0, 'the QEMU guest answering P', 240_000);
  await waitFor(() => o.model.getVm(a!.mac)?.host === 'c1' && o.model.getVm(p!.mac)?.host === 'c3', 'the controller sees A on c1 and P on c3', 30_000);
  assert.equal((await portAt(o, 'c1', a!.dev))?.kind, kind);
  assert.equal(qemusUnder(o.qemuDir('c1')).length, 1, 'one QEMU runs A on c1');

  let ping = new Pinger(o, 1, a!.ip);
  await ping.more(50, 'pings before the move', 120_000);
  let started: MigrationView;
  let done: MigrationView;
  for (let attempt = 1; ; attempt++) {
    started = await o.model.startMigration!('vm0', 'c2', 'test', { rule: 'qemu' });
    done = await migrationOver(o, started.id);
    if (done.state === 'succeeded' || attempt > MAX_REFUSED_COPIES || !copyRefused(done)) break;
    t.diagnostic(`attempt ${attempt}: the destination refused QEMU's copy (${done.error ?? ''}); A stays on c1, moving it again`);
    await checkStillOnSource(o, ping, 0);
    // The next attempt's losses are counted from a fresh ping.
    await ping.stop();
    ping = new Pinger(o, 1, a!.ip);
    await ping.more(50, 'pings before the move again', 120_000);
  }
  assert.equal(done.state, 'succeeded', JSON.stringify(done));
  assert.equal(o.model.getVm(a!.mac)?.host, 'c2');
  t.diagnostic(`cutover: ${JSON.stringify(done.cutover)}`);

  // A guest that never answers again ends this wait: the diagnosis below runs before it is reported.
  const after = await ping.more(100, 'pings after the move', 120_000).then(() => undefined, (err: unknown) => err as Error);
  const stoppedAt = await waitFor(() => o.logged('c1', QEMU_SENT_LOG, 'stoppedAtMs'), 'the source\'s STOP time in c1\'s log');
  const resumedAt = await waitFor(() => o.logged('c2', QEMU_RESUMED_LOG, 'resumedAtMs'), 'the destination\'s RESUME time in c2\'s log');
  const downtimeMs = resumedAt - stoppedAt;
  assert.ok(downtimeMs >= 0, `the guest stopped before it resumed (${downtimeMs} ms)`);
  const lost = ping.lost();
  const bound = Math.ceil(downtimeMs / PING_INTERVAL_MS) + 2;
  t.diagnostic(`guest downtime ${downtimeMs} ms; pings answered ${ping.seqs.size} of ${ping.maxSeq}; lost ${lost.length} (bound ${bound}) ${JSON.stringify(lost.slice(0, 20))}`);
  if (after !== undefined || lost.length > bound) await diagnoseQuietGuest(t, o, a!.dev);
  if (after !== undefined) throw after;
  assert.ok(lost.length <= bound, `lost ${lost.length} pings, more than the ${bound} sent while the guest was down`);

  await waitFor(async () => (await portAt(o, 'c1', a!.dev)) === undefined, 'c1 let the port go');
  checkCutoverOrder(o, started.id);
  const at2 = await waitFor(() => portAt(o, 'c2', a!.dev), 'A\'s port on c2');
  assert.equal(at2.kind, kind);
  const rx = at2.rxFrames;
  await ping.more(20, 'more pings', 120_000);
  const later = (await portAt(o, 'c2', a!.dev))!;
  assert.ok(later.rxFrames > rx && later.txFrames > 0, `A answers from c2: ${JSON.stringify(later)}`);
  await waitFor(() => qemusUnder(o.qemuDir('c1')).length === 0, 'the source QEMU gone', 30_000);
  assert.equal(qemusUnder(o.qemuDir('c2')).length, 1, 'one QEMU runs A, on c2');
  assert.ok(done.cutover !== null);
  assert.equal(done.cutover.lost, 0, 'no frame lost at the cutover');
  return { overlay: o, migration: done, downtimeMs, lost };
}

/** How many refused copies (VNET_ERR_QEMU_MEMORY_MISMATCH) a move is started again after. */
const MAX_REFUSED_COPIES = 2;

/** The migration `id` ended, done or aborted. */
export function migrationOver(o: NetnsOverlay, id: string): Promise<MigrationView> {
  return waitFor(() => {
    const m = o.model.getMigration(id);
    return m !== undefined && (m.step === 'done' || m.step === 'aborted') ? m : undefined;
  }, 'the migration over', 300_000) as Promise<MigrationView>;
}

/** The migration was aborted because the destination refused QEMU's copy: its RAM differed from the source's. */
export function copyRefused(m: MigrationView): boolean {
  return m.step === 'aborted' && (m.error ?? '').includes('VNET_ERR_QEMU_MEMORY_MISMATCH');
}

/**
 * After an aborted move of VM `vm` (index in o.vms): the controller has it on
 * c1, c2 kept neither its port nor a QEMU, and it answers `ping` from c1 (its
 * frames enter at c1's port).
 */
export async function checkStillOnSource(o: NetnsOverlay, ping: Pinger, vm: number): Promise<void> {
  const a = o.vms[vm]!;
  await waitFor(() => o.model.getVm(a.mac)?.host === 'c1', 'the controller has A on c1 again', 30_000);
  await waitFor(async () => (await portAt(o, 'c2', a.dev)) === undefined, 'c2 dropped the refused copy\'s port', 30_000);
  await waitFor(() => qemusUnder(o.qemuDir('c2')).length === 0, 'the refused copy\'s QEMU gone on c2', 30_000);
  const rx = (await portAt(o, 'c1', a.dev))!.rxFrames;
  await ping.more(20, 'pings answered from c1 after the aborted move', 120_000);
  const later = (await portAt(o, 'c1', a.dev))!;
  assert.ok(later.rxFrames > rx, `A answers from c1: ${JSON.stringify(later)}`);
  assert.equal(qemusUnder(o.qemuDir('c1')).length, 1, 'one QEMU runs A, on c1');
}

/**
 * What the overlay and the guest saw when pings went missing, to tell a guest
 * that went quiet from a path that lost its frames; the destination first (a
 * CI log may keep only part of it): its port and the kernel's counters of the
 * TAP device under it (tx: towards QEMU, rx: from it), then the other hosts'
 * ports and learned tables, then the guest's own console (c2's daemon stopped,
 * which stops its QEMU and logs the console's last lines).
 */
async function diagnoseQuietGuest(t: TestContext, o: NetnsOverlay, dev: string): Promise<void> {
  const show = async (label: string, fn: () => unknown): Promise<void> => {
    let v: unknown;
    try {
      v = await fn();
    } catch (err) {
      v = String(err);
    }
    t.diagnostic(`${label} ${JSON.stringify(v)}`.slice(0, 3000));
  };
  await show('c2 port', () => portAt(o, 'c2', dev));
  for (const name of readdirSync('/sys/class/net').filter((n) => n.startsWith(dev.slice(0, 12)))) {
    await show(`TAP ${name}`, () => Object.fromEntries(['tx_packets', 'tx_dropped', 'rx_packets', 'rx_dropped', 'carrier'].map((k) => {
      const file = k === 'carrier' ? `/sys/class/net/${name}/carrier` : `/sys/class/net/${name}/statistics/${k}`;
      try {
        return [k, readFileSync(file, 'utf8').trim()];
      } catch (err) {
        return [k, (err as NodeJS.ErrnoException).code];
      }
    })));
  }
  for (const h of ['c1', 'c3', 'hub']) await show(`${h} ports`, () => o.admin(h, '/ports'));
  for (const h of ['c3', 'hub']) await show(`${h} fdb`, () => o.admin(h, '/fdb'));
  const d = o.daemon('c2');
  if (d.exitCode === null && d.signalCode === null) {
    const exited = new Promise<void>((resolve) => d.once('exit', () => resolve()));
    d.kill('SIGINT');
    await Promise.race([exited, new Promise<void>((resolve) => setTimeout(resolve, 20_000).unref())]);
  }
  const stopped = readFileSync(o.logOf('c2'), 'utf8').split('\n').filter((l) => l.includes('"msg":"QEMU stopped"'));
  for (const line of stopped) t.diagnostic(`c2 guest console: ${String((JSON.parse(line) as { console?: unknown }).console ?? '')}`.slice(-2500));
}

/** The cutover's order, from the controller's step rows and the daemons' logs (moments compared, not measured). */
function checkCutoverOrder(o: NetnsOverlay, id: string): void {
  const steps = o.migrationSteps(id);
  const at = (step: string, state?: string): number => {
    const row = steps.find((r) => r.step === step && (state === undefined || r.state === state));
    assert.ok(row !== undefined, `step ${step} ${state ?? ''} in ${JSON.stringify(steps.map((r) => `${r.step}:${r.state}`))}`);
    return row.atMs;
  };
  const contSentAt = o.logged('c2', QEMU_RESUMED_LOG, 'contSentAtMs');
  const flushedAt = o.logged('c1', SOURCE_RELEASED_LOG, 'flushedAtMs');
  assert.ok(contSentAt !== undefined && flushedAt !== undefined, 'the destination logged its cont, the source its flush');
  assert.ok(at('acknowledged') <= contSentAt, 'every daemon acknowledged the rules before the destination ran the guest');
  assert.ok(flushedAt <= contSentAt, 'the source flushed what it held before the destination ran the guest');
  const c1 = readFileSync(o.logOf('c1'), 'utf8');
  const released = c1.indexOf(SOURCE_RELEASED_LOG);
  const quit = c1.indexOf('"msg":"QEMU stopped"', released);
  assert.ok(released >= 0 && quit > released, 'the source reported released before its QEMU quit');
}
