/**
 * The one line on a QEMU migration's second channel: the digest of the
 * source's stopped guest's RAM, sent once QEMU's migration `completed`
 * (qemu-ram-digest.ts), against which the destination checks its copy.
 *
 *   vnet-qemu-ram/1 {"xxh64":"53b337df42825c91","bytes":134217728}\n
 *
 * Only these fields, checked strictly (16 lowercase hex digits; a whole
 * number of MiB, at most 4096 MiB as the VM's memory); anything else is a
 * QemuRamLineError saying what.
 */
import { z } from 'zod';
import { parseJsonAfter } from './channel-hello.ts';
import { QemuRamLineError } from './errors.ts';
import type { QemuRamDigest } from './qemu-ram-digest.ts';

const PREFIX = 'vnet-qemu-ram/1 ';
const MIB = 1024 * 1024;
/** The longest line the destination reads (the newline excluded). */
export const MAX_QEMU_RAM_LINE = 128;

const lineSchema = z.strictObject({
  xxh64: z.string().regex(/^[0-9a-f]{16}$/, '16 lowercase hex digits'),
  bytes: z.number().int().min(MIB).max(4096 * MIB).refine((n) => n % MIB === 0, 'a whole number of MiB'),
});

export function encodeQemuRamLine(d: QemuRamDigest): Buffer {
  return Buffer.from(`${PREFIX}${JSON.stringify({ xxh64: d.xxh64, bytes: d.bytes })}\n`, 'latin1');
}

/** Parses the line (without its newline); a QemuRamLineError says what is wrong. */
export function parseQemuRamLine(line: string): QemuRamDigest | QemuRamLineError {
  if (!line.startsWith(PREFIX)) return new QemuRamLineError(`the second channel does not start with "${PREFIX.trim()}": not a QEMU RAM digest`);
  const r = parseJsonAfter(line, PREFIX, lineSchema, 'the vnet-qemu-ram/1 line');
  return typeof r === 'string' ? new QemuRamLineError(r) : r;
}
