/**
 * The typed face of the native forwarder (`native/tap/forwarder*.cc`, in the
 * TAP addon): a thread of its own that carries established flows between TAP
 * devices and link sockets — plain TCP, or TLS links switched to native
 * records (tls-switch.ts), whose records the thread seals and opens itself —
 * without waking the event loop. JavaScript
 * keeps the control; the thread only repeats decisions JavaScript made.
 *
 *   attach     a TAP port (tap-port.ts) or an open plain-TCP link (link.ts)
 *              hands its fd over (the addon dup()s it); the port stops its own
 *              polling, the link stops Node's reads and sends every write
 *              through `writeLink` so the byte stream never interleaves.
 *   install    after the forwarding loop delivered a frame of (ingress, src,
 *              dst) to exactly one port or link by a rule or a learned MAC,
 *              native-flows.ts installs that decision here; later frames of
 *              that flow go TAP → link (or link → TAP, or TAP → TAP) on the
 *              thread. Entries live `ttlMs`: the next frame after that comes up
 *              again, so learning is refreshed and the port's guard consulted.
 *   flush      every invalidation of the forwarding table (rules, ports, links,
 *              a learned MAC) drops every entry: no stale forwarding.
 *   up         whatever the thread does not forward (misses, floods, control
 *              messages, bad bytes, failures) comes up in order through one
 *              callback per wake-up and goes where it went before: the port's
 *              batch handler, the link's decoder, the failure handlers.
 *   counters   the thread counts per endpoint and per (src, dst) of frames it
 *              took from ports; `syncCounters` merges them into the ports',
 *              links' and traffic counters (the daemon calls it before every
 *              snapshot and facts, and every SYNC_MS).
 *   polling    after a batch the thread sleeps, or first spins (polls without
 *              sleeping) while an answer is likely: `busyPollUs` after every
 *              batch when set, else adaptively (`adaptivePoll`,
 *              native/tap/poll_policy.h: only for request/response traffic,
 *              within a window learned from its answers' delays and a CPU
 *              budget, and not while the CPUs are oversubscribed);
 *              `pollStats` counts spins, hits and time spent.
 *   detach     the endpoint's backlog and the items still queued for it come
 *              back, to be handled before the port or link carries on alone.
 */
import { createRequire } from 'node:module';
import type { TrafficCounters } from './traffic-counters.ts';
import { NativeForwarderError } from './errors.ts';

/** What an attached endpoint is told. */
export interface EndpointSink {
  /** A TAP endpoint's frames that were not forwarded (records as TapDevice's onBatch). */
  onBatch?(buffer: Buffer, records: Uint32Array, count: number): void;
  /** A link endpoint's wire bytes that were not forwarded, whole messages in order (or all bytes once malformed). */
  onBytes?(bytes: Buffer): void;
  /** The fd failed (errno; 0: the peer closed the connection). The endpoint is no longer served; detach it. */
  onFailed(errno: number): void;
  /** The thread's counts since the last sync. */
  addCounts(rxFrames: number, rxBytes: number, txFrames: number, txBytes: number, txDropped: number): void;
}

/** Adaptive busy polling (native/tap/poll_policy.h). */
export interface AdaptivePollOptions {
  /** The longest spin granted after a frame, in µs; directions whose answers take longer get none. */
  capUs: number;
  /** The share of one core spinning may take, averaged over a second, in percent. */
  budgetPercent: number;
}

export const DEFAULT_ADAPTIVE_POLL: Readonly<AdaptivePollOptions> = Object.freeze({ capUs: 200, budgetPercent: 25 });

/** Busy polling since the forwarder started. */
export interface PollStats {
  /** Spins: the thread polled instead of sleeping after a batch. */
  spins: number;
  /** Spins that ended because traffic came (the rest ran to their deadline, then slept). */
  hits: number;
  /** Time spent spinning, ns. */
  spinNs: number;
  /** Spins the adaptive policy refused because the CPU budget was spent. */
  budgetDenied: number;
  /** Spins the adaptive policy refused because the CPUs were oversubscribed (the thread's run-queue wait). */
  contended: number;
}

export interface NativeForwarderOptions {
  /** Spin this long (µs) after every batch before sleeping (a fixed override of adaptivePoll; default 0: none). */
  busyPollUs?: number;
  /** Spin only while request/response traffic is seen (default DEFAULT_ADAPTIVE_POLL); false: never (unless busyPollUs). */
  adaptivePoll?: AdaptivePollOptions | false;
  /** How long an installed flow lives before its next frame goes up again (default 1000 ms). */
  ttlMs?: number;
}

interface NativeHandle {
  attachTap(fd: number, hdrSize: number, mtu: number): number;
  attachLink(fd: number, maxMessageBytes: number, highWater: number, records?: NativeRecordsAttach): number;
  detach(id: number): { backlog: Buffer; items: unknown[]; counts: Float64Array; records?: NativeRecordsProgress };
  writeLink(id: number, buffers: readonly Uint8Array[]): number;
  backlog(id: number): number;
  install(ingress: number, src: number, dst: number, target: number, countTraffic: boolean): void;
  flush(): void;
  takeCounters(): { endpoints: Float64Array; traffic: Float64Array };
  poll(): Float64Array;
  recordsInfo?(id: number): Float64Array | undefined;
  close(): void;
}

