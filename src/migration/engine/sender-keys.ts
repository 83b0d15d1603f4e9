/**
 * The sender's image keys: every page of memory and disk keyed (content-key.ts)
 * before any phase is timed, so that the digests at `done` re-key only what
 * changed since — the paused guest's digest costs a fold, not a pass over its
 * RAM. A driver that shares its event loop with a data plane primes them in
 * slices (`primeSenderKeys`); otherwise the sender keys every page at once
 * when it is made (`senderKeys`).
 */
import type { Guest } from '../guest.ts';
import { ImageKeys, type ContentKeyer } from './content-key.ts';

/** The image keys a sender's digests at `done` come from. */
export interface SenderKeys {
  readonly mem: ImageKeys;
  readonly disk: ImageKeys;
}

/** Pages keyed per slice by primeSenderKeys (16 MiB of 4 KiB pages: a few ms to tens of ms, whatever the image's size). */
const PRIME_SLICE_PAGES = 4096;

/**
 * A sender's image keys, every page keyed in slices with `between()`
 * awaited after each: a driver sharing its event loop with a data plane
 * (the daemon's) primes them before it makes the sender, instead of the
 * constructor keying 256 MiB in one go. `withDisk`: the sender will migrate
 * the disk (as SenderInit.disk and the guest's disk decide).
 */
export async function primeSenderKeys(guest: Guest, keyer: ContentKeyer, withDisk: boolean, between: () => Promise<void>): Promise<SenderKeys> {
  const mem = ImageKeys.ofMemory(guest.memory, keyer);
  const disk = ImageKeys.ofDisk(withDisk ? guest.disk : undefined, keyer);
  await mem.prime(PRIME_SLICE_PAGES, between);
  await disk.prime(PRIME_SLICE_PAGES, between);
  return { mem, disk };
}

/** The sender's keys: `primed` if given, else made here with every page keyed at once. `withDisk`: the sender migrates the disk. */
export function senderKeys(guest: Guest, keyer: ContentKeyer, withDisk: boolean, primed: SenderKeys | undefined): SenderKeys {
  if (primed !== undefined) return primed;
  const mem = ImageKeys.ofMemory(guest.memory, keyer);
  mem.refresh();
  const disk = ImageKeys.ofDisk(withDisk ? guest.disk : undefined, keyer);
  disk.refresh();
  return { mem, disk };
}
