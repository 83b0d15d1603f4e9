/**
 * The first line of a QEMU VM's migration channel, before QEMU's own
 * migration stream: what the destination needs to start the same machine
 * with `-incoming` (QEMU refuses a stream from a machine of another shape).
 *
 *   vnet-qemu/1 {"memoryMiB":128,"mac":"02:00:00:00:0a:00"}\n
 *
 * Only these fields, checked strictly: the destination builds a command line
 * from them, so nothing else a peer sends reaches it.
 */
import { z } from 'zod';
import { formatMac, isMacString, parseMac } from '../common/mac.ts';
import { parseJsonAfter } from './channel-hello.ts';
import { QemuStreamHeaderError } from './errors.ts';
import { MIN_QEMU_MEMORY_MIB } from './qemu-vm.ts';

const PREFIX = 'vnet-qemu/1 ';

const headerSchema = z.strictObject({
  memoryMiB: z.number().int().min(MIN_QEMU_MEMORY_MIB).max(4096),
  mac: z.string().max(17).refine(isMacString, 'not a MAC address').transform((s) => formatMac(parseMac(s))),
});

export type QemuStreamHeader = z.output<typeof headerSchema>;

export function encodeQemuStreamHeader(h: QemuStreamHeader): Buffer {
  return Buffer.from(`${PREFIX}${JSON.stringify({ memoryMiB: h.memoryMiB, mac: h.mac })}\n`, 'latin1');
}

/** Parses the header line (without its newline); a QemuStreamHeaderError says what is wrong. */
export function parseQemuStreamHeader(line: string): QemuStreamHeader | QemuStreamHeaderError {
  if (!line.startsWith(PREFIX)) return new QemuStreamHeaderError(`the channel does not start with "${PREFIX.trim()}": not a QEMU migration stream`);
  const r = parseJsonAfter(line, PREFIX, headerSchema, 'the vnet-qemu/1 header');
  return typeof r === 'string' ? new QemuStreamHeaderError(r) : r;
}