/** One direction of a records link as the forwarder takes and gives it (d = tx, rx; record-keys.ts RecordDirection). */
interface NativeRecordsDirections {
  txKey: Buffer;
  txIv: Buffer;
  /** vnet-records/2 only: the traffic secret the next key derives from. */
  txSecret?: Buffer;
  txGeneration: number;
  txSeq: number;
  txBytes: number;
  rxKey: Buffer;
  rxIv: Buffer;
  rxSecret?: Buffer;
  rxGeneration: number;
  rxSeq: number;
  rxBytes: number;
  /** Bytes of a record received and not yet opened. */
  cipher: Buffer;
}

/** A records link's state as the forwarder takes it (record-layer.ts, native/tap/records.h); rekeyRecords and rekeyBytes on vnet-records/2. */
export interface NativeRecordsAttach extends NativeRecordsDirections {
  maxRecords: number;
  maxBytes: number;
  rekeyRecords?: number;
  rekeyBytes?: number;
  /** vnet-records/2: the send key's age at which it is updated (0: none). */
  rekeyAgeMs?: number;
  /** How long the send key has been in use: the forwarder's thread carries on from there on its own clock. */
  txAgeMs: number;
}

/** A records link's state as the forwarder gives it back (its keys as they are now: it may have updated them), with the send key's age. */
export interface NativeRecordsProgress extends NativeRecordsDirections {
  txAgeMs?: number;
}

/** A records link's key progress as the thread has it now (no keys): record-keys.ts RecordKeyStatus. */
export interface NativeRecordsInfo {
  txGeneration: number;
  txRecords: number;
  txBytes: number;
  txAgeMs: number;
  rxGeneration: number;
  rxRecords: number;
  rxBytes: number;
}

/** The largest adaptivePoll.capUs: a spin longer than this costs more than the wake-up it saves. */
export const ADAPTIVE_CAP_MAX_US = 10_000;

const UP_TAP_BATCH = 1;
const UP_LINK_BYTES = 2;
const UP_FAILED = 3;

const ADDON_PATH = new URL('../../build/Release/vnet_tap.node', import.meta.url).pathname;

export class NativeForwarder {
  readonly #handle: NativeHandle;
  readonly #sinks = new Map<number, EndpointSink>();
  #closed = false;
  /** Frames the thread has carried (taken in from a port or link and forwarded), as of the last sync. */
  carriedFrames = 0;

