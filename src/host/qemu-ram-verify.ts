/**
 * A QEMU VM's copy verified before it may run: the source's stopped guest
 * and the destination's loaded copy must have the same RAM.
 *
 *   source        after QEMU's `completed` (the guest stopped here for good
 *                 until the verdict): the RAM's digest (qemu-ram-digest.ts)
 *                 as one `vnet-qemu-ram/1` line (qemu-ram-line.ts) on the
 *                 migration's second channel, which then ends
 *   destination   once the incoming QEMU (`-S`: the guest does not run) has
 *                 loaded the stream: its own digest, the source's line
 *                 (bounded by the receive's deadline), compared. Equal:
 *                 `ready`; different: QemuMemoryMismatchError (`failed`,
 *                 the coordinator aborts, the source runs the guest again);
 *                 no line: QemuRamLineError (cannot verify: not ready)
 *
 * Why: QEMU 7.2 under TCG now and then loses a dirty page (its dirty
 * tracking races the vCPU's writes) and delivers a corrupt guest that dies
 * after `cont`, while vnet carried the stream byte-exact (docs/migration-protocol.md).
 *
 * Fault injection (tests only): with VNET_FAULT_QEMU_RAM_DIGEST=destination
 * in its environment a destination flips one bit of the digest it computed,
 * so the copy is refused as a mismatch; it says so in a warning.
 */
import type { Duplex } from 'node:stream';
import type { Clock } from '../common/clock.ts';
import type { VnetError } from '../common/errors.ts';
import type { Logger } from '../common/logger.ts';
import { readChannelLine } from './channel-hello.ts';
import { QemuMemoryMismatchError, QemuRamDigestError, QemuRamLineError } from './errors.ts';
import { digestQemuRam, type QemuRamDigest, type RamRangeDigest } from './qemu-ram-digest.ts';
import { encodeQemuRamLine, MAX_QEMU_RAM_LINE, parseQemuRamLine } from './qemu-ram-line.ts';
import type { QemuVm } from './qemu-vm.ts';

/** The fault-injection hook's environment variable (tests only; see the header). */
export const QEMU_RAM_FAULT_ENV = 'VNET_FAULT_QEMU_RAM_DIGEST';

/** The destination's log line once its copy matched the source's digest. */
export const QEMU_VERIFIED_LOG = 'QEMU copy verified: its RAM equals the source\'s';

export interface TimedRamDigest extends RamRangeDigest {
  /** How long reading and hashing took (ms; it adds to the guest's downtime). */
  readonly digestMs: number;
}

/** The digest of `vm`'s stopped guest. Throws QemuRamDigestError. */
export async function digestStoppedGuest(vm: QemuVm, clock: Clock, signal: AbortSignal): Promise<TimedRamDigest> {
  const pid = vm.process.pid;
  if (pid === undefined) throw new QemuRamDigestError(`VM ${vm.name}: QEMU has no process`);
  const t0 = clock.now();
  const d = await digestQemuRam(pid, vm.spec.memoryMiB, { signal });
  return { ...d, digestMs: Math.round(clock.now() - t0) };
}

/** Source: the stopped guest's digest onto the second channel, which then ends. Throws QemuRamDigestError. */
export async function sendQemuRamDigest(vm: QemuVm, channel: Duplex, clock: Clock, signal: AbortSignal): Promise<TimedRamDigest> {
  const d = await digestStoppedGuest(vm, clock, signal);
  channel.end(encodeQemuRamLine(d));
  return d;
}

/** Destination: the source's line off the second channel (start it early: it runs until the line, a close or `signal`). */
export async function readQemuRamLine(channel: Duplex, signal: AbortSignal): Promise<QemuRamDigest | VnetError> {
  const r = await readChannelLine(channel, signal, MAX_QEMU_RAM_LINE);
  if (r.state === 'closed') return new QemuRamLineError('the source\'s second channel closed without its vnet-qemu-ram/1 line: the copy cannot be verified');
  if (r.state === 'error') return new QemuRamLineError(`the vnet-qemu-ram/1 line: ${r.error.message}`);
  return parseQemuRamLine(r.line);
}

export interface VerifyCopyInit {
  readonly id: string;
  readonly vm: QemuVm;
  readonly sourceLine: Promise<QemuRamDigest | VnetError>;
  readonly clock: Clock;
  readonly signal: AbortSignal;
  readonly log: Logger;
  /** Where the fault hook is read (default: this process's environment). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export type VerifyCopyResult =
  | { readonly ok: true; readonly digest: TimedRamDigest }
  | { readonly ok: false; readonly error: VnetError };

/** Destination: the loaded copy's digest against the source's. Never throws. */
export async function verifyQemuCopy(o: VerifyCopyInit): Promise<VerifyCopyResult> {
  let mine: TimedRamDigest;
  try {
    mine = await digestStoppedGuest(o.vm, o.clock, o.signal);
  } catch (err) {
    return { ok: false, error: err as VnetError };
  }
  if ((o.env ?? process.env)[QEMU_RAM_FAULT_ENV] === 'destination') {
    mine = { ...mine, xxh64: flipLastBit(mine.xxh64) };
    o.log.warn({ id: o.id, hook: QEMU_RAM_FAULT_ENV }, 'fault injection: one bit of this copy\'s RAM digest flipped');
  }
  const theirs = await o.sourceLine;
  if (theirs instanceof Error) return { ok: false, error: theirs };
  if (theirs.bytes !== mine.bytes || theirs.xxh64 !== mine.xxh64) {
    const src = `${theirs.xxh64} over ${theirs.bytes} bytes`;
    const dst = `${mine.xxh64} over ${mine.bytes} bytes`;
    return { ok: false, error: new QemuMemoryMismatchError(o.id, src, dst) };
  }
  o.log.info({ id: o.id, xxh64: mine.xxh64, bytes: mine.bytes, digestMs: mine.digestMs, reader: mine.reader }, QEMU_VERIFIED_LOG);
  return { ok: true, digest: mine };
}

function flipLastBit(hex: string): string {
  return hex.slice(0, -1) + (parseInt(hex.slice(-1), 16) ^ 1).toString(16);
}
