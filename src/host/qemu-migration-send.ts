/**
 * Source side of a QEMU VM's migration: QEMU's own migration, its byte
 * stream carried over the daemons' mutual-TLS migration channel, driven over
 * QMP by the engine's stop rule (src/migration/qemu/qemu-migration-plan.ts).
 *
 *   header     vnet-qemu/1 line on the channel (qemu-stream-header.ts)
 *   socket     a Unix socket in the VM's directory; QEMU's `migrate
 *              unix:PATH` connects to it and what it writes is piped onto
 *              the channel (and the channel's bytes back: QEMU's return path)
 *   settings   capabilities and parameters from the rule (events,
 *              pause-before-switchover, auto-converge; downtime-limit)
 *   progress   `query-migrate` every `progressEveryMs` → the rule's decisions
 *              (switch over now, throttle) → `migrate-set-parameters`; the
 *              figures → `onProgress`
 *   pause      QEMU reaches `pre-switchover` with the guest stopped: `onPause`
 *              with the STOP's moment (the daemon holds the VM's port and
 *              reclaims at the commit what the guest never took:
 *              port-outlet.ts; `paused` is reported), then
 *              `migrate-continue` unless the migration was cancelled meanwhile
 *   end        `completed` (the guest stays stopped here, QEMU in
 *              postmigrate, until the verdict), the stream flushed, then the
 *              stopped guest's RAM digest as one line on the second channel
 *              (qemu-ram-verify.ts: the destination checks its copy against
 *              it before it reports ready); `failed` / `cancelled`, QEMU
 *              gone, the deadline or the signal → an error, QEMU's migration
 *              cancelled (a guest stopped at the switchover stays stopped:
 *              only the verdict runs it again)
 */
import net from 'node:net';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import type { Clock } from '../common/clock.ts';
import { VnetError } from '../common/errors.ts';
import type { Logger } from '../common/logger.ts';
import { formatMac } from '../common/mac.ts';
import type { MigrationProgress } from '../control/migration-control.ts';
import { parseQueryMigrate, QemuRuleDriver, qemuMigrationSettings } from '../migration/qemu/qemu-migration-plan.ts';
import type { QmpEvent } from '../migration/qemu/qmp-client.ts';
import type { StopRule } from '../migration/stop-rules/stop-rule.ts';
import { QemuMigrationError } from './errors.ts';
import { sendQemuRamDigest, type TimedRamDigest } from './qemu-ram-verify.ts';
import { encodeQemuStreamHeader } from './qemu-stream-header.ts';
import type { QemuVm } from './qemu-vm.ts';

/**
 * The source's log line at the end of QEMU's migration; its moments (wall
 * clock, ms; the QMP events' own timestamps where QEMU gives one):
 * `stoppedAtMs` QEMU's STOP, `preSwitchoverAtMs` its pre-switchover,
 * `continuedAtMs` migrate-continue sent, `completedAtMs` its `completed`,
 * `flushedAtMs` the last byte on the channel.
 */
export const QEMU_SENT_LOG = 'QEMU migration completed; the guest stays stopped here until the verdict';

export interface QemuSendInit {
  readonly vm: QemuVm;
  readonly id: string;
  readonly channel: Duplex;
  /** The second channel: the RAM digest's line once QEMU's migration completed. */
  readonly ramChannel: Duplex;
  readonly rule: StopRule;
  readonly clock: Clock;
  readonly signal: AbortSignal;
  readonly timeoutMs: number;
  readonly progressEveryMs: number;
  readonly log: Logger;
  onProgress(p: MigrationProgress): void;
  /** QEMU stopped the guest before the switchover; `stoppedAtMs`: its STOP event's time (wall clock, ms, unrounded), if QEMU gave one. */
  onPause(stoppedAtMs: number | undefined): void;
}

export type QemuSendResult =
  | { readonly ok: true; readonly totalMs: number; readonly bytes: number; readonly qemuDowntimeMs: number | undefined; readonly moments: QemuSendMoments; readonly ram: TimedRamDigest }
  | { readonly ok: false; readonly error: VnetError };