  private constructor(opts: NativeForwarderOptions) {
    let addon: { NativeForwarder?: new (o: object, onUp: (items: unknown[]) => void) => NativeHandle };
    try {
      addon = createRequire(import.meta.url)(ADDON_PATH) as typeof addon;
    } catch (err) {
      throw new NativeForwarderError(`the TAP addon is not built (${ADDON_PATH}); run \`npm ci\``, { cause: err });
    }
    if (addon.NativeForwarder === undefined) throw new NativeForwarderError(`the TAP addon at ${ADDON_PATH} predates the native forwarder; rebuild it (\`npm ci\`)`);
    try {
      const adaptive = opts.adaptivePoll ?? DEFAULT_ADAPTIVE_POLL;
      const poll = adaptive === false ? { capUs: 0 } : { capUs: adaptive.capUs, budgetPercent: adaptive.budgetPercent };
      this.#handle = new addon.NativeForwarder({ busyPollUs: opts.busyPollUs ?? 0, ttlMs: opts.ttlMs ?? 1000, ...poll }, (items) => this.#dispatch(items, undefined));
    } catch (err) {
      throw new NativeForwarderError(`cannot start the native forwarder: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Start the forwarder's thread. Throws NativeForwarderError (addon missing or too old, no thread). */
  static open(opts: NativeForwarderOptions = {}): NativeForwarder {
    for (const [key, max] of [['busyPollUs', 1_000_000], ['ttlMs', 3_600_000]] as const) {
      const v = opts[key];
      if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > max)) throw new NativeForwarderError(`${key} must be an integer 0..${max}, got ${v}`);
    }
    const a = opts.adaptivePoll;
    if (a !== undefined && a !== false) {
      for (const [key, min, max] of [['capUs', 1, ADAPTIVE_CAP_MAX_US], ['budgetPercent', 1, 100]] as const) {
        const v = a[key];
        if (!Number.isInteger(v) || v < min || v > max) throw new NativeForwarderError(`adaptivePoll.${key} must be an integer ${min}..${max}, got ${v}`);
      }
    }
    return new NativeForwarder(opts);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Serve a TAP device's fd; the caller stops its own reads. Returns the endpoint id. */
  attachTap(fd: number, hdrSize: number, mtu: number, sink: EndpointSink): number {
    return this.#attach(() => this.#handle.attachTap(fd, hdrSize, mtu), sink);
  }

  /**
   * Serve a connected TCP socket's fd; the caller stops Node's reads and writes
   * through `writeLink`. With `records` the socket carries native records
   * (record-layer.ts): the forwarder opens what it reads and seals what it writes.
   */
  attachLink(fd: number, maxMessageBytes: number, highWaterBytes: number, sink: EndpointSink, records?: NativeRecordsAttach): number {
    return this.#attach(() => this.#handle.attachLink(fd, maxMessageBytes, Math.min(highWaterBytes, 0xffff_ffff), records), sink);
  }

  /** A records link's key progress as the thread has it now (undefined: not a records link, or an addon without it). */
  recordsInfo(id: number): NativeRecordsInfo | undefined {
    if (this.#closed) return undefined;
    const r = this.#handle.recordsInfo?.(id);
    if (r === undefined) return undefined;
    return { txGeneration: r[0]!, txRecords: r[1]!, txBytes: r[2]!, txAgeMs: r[3]!, rxGeneration: r[4]!, rxRecords: r[5]!, rxBytes: r[6]! };
  }

  /**
   * Stop serving an endpoint: what was still queued for it is handed to its
   * sink now (its counts first), and the link's unwritten backlog returned
   * (to write before anything else). Idempotent.
   */
  detach(id: number): Buffer {
    return this.detachLink(id).backlog;
  }

  /** `detach`, with a records link's progress (counters, a record begun) to carry on from. */
  detachLink(id: number): { backlog: Buffer; records: NativeRecordsProgress | undefined } {
    const sink = this.#sinks.get(id);
    if (sink === undefined || this.#closed) return { backlog: Buffer.alloc(0), records: undefined };
    const { backlog, items, counts, records } = this.#handle.detach(id);
    this.#sinks.delete(id);
    this.carriedFrames += counts[0]!;
    sink.addCounts(counts[0]!, counts[1]!, counts[2]!, counts[3]!, counts[4]!);
    this.#dispatch(items, sink);
    return { backlog, records };
  }

  /** Write to a link in order with the thread's own writes; the backlog in bytes, or -errno once the link failed. */
  writeLink(id: number, buffers: readonly Uint8Array[]): number {
    return this.#closed ? -9 : this.#handle.writeLink(id, buffers);
  }

  backlog(id: number): number {
    return this.#closed ? 0 : Math.max(0, this.#handle.backlog(id));
  }

  /** Later frames of (ingress, src, dst) go to `target` on the thread (countTraffic: they enter the overlay here). */
  install(ingress: number, src: number, dst: number, target: number, countTraffic: boolean): void {
    if (!this.#closed) this.#handle.install(ingress, src, dst, target, countTraffic);
  }

  /** Drop every installed flow. */
  flush(): void {
    if (!this.#closed) this.#handle.flush();
  }

  /** Merge the thread's counts into the endpoints' counters and `traffic` (the local traffic matrix). */
  syncCounters(traffic: TrafficCounters): void {
    if (this.#closed) return;
    const { endpoints, traffic: cells } = this.#handle.takeCounters();
    for (let i = 0; i + 5 < endpoints.length; i += 6) {
      this.carriedFrames += endpoints[i + 1]!;
      this.#sinks.get(endpoints[i]!)?.addCounts(endpoints[i + 1]!, endpoints[i + 2]!, endpoints[i + 3]!, endpoints[i + 4]!, endpoints[i + 5]!);
    }
    for (let i = 0; i + 3 < cells.length; i += 4) traffic.add(cells[i]!, cells[i + 1]!, cells[i + 3]!, cells[i + 2]!);
  }

  /** Busy polling's counts since the start (all zero once closed). */
  pollStats(): PollStats {
    if (this.#closed) return { spins: 0, hits: 0, spinNs: 0, budgetDenied: 0, contended: 0 };
    const p = this.#handle.poll();
    return { spins: p[0]!, hits: p[1]!, spinNs: p[2]!, budgetDenied: p[3]!, contended: p[4]! };
  }

  /** Stop the thread; endpoints still attached are dropped (their owners detach first). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#handle.close();
    this.#sinks.clear();
  }

  #attach(attach: () => number, sink: EndpointSink): number {
    if (this.#closed) throw new NativeForwarderError('the native forwarder is closed');
    let id: number;
    try {
      id = attach();
    } catch (err) {
      throw new NativeForwarderError(`cannot attach to the native forwarder: ${(err as Error).message}`, { cause: err });
    }
    this.#sinks.set(id, sink);
    return id;
  }

  /** Items as the addon lists them: kind, endpoint, data, records, errno; `only`: this sink's (a detach). */
  #dispatch(items: readonly unknown[], only: EndpointSink | undefined): void {
    for (let i = 0; i + 4 < items.length; i += 5) {
      const sink = only ?? this.#sinks.get(items[i + 1] as number);
      if (sink === undefined) continue;
      const kind = items[i] as number;
      const data = items[i + 2] as Buffer;
      if (kind === UP_TAP_BATCH) {
        const records = items[i + 3] as Uint32Array;
        sink.onBatch?.(data, records, records.length / 2);
      } else if (kind === UP_LINK_BYTES) sink.onBytes?.(data);
      else if (kind === UP_FAILED && only === undefined) sink.onFailed(items[i + 4] as number);
    }
  }
}
