/**
 * Real-time migrations over sockets: the same sender and receiver state
 * machines as virtual time, driven by a Clock, writing encoded records to
 * one or two stream sockets (TCP or TLS; TLM's time-bound rule uses two).
 *
 * Sender stages: wait until every channel can take more (socket drain) and
 * the optional pacer allows it, pull a batch from the sender, encode, write
 * each record on its channel; when the done record is out, wait for the
 * receiver's ack. Receiver stages: an incremental decoder per socket, records
 * into the receiver (which orders them by sequence number), the ack back on
 * the first socket, and the disk-acks of synchronously replicated disk
 * records on the first socket as soon as each chunk's records are applied;
 * the sender completes the guest's pending writes when a disk-ack arrives.
 * The sender catches up before it measures an iteration or pauses (a mark,
 * answered by the receiver's `applied` as soon as it is applied; sender.ts):
 * while it waits, the loop wakes on the answer itself, not on a timer.
 *
 * Channels may be handed over paused (a handshake of the caller's read the
 * bytes before them): each is resumed once the driver's listeners are on.
 *
 * Aborts (AbortSignal, timeout, socket error or close, decode error, refused
 * ack) end the run with a MigrationAbortedError; the source guest keeps
 * running, untouched. A socket error never escapes as an exception: every
 * channel keeps an error listener for life (`guardChannel`), and nothing is
 * written to a channel that has ended or failed. Streams are bytes only: a
 * synthetic guest cannot be sent over a socket (use virtual time).
 *
 * The sender's clock ends a migration when the ack arrives, so its total
 * time and downtime include the ack's trip back (half an RTT more than the
 * destination's own view, which `receiveMigration` reports as `doneAt`).
 */
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Clock } from '../../common/clock.ts';
import { ConfigError, VnetError } from '../../common/errors.ts';
import type { Guest, GuestFactory } from '../guest.ts';
import type { DiskReplication } from '../engine/disk-sync.ts';
import { createContentKeyer } from '../engine/content-key.ts';
import { MigrationSender } from '../engine/sender.ts';
import { primeSenderKeys } from '../engine/sender-keys.ts';
import { MigrationReceiver } from '../engine/receiver.ts';
import { RecordDecoder } from '../engine/stream-codec.ts';
import { encodeRecord } from '../engine/stream-record-codec.ts';
import type { AckRecord, MigrationRecord } from '../engine/stream-records.ts';
import type { DiskImageRecord, ChunkHeldRecord } from '../engine/stream-image-records.ts';
import type { SenderDiskImage } from '../engine/sender-disk.ts';
import { answerChunkQuery, chunkQuery, heldFromAnswer, withLocalBlocks, type DiskImageSource, type LocalChunks } from './disk-image-exchange.ts';
import type { StopRule } from '../stop-rules/stop-rule.ts';
import type { MigrationResult } from '../engine/migration-result.ts';
import type { ProgressEvent } from '../engine/progress.ts';
import { MigrationAbortedError, MigrationProtocolError, type MigrationAbortReason } from '../errors.ts';
import { createEmptyGuest } from '../guests/memory-guest.ts';
import { canWrite, guardChannel } from './socket-channel.ts';

export interface SocketSendOptions {
  readonly guest: Guest;
  readonly rule: StopRule;
  /** Connected sockets; the time-bound rule spreads over two when given two. */
  readonly channels: readonly Duplex[];
  readonly clock: Clock;
  readonly signal?: AbortSignal;
  /** Pace the sender to this many bits per second (the emulated link's rate, for comparisons on loopback). */
  readonly paceBps?: number;
  readonly batchBytes?: number;
  readonly disk?: boolean;
  readonly keep?: boolean;
  readonly timeoutMs?: number;
  /** Disk replication once the bulk copy is over (default 'synchronous'). */
  readonly diskReplication?: DiskReplication;
  /** Abort when a disk record waits this long for its ack (default 30 s). */
  readonly diskAckTimeoutMs?: number;
  readonly onProgress?: (e: ProgressEvent) => void;
  /** Once: the final copy (last pages, device state) is handed to the channels; only the destination's ack is awaited. */
  readonly onFinalSent?: () => void;
  readonly progressEveryMs?: number;
  readonly logger?: Logger;
  /** The disk is a base image plus the VM's writes: ask the destination which chunks it holds, send only the rest (disk-image-exchange.ts). */
  readonly diskImage?: DiskImageSource;
}

