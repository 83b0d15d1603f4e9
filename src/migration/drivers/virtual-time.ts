/**
 * Virtual-time migrations: the real sender and receiver state machines over
 * an emulated link, with a clock that jumps from one transmission to the
 * next. Seed-scale scenarios (16 GB guests, minutes of migration) finish in
 * seconds, and every figure comes from the same decisions and record-size
 * rules the socket path uses.
 *
 * Several migrations may share one link (CloudNet moved four VMs at once):
 * each step serves the migration whose sender is ready earliest, and the
 * link carries their records in FIFO order.
 *
 * Events, earliest first: a sender step (records onto the forward pipe; the
 * receiver applies each at its arrival time) or a disk-ack arriving back at
 * a sender (the receiver's replies travel the reverse pipe). A disk-ack is
 * delivered at exactly its arrival time, so a synchronous write completes
 * one RTT plus transmission (plus any queueing) after its record was sent.
 */
import type { Logger } from 'pino';
import type { Guest, GuestFactory, PageContent } from '../guest.ts';
import type { DiskReplication } from '../engine/disk-sync.ts';
import { recordSize } from '../engine/stream-record-codec.ts';
import type { ChunkRecord } from '../engine/stream-image-records.ts';
import { createContentKeyer } from '../engine/content-key.ts';
import { MigrationSender } from '../engine/sender.ts';
import { MAX_RECEIVE_PAGES, MigrationReceiver } from '../engine/receiver.ts';
import type { SenderDiskImage } from '../engine/sender-disk.ts';
import { EmulatedLink, type EmulatedLinkParams } from './emulated-link.ts';
import { createEmptyGuest } from '../guests/memory-guest.ts';
import type { StopRule } from '../stop-rules/stop-rule.ts';
import type { MigrationResult } from '../engine/migration-result.ts';
import type { ProgressEvent } from '../engine/progress.ts';
import { MigrationAbortedError, MigrationInvariantError } from '../errors.ts';

export interface VirtualMigrationSpec {
  readonly guest: Guest;
  readonly rule: StopRule;
  readonly factory?: GuestFactory;
  readonly disk?: boolean;
  readonly keep?: boolean;
  readonly cacheCapacity?: number;
  /** Give up (abort) after this much virtual time (default 6 hours). */
  readonly timeoutMs?: number;
  /** Disk replication once the bulk copy is over (default 'synchronous'). */
  readonly diskReplication?: DiskReplication;
  /** Abort when a disk record waits this long for its ack (default 30 s). */
  readonly diskAckTimeoutMs?: number;
  readonly onProgress?: (e: ProgressEvent) => void;
  /**
   * The disk is a base image plus the VM's writes and the destination's store
   * holds `held` of its chunks: the chunk-query's round trip is charged before
   * the hello, then chunk records replace those spans; `localBlocks` gives
   * what the destination reads from its store for one (its disk time is not
   * charged).
   */
  readonly diskImage?: SenderDiskImage & { localBlocks(rec: ChunkRecord): PageContent[] };
}

export interface VirtualRunOptions {
  readonly link: EmulatedLinkParams;
  /** Bytes a sender produces per step (default 256 KiB). */
  readonly batchBytes?: number;
  /** Virtual time a sender with nothing to send waits before asking again (default 1 ms). */
  readonly idleStepMs?: number;
  /** Progress events every this many virtual ms (default 1000). */
  readonly progressEveryMs?: number;
  readonly logger?: Logger;
}

interface Lane {
  readonly spec: VirtualMigrationSpec;
  readonly sender: MigrationSender;
  readonly receiver: MigrationReceiver;
  ready: number;
  /** Disk-acks on their way back: arrival time and sequence number, in arrival order. */
  readonly acks: { at: number; seq: number }[];
  ackHead: number;
  endedAt: number | undefined;
  aborted: MigrationAbortedError | undefined;
  nextProgress: number;
}

