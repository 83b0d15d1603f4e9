import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Clock } from '../common/clock.ts';
import { realClock } from '../common/clock.ts';
import { HandshakeError, RecordLayerError } from './errors.ts';
import { directionsFromMaterial, exporterFor, recordVersionOf, type RecordVersion } from './record-keys.ts';
import { DEFAULT_LIMITS, DEFAULT_REKEY, type RecordLimits, type RekeyThresholds } from './record-layer.ts';
import { RecordSocket } from './record-socket.ts';
import type { LinkRole } from './wire-messages.ts';

/**
 * The switch of a TLS link's TCP connection from TLS records to native
 * records (record-layer.ts), right after the TLS handshake, when both ends
 * offered a records version in ALPN (record-keys.ts: `vnet-records/2`, with
 * rekeying, or `/1`; docs/wire-protocol.md, "Native records"). Node's TLS
 * socket reads greedily, so neither side may send a raw byte that the other's
 * TLS layer could still swallow:
 *
 *   dialer     derives the keys (TLS exporter), sends SWITCH as its last TLS
 *              record and writes nothing more; reads TLS until ACK.
 *   listener   derives the keys, reads TLS until SWITCH, stops its TLS reads,
 *              answers ACK as its last TLS record, and writes nothing raw until
 *              it has opened the dialer's first record (RecordSocket holds its
 *              writes): that record proves the dialer's TLS reads stopped.
 *   dialer     on ACK stops its TLS reads and sends its first record (the
 *              link's hello) raw.
 *   check      SWITCH and ACK must come alone: a byte more in the TLS stream
 *              (now or later, from what the TLS layer had already read) fails
 *              the switch with VNET_ERR_RECORD_SWITCH; so does an end, an
 *              error or the time limit. The link is not opened then; the
 *              dialer redials.
 *
 * Both ends then read the TCP socket through a dup() of its fd (the TLS socket
 * keeps the original, reads stopped, and its certificate for the hello check).
 */

/** SWITCH and ACK: "VNRL", version 1, 1 (switch) or 2 (ack), two zero bytes. */
export const SWITCH_MESSAGE = Buffer.from([0x56, 0x4e, 0x52, 0x4c, 1, 1, 0, 0]);
export const ACK_MESSAGE = Buffer.from([0x56, 0x4e, 0x52, 0x4c, 1, 2, 0, 0]);

/** The native records version the TLS handshake agreed on (both ends offered it), if any. */
export function agreedOnRecords(tls: TLSSocket): RecordVersion | undefined {
  return recordVersionOf(tls.alpnProtocol);
}

export interface SwitchOptions {
  role: LinkRole;
  timeoutMs: number;
  clock?: Clock | undefined;
  limits?: RecordLimits | undefined;
  /** vnet-records/2: when each direction moves to its next key (default DEFAULT_REKEY). */
  rekey?: RekeyThresholds | undefined;
}

interface TlsInternals {
  _handle?: { readStop?: () => number; _parent?: { fd?: number } | null } | null;
}

/** Switch `tls` to native records (see the header); rejects with RecordLayerError (VNET_ERR_RECORD_SWITCH), or HandshakeError when the connection ends or fails first. */
export async function switchToRecords(tls: TLSSocket, opts: SwitchOptions): Promise<RecordSocket> {
  const version = agreedOnRecords(tls);
  const fail = (why: string, cause?: unknown): RecordLayerError => new RecordLayerError('VNET_ERR_RECORD_SWITCH', `switch to native records failed: ${why}`, cause === undefined ? undefined : { cause });
  if (version === undefined) throw fail(`the TLS handshake agreed on no records version (ALPN ${String(tls.alpnProtocol)})`);
  let material: Buffer;
  try {
    const exporter = exporterFor(version);
    material = tls.exportKeyingMaterial(exporter.bytes, exporter.label, Buffer.alloc(0));
  } catch (err) {
    throw fail('the TLS exporter gave no key material', err);
  }
  const { tx, rx } = directionsFromMaterial(material, opts.role, version);
  material.fill(0);
  const dialer = opts.role === 'dialer';
  if (dialer) tls.write(SWITCH_MESSAGE);
  const late = await readAlone(tls, dialer ? ACK_MESSAGE : SWITCH_MESSAGE, opts, fail);
  if (!dialer) await new Promise<void>((resolve, reject) => tls.write(ACK_MESSAGE, (err) => (err ? reject(fail('cannot send ACK', err)) : resolve())));
  const fd = (tls as unknown as TlsInternals)._handle?._parent?.fd;
  if (typeof fd !== 'number' || fd < 0) throw fail('the TLS socket has no TCP fd under it');
  let dup: number;
  try {
    dup = dupFd(fd);
  } catch (err) {
    throw fail('cannot dup the TCP fd', err);
  }
  const raw = new Socket({ fd: dup, readable: true, writable: true });
  raw.setNoDelay(true);
  const records = new RecordSocket({ raw, tls, role: opts.role, tx, rx, limits: opts.limits ?? DEFAULT_LIMITS, rekey: opts.rekey ?? DEFAULT_REKEY, clock: opts.clock ?? realClock });
  // Anything the TLS layer still hands up was sent after the switch: the peer broke it.
  const broken = (): void => {
    records.destroy(fail('the peer sent TLS data after the switch'));
  };
  if (late.seen) broken();
  else late.onLate = broken;
  return records;
}