function waitTimer(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => { clock.setTimeout(resolve, ms); });
}

class Failure {
  error: MigrationAbortedError | undefined;
  #wake: (() => void) | undefined;
  set(reason: MigrationAbortReason, message: string, cause?: unknown): void {
    this.error ??= new MigrationAbortedError(reason, message, cause === undefined ? undefined : { cause });
    this.#wake?.();
  }
  /** A promise that settles when a failure is set (for racing against waits). */
  wait(): Promise<void> {
    return new Promise((resolve) => {
      if (this.error !== undefined) resolve();
      else this.#wake = resolve;
    });
  }
}

export async function sendMigration(opts: SocketSendOptions): Promise<MigrationResult> {
  if (opts.guest.memory.representation !== 'bytes') throw new ConfigError('socket migrations need a bytes guest (synthetic guests migrate in virtual time)');
  if (opts.channels.length < 1 || opts.channels.length > 2) throw new ConfigError('a migration uses one or two channels');
  const keyer = await createContentKeyer();
  const clock = opts.clock;
  const start = clock.now();
  let sender: MigrationSender | undefined;
  const fail = new Failure();
  let held: ChunkHeldRecord | undefined;
  let onHeld: (() => void) | undefined;
  let ack: AckRecord | undefined;
  let ackAt = 0;
  let onAck: (() => void) | undefined;
  /** Wakes the loop when the destination answered (an applied, a disk-ack). */
  let onAnswer: (() => void) | undefined;
  const cleanups: (() => void)[] = [];
  for (const ch of opts.channels) {
    guardChannel(ch);
    const dec = new RecordDecoder({ maxRecord: 1024 });
    const onData = (chunk: Buffer): void => {
      const r = dec.push(chunk);
      for (const rec of r.records) {
        if (rec.t === 'disk-ack') sender?.onDiskAck(rec.seq, clock.now());
        else if (rec.t === 'applied') sender?.onApplied(rec.seq, clock.now());
        else if (rec.t === 'chunk-held' && held === undefined) { held = rec; onHeld?.(); }
        else if (rec.t === 'ack' && ack === undefined) { ack = rec; ackAt = clock.now(); onAck?.(); }
      }
      if (r.error !== undefined) fail.set('protocol', `bad bytes from the destination: ${r.error.message}`, r.error);
      if (r.records.length > 0) { const wake = onAnswer; onAnswer = undefined; wake?.(); }
    };
    const onError = (err: Error): void => fail.set('link', `channel error: ${err.message}`, err);
    const onClose = (): void => { if (ack === undefined) fail.set('peer', 'the destination closed the channel'); };
    ch.on('data', onData);
    ch.on('error', onError);
    ch.on('close', onClose);
    ch.on('end', onClose);
    ch.resume(); // a channel handed over paused (after its handshake) flows once its listeners are on
    cleanups.push(() => { ch.off('data', onData); ch.off('error', onError); ch.off('close', onClose); ch.off('end', onClose); });
  }
  if (!opts.channels.every(canWrite)) fail.set('peer', 'a channel was closed before the migration started');
  const onAbort = (): void => fail.set('cancelled', 'cancelled by the caller');
  opts.signal?.addEventListener('abort', onAbort);
  if (opts.signal?.aborted === true) onAbort();
  const timeout = opts.timeoutMs !== undefined ? clock.setTimeout(() => fail.set('timeout', `no end after ${opts.timeoutMs} ms`), opts.timeoutMs) : undefined;
  const batch = opts.batchBytes ?? 64 * 1024;
  const rate = opts.paceBps !== undefined ? opts.paceBps / 8 / 1000 : undefined; // bytes per ms
  let sent = 0;
  let nextProgress = start;
  let finalSent = false;
  let diskImage: SenderDiskImage | undefined;
  const withDisk = (opts.disk ?? true) && opts.guest.disk !== undefined;
  if (opts.diskImage !== undefined && withDisk && fail.error === undefined) {
    // Which chunks does the destination hold? Asked before the hello, answered before anything else is sent.
    const query = chunkQuery(opts.diskImage);
    const described = opts.diskImage.describe?.();
    if (described !== undefined) opts.channels[0]!.write(encodeRecord({ t: 'disk-image', ...described }));
    opts.channels[0]!.write(encodeRecord(query));
    if (held === undefined) await Promise.race([new Promise<void>((r) => { onHeld = r; }), fail.wait()]);
    if (held !== undefined) diskImage = { ...opts.diskImage, held: heldFromAnswer(query, held) };
    if (fail.error === undefined) await opts.diskImage.prepare?.(diskImage?.held ?? new Set(), opts.signal).catch((err: unknown) => fail.set('link', `the disk image could not be brought in: ${(err as Error).message}`));
  }
  // Keyed in slices that yield: this loop is the daemon's, and its links go dead if it stalls (256 MiB takes seconds on a loaded machine).
  const keys = await primeSenderKeys(opts.guest, keyer, withDisk, () => new Promise<void>((r) => setImmediate(r)));
  sender = new MigrationSender({
    guest: opts.guest, rule: opts.rule, keyer, now: clock.now(), disk: opts.disk ?? true, keep: opts.keep ?? false, catchUp: true, keys,
    ...(opts.diskReplication !== undefined ? { diskReplication: opts.diskReplication } : {}),
    ...(opts.diskAckTimeoutMs !== undefined ? { diskAckTimeoutMs: opts.diskAckTimeoutMs } : {}),
    ...(opts.logger !== undefined ? { logger: opts.logger } : {}),
    ...(diskImage !== undefined ? { diskImage } : {}),
  });
  try {
    while (!sender.finished && fail.error === undefined) {
      const now = clock.now();
      if (opts.onProgress !== undefined && now >= nextProgress) {
        opts.onProgress(sender.progress(now));
        nextProgress = now + (opts.progressEveryMs ?? 1000);
      }
      if (sender.awaitingAck) {
        if (!finalSent) { finalSent = true; opts.onFinalSent?.(); }
        if (ack === undefined) await Promise.race([new Promise<void>((r) => { onAck = r; }), fail.wait()]);
        if (ack !== undefined) sender.onAck(ack.ok, ackAt, ack.code);
        if (ack !== undefined && !ack.ok) fail.set(ack.code === 'VNET_ERR_MIGRATION_VERIFY' ? 'verify' : 'protocol', `destination refused the image: ${ack.code}`);
        continue;
      }
      const blocked = opts.channels.find((c) => c.writableNeedDrain);
      if (blocked !== undefined) {
        let onDrain: (() => void) | undefined;
        await Promise.race([new Promise<void>((r) => { onDrain = r; blocked.once('drain', r); }), fail.wait()]);
        if (onDrain !== undefined) blocked.off('drain', onDrain);
        continue;
      }
      if (rate !== undefined) {
        const due = start + sent / rate;
        if (due > now + 0.5) {
          await Promise.race([waitTimer(clock, due - now), fail.wait()]);
          continue;
        }
      }
      const out = sender.next(now, batch);
      if (sender.failure !== undefined) {
        fail.error ??= sender.failure;
        break;
      }
      if (out.length === 0) {
        // Waiting for the catch-up's answer: woken by it. Otherwise the guest runs on (a 1 ms step), or an answer comes first.
        const answered = new Promise<void>((r) => { onAnswer = r; });
        await Promise.race(sender.awaitingApplied ? [answered, fail.wait()] : [answered, waitTimer(clock, 1), fail.wait()]);
        onAnswer = undefined;
        continue;
      }
      for (const o of out) {
        const ch = opts.channels[o.ch % opts.channels.length];
        if (ch === undefined || !canWrite(ch)) {
          fail.set('peer', 'the destination closed the channel');
          break;
        }
        ch.write(encodeRecord(o.rec));
        sent += o.size;
      }
    }
  } finally {
    timeout?.cancel();
    opts.signal?.removeEventListener('abort', onAbort);
    for (const c of cleanups) c();
  }
  const end = clock.now();
  if (fail.error !== undefined) {
    sender.abort(end);
    // Best effort: a channel still open hears why; a write the kernel refuses now ends at the guard.
    for (const ch of opts.channels) if (canWrite(ch)) ch.write(encodeRecord({ t: 'abort', seq: 0xffffffff, reason: fail.error.reason }));
  }
  const s = sender.stats();
  const ok = fail.error === undefined && ack?.ok === true;
  const doneAt = ok ? ackAt : end;
  return {
    ok,
    error: fail.error,
    rule: s.rule,
    totalMs: doneAt - start,
    memoryMs: doneAt - (s.memoryStartedAt ?? start),
    downtimeMs: s.pausedAt !== undefined ? doneAt - s.pausedAt : 0,
    iterations: s.iterations,
    bytes: { memory: s.memoryBytes, disk: s.diskBytes, control: s.controlBytes, total: s.totalBytes },
    sender: s,
    deadlineMet: opts.rule.kind === 'time-bound' ? ok && doneAt - (s.memoryStartedAt ?? start) <= opts.rule.deadlineMs : undefined,
    verified: ok,
    destination: undefined,
  };
}