export async function runVirtualMigration(spec: VirtualMigrationSpec, opts: VirtualRunOptions): Promise<MigrationResult> {
  const [r] = await runVirtualMigrations([spec], opts);
  if (r === undefined) throw new MigrationInvariantError('runVirtualMigrations returned no result for its one migration');
  return r;
}

export async function runVirtualMigrations(specs: readonly VirtualMigrationSpec[], opts: VirtualRunOptions): Promise<MigrationResult[]> {
  const keyer = await createContentKeyer();
  const link = new EmulatedLink(opts.link);
  const batch = opts.batchBytes ?? 256 * 1024;
  const idle = opts.idleStepMs ?? 1;
  const every = opts.progressEveryMs ?? 1000;
  const lanes: Lane[] = specs.map((spec) => ({
    spec,
    sender: new MigrationSender({
      guest: spec.guest, rule: spec.rule, keyer, now: 0, disk: spec.disk ?? true, keep: spec.keep ?? false,
      ...(spec.cacheCapacity !== undefined ? { cacheCapacity: spec.cacheCapacity } : {}),
      ...(spec.diskReplication !== undefined ? { diskReplication: spec.diskReplication } : {}),
      ...(spec.diskAckTimeoutMs !== undefined ? { diskAckTimeoutMs: spec.diskAckTimeoutMs } : {}),
      ...(opts.logger !== undefined ? { logger: opts.logger } : {}),
      ...(spec.diskImage !== undefined ? { diskImage: spec.diskImage } : {}),
    }),
    receiver: new MigrationReceiver({
      factory: spec.factory ?? createEmptyGuest, keyer, representation: spec.guest.memory.representation,
      // The guest is the caller's own, not an untrusted stream's announcement.
      maxPages: Math.max(MAX_RECEIVE_PAGES, spec.guest.geometry.pageCount, spec.guest.geometry.blockCount),
      ...(spec.cacheCapacity !== undefined ? { cacheCapacity: spec.cacheCapacity } : {}),
    }),
    ready: spec.diskImage === undefined ? 0 : imageQueryRoundTrip(link, spec.diskImage),
    acks: [],
    ackHead: 0,
    endedAt: undefined,
    aborted: undefined,
    nextProgress: 0,
  }));
  for (;;) {
    let lane: Lane | undefined;
    let laneAt = Number.POSITIVE_INFINITY;
    for (const l of lanes) {
      if (l.sender.finished) continue;
      const at = Math.min(l.ready, l.acks[l.ackHead]?.at ?? Number.POSITIVE_INFINITY);
      if (at < laneAt) { lane = l; laneAt = at; }
    }
    if (lane === undefined) break;
    const ack0 = lane.acks[lane.ackHead];
    if (ack0 !== undefined && ack0.at <= lane.ready) {
      deliverAcks(lane, ack0.at);
      continue;
    }
    const now = lane.ready;
    if (now >= link.cut) {
      lane.aborted = new MigrationAbortedError('link', `link cut at ${link.cut} ms`);
      endLane(lane, link.cut);
      continue;
    }
    if (now > (lane.spec.timeoutMs ?? 6 * 3600_000)) {
      lane.aborted = new MigrationAbortedError('timeout', `no end after ${Math.round(now)} ms of virtual time`);
      endLane(lane, now);
      continue;
    }
    if (lane.spec.onProgress !== undefined && now >= lane.nextProgress) {
      lane.spec.onProgress(lane.sender.progress(now));
      lane.nextProgress = now + every;
    }
    const out = lane.sender.next(now, batch);
    if (lane.sender.failure !== undefined) {
      lane.aborted = lane.sender.failure;
      endLane(lane, now);
      continue;
    }
    if (out.length === 0) {
      // Waiting for the verdict: only a disk-ack, the ack timeout or the migration timeout can change anything.
      lane.ready = now + (lane.sender.awaitingAck ? Math.max(idle, 50) : idle);
      continue;
    }
    let last = now;
    let cut = false;
    for (const o of out) {
      const arrival = link.send(o.size, now);
      if (arrival === undefined) { cut = true; break; }
      last = arrival;
      const img = lane.spec.diskImage;
      const ack = lane.receiver.accept(o.rec.t === 'chunk' && img !== undefined ? { ...o.rec, blocks: img.localBlocks(o.rec) } : o.rec, arrival);
      const da = lane.receiver.takeDiskAck();
      if (da !== undefined) {
        const back = link.reply(recordSize(da), arrival);
        if (back !== undefined) lane.acks.push({ at: back, seq: da.seq });
      }
      if (ack !== undefined) {
        const back = link.reply(recordSize(ack), arrival);
        if (back === undefined) {
          // Lost on the way back: a cut link ends the lane; a reverse-only cut leaves the sender waiting (its timeouts end it).
          if (arrival >= link.cut) { cut = true; }
          break;
        }
        // Disk-acks that arrive before the verdict are delivered first, at their own times.
        deliverAcks(lane, back);
        lane.sender.onAck(ack.ok, back, ack.code);
        lane.endedAt = arrival;
        if (!ack.ok) lane.aborted = new MigrationAbortedError(lane.receiver.error?.code === 'VNET_ERR_MIGRATION_VERIFY' ? 'verify' : 'protocol', `destination refused: ${ack.code}`, { cause: lane.receiver.error });
        break;
      }
    }
    if (cut) {
      lane.aborted = new MigrationAbortedError('link', `link cut at ${link.cut} ms`);
      endLane(lane, link.cut);
      continue;
    }
    lane.ready = Math.max(link.busyUntil, now + 1e-6);
    void last;
  }
  return lanes.map((l) => resultOf(l, link));
}

