import { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import type { Clock } from '../common/clock.ts';
import type { RecordLayerError } from './errors.ts';
import type { NativeRecordsAttach, NativeRecordsProgress } from './native-forwarder.ts';
import { RecordOpener, RecordSealer, rekeyAgeMs, type RecordLimits, type RekeyThresholds } from './record-layer.ts';
import type { RecordDirection, RecordKeyStatus } from './record-keys.ts';
import type { LinkRole } from './wire-messages.ts';

/**
 * A TLS link's TCP connection after the switch to native records
 * (tls-switch.ts): a Duplex of plaintext over `raw` (a dup of the TLS
 * socket's fd, which Node reads as plain bytes) that seals every write and
 * opens every read (record-layer.ts). The link (link.ts) uses it as its
 * socket; the TLS socket stays, reads stopped, for its certificate (`tls`,
 * which the link handshake checks the peer's hello against) until the end.
 *
 *   listener   holds its writes until the first record from the dialer was
 *              opened: only then is the dialer's TLS layer sure to have stopped
 *              reading (the switch, tls-switch.ts).
 *   native     `handOff` gives the forwarder the keys, generations, counters,
 *              the send key's age (not a time stamp: the thread's clock is
 *              CLOCK_MONOTONIC, ours the injected one) and rekey thresholds (the socket then neither reads nor writes:
 *              link-native.ts stops the raw handle's reads and writes through
 *              the forwarder); `takeBack` carries on from the forwarder's keys
 *              (which it may have updated, vnet-records/2) and counters, and the
 *              bytes of a record it had begun to read.
 *   errors     a record that does not verify, a bad length, an end inside a
 *              record, a used-up key: the socket is destroyed with the
 *              RecordLayerError, which the link closes with.
 */
export interface RecordSocketInit {
  raw: Socket;
  tls: TLSSocket;
  role: LinkRole;
  tx: RecordDirection;
  rx: RecordDirection;
  limits: RecordLimits;
  /** When a vnet-records/2 direction moves to its next key (unused on /1). */
  rekey: RekeyThresholds;
  /** What the send key's age is measured on (default the real clock). */
  clock?: Pick<Clock, 'now'> | undefined;
}


export class RecordSocket extends Duplex {
  readonly raw: Socket;
  readonly tls: TLSSocket;
  readonly #sealer: RecordSealer;
  #opener: RecordOpener;
  readonly #limits: RecordLimits;
  readonly #rekey: RekeyThresholds;
  /** Listener: writes held until the dialer's first record was opened. */
  #held: { chunks: Uint8Array[]; done: Array<(err?: Error | null) => void> } | undefined;

  constructor(init: RecordSocketInit) {
    super({ allowHalfOpen: false });
    this.raw = init.raw;
    this.tls = init.tls;
    this.#limits = init.limits;
    this.#rekey = init.rekey;
    this.#sealer = new RecordSealer(init.tx, init.limits, init.rekey, init.clock);
    this.#opener = new RecordOpener(init.rx, init.limits);
    if (init.role === 'listener') this.#held = { chunks: [], done: [] };
    const raw = init.raw;
    raw.on('data', (chunk: Buffer) => this.#received(chunk));
    raw.on('end', () => {
      const err = this.#opener.end();
      if (err !== undefined) this.destroy(err);
      else this.push(null);
    });
    raw.on('error', (err) => this.destroy(err));
    raw.on('close', () => this.destroy());
    init.tls.on('error', () => undefined); // its reads are stopped; the raw socket reports the connection's errors
  }

  get remoteAddress(): string | undefined {
    return this.raw.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.raw.remotePort;
  }

  /** The keys and counters for the native forwarder, and the bytes of a record begun (link-native.ts). */
  handOff(): NativeRecordsAttach {
    return { ...nativeRecordsAttach(this.#sealer.direction, this.#opener.direction, this.#limits, this.#rekey, this.#opener.pending), txAgeMs: this.#sealer.keyAgeMs };
  }

  /** The keys' progress while this socket seals and opens (the forwarder's own, while it holds them: native-forwarder.ts recordsInfo). */
  keyStatus(): RecordKeyStatus {
    const tx = this.#sealer.direction;
    const rx = this.#opener.direction;
    return {
      version: tx.secret === undefined ? 1 : 2,
      txGeneration: tx.generation, rxGeneration: rx.generation,
      txRecords: tx.seq, txBytes: tx.bytes, rxRecords: rx.seq, rxBytes: rx.bytes,
      txKeyAgeMs: this.#sealer.keyAgeMs,
    };
  }

  /** The forwarder took the keys (handOff, then a successful attach): erase ours until takeBack gives them back. */
  handedOff(): void {
    for (const d of [this.#sealer.direction, this.#opener.direction]) eraseKeys(d);
  }

  /** Carry on from the forwarder's keys and progress (it has let go of the fd). */
  takeBack(progress: NativeRecordsProgress): void {
    adoptProgress(progress, this.#sealer.direction, this.#opener.direction);
    if (progress.txAgeMs !== undefined) this.#sealer.keyAgeMs = progress.txAgeMs;
    this.#opener = new RecordOpener(this.#opener.direction, this.#limits);
    if (progress.cipher.length > 0) this.#received(progress.cipher);
  }

  /** Whether writes are still held (listener, before the dialer's first record). */
  get holding(): boolean {
    return this.#held !== undefined;
  }

  #received(chunk: Buffer): void {
    const { plain, error } = this.#opener.push(chunk);
    if (plain.length > 0) this.#release();
    for (const p of plain) if (!this.push(p)) this.raw.pause();
    if (error !== undefined) this.destroy(error);
  }

  #release(): void {
    const held = this.#held;
    if (held === undefined) return;
    this.#held = undefined;
    if (held.chunks.length === 0) return;
    this.#sealAndWrite(held.chunks, (err) => {
      for (const done of held.done) done(err);
    });
  }

  override _read(): void {
    if (this.raw.isPaused()) this.raw.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this._writev([{ chunk }], done);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, done: (err?: Error | null) => void): void {
    const held = this.#held;
    if (held !== undefined) {
      for (const c of chunks) held.chunks.push(c.chunk);
      held.done.push(done);
      return;
    }
    this.#sealAndWrite(chunks.map((c) => c.chunk), done);
  }

  #sealAndWrite(chunks: Uint8Array[], done: (err?: Error | null) => void): void {
    const sealed = this.#sealer.seal(chunks);
    if (sealed instanceof Error) {
      done(sealed satisfies RecordLayerError);
      return;
    }
    this.raw.write(sealed, (err) => done(err ?? null));
  }

  override _final(done: (err?: Error | null) => void): void {
    if (this.#held !== undefined) {
      done(); // nothing was ever sent raw: the peer's TLS layer may still be reading
      this.raw.destroy();
      return;
    }
    this.raw.end(() => done());
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.raw.destroy();
    this.tls.destroy();
    done(err);
  }
}

/** The TLS socket whose verified certificate vouches for the peer of `socket` (a TLS socket, or one switched to records). */
export function tlsOf(socket: unknown): TLSSocket | undefined {
  if (socket instanceof TLSSocket) return socket;
  if (socket instanceof RecordSocket) return socket.tls;
  return undefined;
}

/** A link's record state as the native forwarder takes it (rekeying on when the directions have secrets: vnet-records/2). */
export function nativeRecordsAttach(tx: RecordDirection, rx: RecordDirection, limits: RecordLimits, rekey: RekeyThresholds, cipher: Buffer): NativeRecordsAttach {
  const state: NativeRecordsAttach = {
    txKey: tx.key, txIv: tx.iv, txGeneration: tx.generation, txSeq: tx.seq, txBytes: tx.bytes,
    rxKey: rx.key, rxIv: rx.iv, rxGeneration: rx.generation, rxSeq: rx.seq, rxBytes: rx.bytes,
    maxRecords: limits.maxRecords, maxBytes: limits.maxBytes, cipher, txAgeMs: 0,
  };
  if (tx.secret === undefined || rx.secret === undefined) return state;
  return { ...state, txSecret: tx.secret, rxSecret: rx.secret, rekeyRecords: rekey.records, rekeyBytes: rekey.bytes, rekeyAgeMs: rekeyAgeMs(rekey) };
}

/** Take the forwarder's keys and counters into our directions (what they held is zeroed). */
export function adoptProgress(progress: NativeRecordsProgress, tx: RecordDirection, rx: RecordDirection): void {
  adopt(tx, progress.txKey, progress.txIv, progress.txSecret, progress.txGeneration, progress.txSeq, progress.txBytes);
  adopt(rx, progress.rxKey, progress.rxIv, progress.rxSecret, progress.rxGeneration, progress.rxSeq, progress.rxBytes);
}

function adopt(d: RecordDirection, key: Buffer, iv: Buffer, secret: Buffer | undefined, generation: number, seq: number, bytes: number): void {
  eraseKeys(d);
  d.key = key;
  d.iv = iv;
  d.secret = secret;
  d.generation = generation;
  d.seq = seq;
  d.bytes = bytes;
}

function eraseKeys(d: RecordDirection): void {
  for (const b of [d.key, d.iv, d.secret]) b?.fill(0);
}