/** The switchover's moments on the source (wall clock, ms), for the cutover's time line. */
export interface QemuSendMoments {
  stoppedAtMs?: number | undefined;
  preSwitchoverAtMs?: number | undefined;
  continuedAtMs?: number;
  completedAtMs?: number | undefined;
  flushedAtMs?: number;
}

const eventMs = (e: QmpEvent): number | undefined => (Number.isFinite(e.timestamp) ? Math.round(e.timestamp * 1000) : undefined);

export async function sendQemuMigration(o: QemuSendInit): Promise<QemuSendResult> {
  const { vm, clock, log } = o;
  const qmp = vm.qmp;
  const t0 = clock.now();
  // One migration of a VM at a time; a short name keeps the path under the 108 bytes of a Unix socket address.
  const path = join(vm.spec.dir, 'mig-out.sock');
  rmSync(path, { force: true });
  const server = net.createServer({ allowHalfOpen: true });
  let qemuSocket: net.Socket | undefined;
  // QEMU's `completed` comes once it has written its last byte to the socket, not once that byte is on the channel:
  // the stream is whole only when the pipe has ended the channel and the channel has flushed ('finish').
  let flushed: Promise<void> = Promise.resolve();
  server.on('connection', (s) => {
    if (qemuSocket !== undefined) { s.destroy(); return; }
    qemuSocket = s;
    s.on('error', () => undefined);
    flushed = new Promise<void>((resolve, reject) => {
      o.channel.once('finish', () => resolve());
      o.channel.once('close', () => reject(new QemuMigrationError(`migration ${o.id}: the channel closed before QEMU's stream was all on it`)));
    });
    flushed.catch(() => undefined);
    s.pipe(o.channel);
    o.channel.pipe(s);
    server.close();
  });
  const driver = new QemuRuleDriver(o.rule, t0);
  const moments: QemuSendMoments = {};
  let poll: ReturnType<typeof setInterval> | undefined;
  let offEvents = (): void => undefined;
  let finish!: (r: QemuSendResult) => void;
  const done = new Promise<QemuSendResult>((resolve) => { finish = resolve; });
  let settled = false;
  let paused = false;
  let stopExactMs: number | undefined;
  const fail = (error: VnetError): void => {
    if (settled) return;
    settled = true;
    qmp.execute('migrate_cancel').catch(() => undefined);
    // QEMU restarts a guest whose migration failed or was cancelled after it stopped it;
    // here only the verdict may run it again, so it is stopped again at once.
    if (paused) qmp.execute('stop').catch(() => undefined);
    finish({ ok: false, error });
  };
  const onAbort = (): void => fail(new QemuMigrationError(`migration ${o.id}: cancelled`));
  const deadline = clock.setTimeout(() => fail(new QemuMigrationError(`migration ${o.id}: QEMU did not finish within ${o.timeoutMs} ms`)), o.timeoutMs);
  const offExit = vm.process.onChange(() => {
    try { vm.process.checkAlive(); } catch (err) { fail(new QemuMigrationError(`migration ${o.id}: QEMU exited: ${(err as Error).message}`, { cause: err })); }
  });
  try {
    await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(path, () => resolve()); });
    o.channel.write(encodeQemuStreamHeader({ memoryMiB: vm.spec.memoryMiB, mac: formatMac(vm.mac) }));
    const settings = qemuMigrationSettings(o.rule);
    await qmp.execute('migrate-set-capabilities', { capabilities: settings.capabilities });
    await qmp.execute('migrate-set-parameters', settings.parameters);
    offEvents = qmp.onEvent((e: QmpEvent) => {
      if (e.event === 'STOP') {
        moments.stoppedAtMs = eventMs(e);
        stopExactMs = Number.isFinite(e.timestamp) ? e.timestamp * 1000 : undefined;
      }
      if (e.event !== 'MIGRATION' || settled) return;
      const status = String(e.data.status);
      log.debug({ id: o.id, status }, 'QEMU migration status');
      if (status === 'pre-switchover') {
        paused = true;
        moments.preSwitchoverAtMs = eventMs(e);
        o.onPause(stopExactMs);
        if (o.signal.aborted) { fail(new QemuMigrationError(`migration ${o.id}: cancelled at the switchover`)); return; }
        moments.continuedAtMs = Math.round(clock.wallNow());
        qmp.execute('migrate-continue', { state: 'pre-switchover' }).catch((err: unknown) => fail(new QemuMigrationError(`migrate-continue: ${String(err)}`, { cause: err })));
      } else if (status === 'completed') {
        moments.completedAtMs = eventMs(e);
        flushed.then(() => { moments.flushedAtMs = Math.round(clock.wallNow()); }, () => undefined);
        Promise.all([qmp.execute('query-migrate'), flushed]).then(async ([v]) => {
          const info = parseQueryMigrate(v);
          if (settled) return;
          const ram = await sendQemuRamDigest(vm, o.ramChannel, clock, o.signal);
          if (settled) return;
          settled = true;
          finish({ ok: true, totalMs: clock.now() - t0, bytes: info.transferred, qemuDowntimeMs: info.downtimeMs, moments, ram });
        }).catch((err: unknown) => fail(err instanceof VnetError ? err : new QemuMigrationError(`query-migrate after completion: ${String(err)}`, { cause: err })));
      } else if ((status === 'failed' || status === 'cancelled') && paused) {
        qmp.execute('stop').catch(() => undefined);
        fail(new QemuMigrationError(`migration ${o.id}: QEMU says ${status} after the switchover began`));
      } else if (status === 'failed' || status === 'cancelled') {
        qmp.execute('query-migrate').then(
          (v) => fail(new QemuMigrationError(`migration ${o.id}: QEMU says ${status}${parseQueryMigrate(v).errorDesc !== undefined ? `: ${parseQueryMigrate(v).errorDesc}` : ''}`)),
          () => fail(new QemuMigrationError(`migration ${o.id}: QEMU says ${status}`)),
        );
      }
    });
    o.signal.addEventListener('abort', onAbort, { once: true });
    if (o.signal.aborted) onAbort();
    if (!settled) await qmp.execute('migrate', { uri: `unix:${path}` });
    log.info({ id: o.id, rule: o.rule.name, ...settings.parameters }, 'QEMU migration started');
    poll = setInterval(() => {
      if (settled) return;
      qmp.execute('query-migrate').then((v) => {
        if (settled) return;
        const obs = driver.observe(parseQueryMigrate(v), clock.now());
        o.onProgress(obs.progress);
        if (obs.decision !== undefined && obs.setParameters !== undefined) {
          log.info({ id: o.id, reason: obs.decision.reason, ...obs.setParameters }, obs.decision.stop ? 'stop rule: switch over now' : 'stop rule: throttle');
          qmp.execute('migrate-set-parameters', obs.setParameters).catch((err: unknown) => log.warn({ id: o.id, err: String(err) }, 'migrate-set-parameters failed'));
        }
      }, () => undefined);
    }, o.progressEveryMs);
  } catch (err) {
    fail(new QemuMigrationError(`migration ${o.id}: cannot start QEMU's migration: ${(err as Error).message}`, { cause: err }));
  }
  const result = await done;
  clearInterval(poll);
  deadline.cancel();
  offExit();
  offEvents();
  o.signal.removeEventListener('abort', onAbort);
  server.close();
  rmSync(path, { force: true });
  if (result.ok) log.info({ id: o.id, totalMs: Math.round(result.totalMs), bytes: result.bytes, qemuDowntimeMs: result.qemuDowntimeMs, ...result.moments, ramXxh64: result.ram.xxh64, ramBytes: result.ram.bytes, ramDigestMs: result.ram.digestMs, ramReader: result.ram.reader }, QEMU_SENT_LOG);
  else qemuSocket?.destroy();
  return result;
}