/** When the sender has the destination's answer to its chunk-query, sent at 0. */
function imageQueryRoundTrip(link: EmulatedLink, image: SenderDiskImage): number {
  const distinct = new Set(image.chunks).size;
  const query = recordSize({ t: 'chunk-query', digests: new Array<string>(distinct).fill('') });
  const arrival = link.send(query, 0) ?? 0;
  return link.reply(recordSize({ t: 'chunk-held', held: new Uint8Array(Math.ceil(distinct / 8)) }), arrival) ?? arrival;
}

/** Delivers the lane's disk-acks that arrive by `until`, each at its arrival time. */
function deliverAcks(lane: Lane, until: number): void {
  for (;;) {
    const a = lane.acks[lane.ackHead];
    if (a === undefined || a.at > until) break;
    lane.ackHead++;
    lane.sender.onDiskAck(a.seq, a.at);
  }
  if (lane.ackHead > 4096 && lane.ackHead * 2 > lane.acks.length) {
    lane.acks.splice(0, lane.ackHead);
    lane.ackHead = 0;
  }
}

function endLane(lane: Lane, at: number): void {
  lane.sender.abort(at);
  lane.receiver.fail(lane.aborted ?? new MigrationAbortedError('cancelled', 'stopped'));
  lane.endedAt = at;
}

function resultOf(l: Lane, link: EmulatedLink): MigrationResult {
  const s = l.sender.stats();
  const end = l.receiver.doneAt ?? l.endedAt ?? link.busyUntil;
  const ok = l.receiver.state === 'done' && l.aborted === undefined;
  const memStart = s.memoryStartedAt ?? s.startedAt;
  const memoryMs = end - memStart;
  return {
    ok,
    error: l.aborted ?? l.receiver.error,
    rule: s.rule,
    totalMs: end - s.startedAt,
    memoryMs,
    downtimeMs: s.pausedAt !== undefined ? end - s.pausedAt : 0,
    iterations: s.iterations,
    bytes: { memory: s.memoryBytes, disk: s.diskBytes, control: s.controlBytes, total: s.totalBytes },
    sender: s,
    deadlineMet: l.spec.rule.kind === 'time-bound' ? ok && memoryMs <= l.spec.rule.deadlineMs : undefined,
    verified: ok,
    destination: l.receiver.guest,
  };
}