/** Whether the TLS layer handed up bytes after SWITCH or ACK (what it had read before its reads stopped). */
interface LateData {
  seen: boolean;
  onLate: (() => void) | undefined;
}

/** Read exactly `want` from `tls`, then stop its reads at once; more, less, other bytes, an end or the time limit fail. */
function readAlone(tls: TLSSocket, want: Buffer, opts: SwitchOptions, fail: (why: string, cause?: unknown) => RecordLayerError): Promise<LateData> {
  return new Promise<LateData>((resolve, reject) => {
    let got = Buffer.alloc(0);
    const timer = (opts.clock ?? realClock).setTimeout(() => done(fail(`no ${want === ACK_MESSAGE ? 'ACK' : 'SWITCH'} within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    const onData = (chunk: Buffer): void => {
      got = Buffer.concat([got, chunk]);
      if (got.length < want.length && want.subarray(0, got.length).equals(got)) return;
      stopReads(tls);
      if (!got.equals(want)) done(fail(`expected ${want.toString('hex')} alone, got ${got.subarray(0, 32).toString('hex')} (${got.length} bytes)`));
      else done(undefined);
    };
    // Before the switch message, an end or error is the TLS handshake's (TLS 1.3: a client learns only now that the server refused its certificate).
    const onEnd = (): void => done(new HandshakeError('the peer closed the connection before the switch to native records'));
    const onError = (err: Error): void => done(new HandshakeError(`TLS connection failed before the switch to native records: ${err.message}`, { cause: err }));
    const done = (err: Error | undefined): void => {
      timer.cancel();
      tls.off('data', onData);
      tls.off('end', onEnd);
      tls.off('close', onEnd);
      tls.off('error', onError);
      if (err !== undefined) {
        tls.destroy();
        reject(err);
        return;
      }
      const late: LateData = { seen: false, onLate: undefined };
      tls.on('data', () => {
        late.seen = true;
        late.onLate?.();
      });
      resolve(late);
    };
    tls.on('data', onData);
    tls.on('end', onEnd);
    tls.on('close', onEnd);
    tls.on('error', onError);
  });
}

/**
 * Stop the TLS socket's reads of the TCP socket for good (its `reading` flag
 * stays set, so Node does not restart them). The stream stays flowing: what
 * the TLS layer had already read and still decrypts reaches the late-data check.
 */
function stopReads(tls: TLSSocket): void {
  (tls as unknown as TlsInternals)._handle?.readStop?.();
}

let addonDup: ((fd: number) => number) | undefined;

function dupFd(fd: number): number {
  if (addonDup === undefined) {
    const path = new URL('../../build/Release/vnet_tap.node', import.meta.url).pathname;
    const addon = createRequire(import.meta.url)(path) as { dupFd?: (fd: number) => number };
    if (addon.dupFd === undefined) throw new Error(`the TAP addon at ${path} predates native records; rebuild it (\`npm ci\`)`);
    addonDup = addon.dupFd;
  }
  return addonDup(fd);
}

/** Whether this build can switch to native records (the TAP addon with the record layer loads). */
export function recordsAvailable(): boolean {
  try {
    dupFd(-1);
  } catch (err) {
    return (err as { errno?: number }).errno === 9; // EBADF from the addon: it is there
  }
  return false;
}
