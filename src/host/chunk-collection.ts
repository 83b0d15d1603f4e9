/**
 * When a site's daemon collects its chunk store (docs/images.md,
 * "Collecting chunks"): a pass (src/images/chunk-collector.ts) soon after
 * the versions held here change (a hold, a deletion's release, a VM's use
 * ending) and every `everyMs`; one pass at a time; a pass that stopped at
 * its bound is followed by the next one soon. No pass runs while what to
 * keep is not known whole (`live` undefined: the controller has not said
 * which versions it keeps). Counted: chunks and bytes removed (the daemon's
 * status, `images.collection`, and the metrics below).
 */
import type { Registry } from 'prom-client';
import { Counter, Gauge } from 'prom-client';
import type { Clock, TimerHandle } from '../common/clock.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import { collectChunks, type CollectionPass } from '../images/chunk-collector.ts';
import type { ChunkStore } from '../images/chunk-store.ts';

export interface ChunkCollectionComponents {
  store: ChunkStore;
  clock: Clock;
  logger: Logger;
  /** The digests to keep; undefined: not known whole yet (no pass runs). */
  live: () => ReadonlySet<string> | undefined;
}

export interface ChunkCollectionInit {
  /** A chunk no version references is removed once its file is older than this (default 24 h). */
  graceMs?: number | undefined;
  /** A pass at least this often (default 10 min). */
  everyMs?: number | undefined;
  /** The most removals a pass (default 1000). */
  maxRemovals?: number | undefined;
  /** The wait between a change and its pass, and between bounded passes (default 1 s). */
  soonMs?: number | undefined;
}

export interface ChunkCollectionStats {
  passes: number;
  /** Passes not run: what to keep was not known whole. */
  passesSkipped: number;
  removedChunks: number;
  removedBytes: number;
  failures: number;
  lastPass: (CollectionPass & { atMs: number }) | undefined;
  lastError: string | undefined;
}

export const DEFAULT_COLLECTION = { graceMs: 24 * 3_600_000, everyMs: 600_000, maxRemovals: 1000, soonMs: 1000 } as const;

export class ChunkCollection {
  readonly stats: ChunkCollectionStats = { passes: 0, passesSkipped: 0, removedChunks: 0, removedBytes: 0, failures: 0, lastPass: undefined, lastError: undefined };
  readonly #c: ChunkCollectionComponents;
  readonly #init: { readonly [K in keyof typeof DEFAULT_COLLECTION]: number };
  readonly #log: Logger;
  readonly #abort = new AbortController();
  #periodic: TimerHandle | undefined;
  #soon: TimerHandle | undefined;
  #running: Promise<void> | undefined;
  #again = false;

  constructor(components: ChunkCollectionComponents, init: ChunkCollectionInit = {}) {
    this.#c = components;
    this.#init = {
      graceMs: init.graceMs ?? DEFAULT_COLLECTION.graceMs, everyMs: init.everyMs ?? DEFAULT_COLLECTION.everyMs,
      maxRemovals: init.maxRemovals ?? DEFAULT_COLLECTION.maxRemovals, soonMs: init.soonMs ?? DEFAULT_COLLECTION.soonMs,
    };
    this.#log = componentLogger(components.logger, 'chunk-collection', { site: components.store.site });
    this.#periodic = components.clock.setInterval(() => this.schedule(0), this.#init.everyMs);
  }

  /** A pass after `delayMs` (default: soon); several asks before it runs make one pass. */
  schedule(delayMs = this.#init.soonMs): void {
    if (this.#abort.signal.aborted || this.#soon !== undefined) return;
    this.#soon = this.#c.clock.setTimeout(() => {
      this.#soon = undefined;
      void this.runNow();
    }, delayMs);
  }

  /** One pass now (after the one running, if any); resolves when it is over. Never throws: a failure is counted and logged. */
  async runNow(): Promise<void> {
    if (this.#running !== undefined) {
      this.#again = true;
      return this.#running;
    }
    this.#running = this.#pass().finally(() => {
      this.#running = undefined;
      if (this.#again) {
        this.#again = false;
        this.schedule();
      }
    });
    return this.#running;
  }

  async #pass(): Promise<void> {
    const live = this.#c.live();
    if (live === undefined) {
      this.stats.passesSkipped++;
      return;
    }
    try {
      const pass = await collectChunks(this.#c.store, live, {
        nowMs: this.#c.clock.wallNow(), graceMs: this.#init.graceMs, maxRemovals: this.#init.maxRemovals, signal: this.#abort.signal,
        onRemoved: (_digest, bytes) => {
          this.stats.removedChunks++;
          this.stats.removedBytes += bytes;
        },
      });
      this.stats.passes++;
      this.stats.lastPass = { ...pass, atMs: this.#c.clock.wallNow() };
      if (pass.removedChunks > 0) this.#log.info({ removed: pass.removedChunks, bytes: pass.removedBytes, kept: pass.live, young: pass.young, more: pass.more }, 'chunks no image version needs removed');
      if (pass.more) this.schedule();
    } catch (err) {
      if (this.#abort.signal.aborted) return;
      this.stats.failures++;
      this.stats.lastError = (err as Error).message;
      this.#log.warn({ err }, 'chunk collection pass failed (what it removed is gone whole; the next pass goes on)');
    }
  }

  async close(): Promise<void> {
    this.#abort.abort();
    this.#periodic?.cancel();
    this.#soon?.cancel();
    this.#periodic = undefined;
    this.#soon = undefined;
    await this.#running;
  }
}

/** The collection's counters on the daemon's metrics registry (docs/metrics.md), read when scraped. */
export function registerCollectionMetrics(registry: Registry, collection: ChunkCollection): void {
  const registers = [registry];
  const counter = (name: string, help: string, read: () => number): void => {
    new Counter({ name, help, registers, collect(this: Counter) { this.reset(); this.inc(read()); } });
  };
  counter('vnet_daemon_image_chunks_collected_total', 'Chunks the site\'s chunk store removed because no image version it keeps references them', () => collection.stats.removedChunks);
  counter('vnet_daemon_image_collected_bytes_total', 'Bytes of the chunks removed by collection', () => collection.stats.removedBytes);
  counter('vnet_daemon_image_collection_passes_total', 'Collection passes run over the chunk store', () => collection.stats.passes);
  counter('vnet_daemon_image_collection_failures_total', 'Collection passes that failed (a removal error; the next pass goes on)', () => collection.stats.failures);
  new Gauge({
    name: 'vnet_daemon_image_chunks_stored', help: 'Chunks in the site\'s chunk store at the last collection pass', registers,
    collect(this: Gauge) { this.set(collection.stats.lastPass?.examined ?? 0); },
  });
}