export interface SocketReceiveOptions {
  /** The accepted sockets of one migration (one or two). */
  readonly channels: readonly Duplex[];
  readonly clock: Clock;
  readonly factory?: GuestFactory;
  readonly signal?: AbortSignal;
  readonly timeoutMs?: number;
  readonly logger?: Logger;
  /** This site's image chunk store: chunk-queries are answered from it and chunk records filled from it (disk-image-exchange.ts). */
  readonly chunks?: LocalChunks;
}

export interface ReceiveResult {
  readonly ok: boolean;
  readonly error: VnetError | undefined;
  readonly guest: Guest | undefined;
  readonly pausedAt: number | undefined;
  readonly doneAt: number | undefined;
  readonly recordsApplied: number;
  /** Disk blocks filled from the destination's own chunk store. */
  readonly chunkBlocks: number;
  /** The disk is an image version, copy-on-write: what the source said it is made from (kept with the VM for its next move). */
  readonly diskImage?: DiskImageRecord;
}

/** Receives one migration on the given sockets; resolves when it is verified, refused or broken. */
export async function receiveMigration(opts: SocketReceiveOptions): Promise<ReceiveResult> {
  const keyer = await createContentKeyer();
  const clock = opts.clock;
  const receiver = new MigrationReceiver({ factory: opts.factory ?? createEmptyGuest, keyer, representation: 'bytes', ...(opts.logger !== undefined ? { logger: opts.logger } : {}) });
  const first = opts.channels[0];
  let diskImage: DiskImageRecord | undefined;
  return new Promise<ReceiveResult>((resolve) => {
    let settled = false;
    const cleanups: (() => void)[] = [];
    const finish = (): void => {
      if (settled) return;
      settled = true;
      timer?.cancel();
      for (const c of cleanups) c();
      resolve({
        ok: receiver.state === 'done', error: receiver.error, guest: receiver.state === 'done' ? receiver.guest : undefined, pausedAt: receiver.pausedAt, doneAt: receiver.doneAt,
        recordsApplied: receiver.recordsApplied, chunkBlocks: receiver.chunkBlocks, ...(diskImage !== undefined ? { diskImage } : {}),
      });
    };
    // The write's callback runs on success and on failure alike; a failure itself ends at the channel's guard.
    const reply = (a: AckRecord): void => {
      if (first !== undefined && canWrite(first)) first.write(encodeRecord(a), () => finish());
      else finish();
    };
    let pipeline: Promise<void> = Promise.resolve();
    const breakOff = (err: VnetError): void => {
      if (settled || receiver.state === 'done') return;
      receiver.fail(err);
      finish();
    };
    for (const ch of opts.channels) {
      guardChannel(ch);
      const dec = new RecordDecoder();
      const handle = async (records: readonly MigrationRecord[], error: VnetError | undefined): Promise<void> => {
        for (const rec of records) {
          if (settled) return;
          let r = rec;
          if (rec.t === 'disk-image') { diskImage = rec; continue; }
          if (rec.t === 'chunk-query') {
            // Without a store here: "none held", so every block comes over the link.
            const answer = opts.chunks !== undefined ? await answerChunkQuery(opts.chunks, rec) : { t: 'chunk-held' as const, held: new Uint8Array(Math.ceil(rec.digests.length / 8)) };
            if (first !== undefined && canWrite(first)) first.write(encodeRecord(answer));
            continue;
          }
          if (opts.chunks !== undefined && rec.t === 'chunk') {
            try {
              r = await withLocalBlocks(opts.chunks, rec);
            } catch (err) {
              const e = err instanceof VnetError ? err : new MigrationProtocolError(`chunk ${rec.digest}: ${String(err)}`);
              receiver.fail(e);
              reply({ t: 'ack', ok: false, code: e.code });
              return;
            }
            if (settled) return;
          }
          const a = receiver.accept(r, clock.now());
          if (a !== undefined) { reply(a); return; }
        }
        const da = receiver.takeDiskAck();
        if (da !== undefined && first !== undefined && canWrite(first)) first.write(encodeRecord(da));
        const applied = receiver.takeApplied();
        if (applied !== undefined && first !== undefined && canWrite(first)) first.write(encodeRecord(applied));
        if (error !== undefined) {
          receiver.fail(error);
          reply({ t: 'ack', ok: false, code: error.code });
        }
      };
      const onData = (chunk: Buffer): void => {
        if (settled) return;
        const r = dec.push(chunk);
        // In arrival order, one batch after the other: a chunk record waits for its read from the local store.
        pipeline = pipeline.then(() => handle(r.records, r.error)).catch((err: unknown) => breakOff(err instanceof VnetError ? err : new MigrationProtocolError(String(err))));
      };
      const onError = (err: Error): void => breakOff(new MigrationAbortedError('link', `channel error: ${err.message}`, { cause: err }));
      const onClose = (): void => breakOff(new MigrationAbortedError('peer', 'the source closed the channel before the end'));
      ch.on('data', onData);
      ch.on('error', onError);
      ch.on('close', onClose);
      ch.on('end', onClose);
      ch.resume(); // a channel handed over paused (after its handshake) flows once its listeners are on
      cleanups.push(() => { ch.off('data', onData); ch.off('error', onError); ch.off('close', onClose); ch.off('end', onClose); });
    }
    const onAbort = (): void => breakOff(new MigrationAbortedError('cancelled', 'cancelled by the caller'));
    opts.signal?.addEventListener('abort', onAbort);
    cleanups.push(() => opts.signal?.removeEventListener('abort', onAbort));
    const timer = opts.timeoutMs !== undefined ? clock.setTimeout(() => breakOff(new MigrationAbortedError('timeout', `no end after ${opts.timeoutMs} ms`)), opts.timeoutMs) : undefined;
    if (opts.signal?.aborted === true) onAbort();
    if (opts.channels.some((c) => c.destroyed)) breakOff(new MigrationAbortedError('peer', 'a channel was closed before the migration started'));
  });
}
