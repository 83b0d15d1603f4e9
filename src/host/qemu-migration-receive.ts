/**
 * Destination side of a QEMU VM's migration.
 *
 *   header     the channel's vnet-qemu/1 line (qemu-stream-header.ts): the
 *              machine's memory size, and the VM's MAC, which must be the
 *              prepared VM's
 *   QEMU       the same machine started with `-incoming defer -S` on the
 *              VM's port here (held: frames to the VM are queued): its
 *              stream socket, or the TAP device its packet port watches
 *   socket     `migrate-incoming unix:PATH` in the VM's directory; the agent
 *              connects and pipes the channel's bytes into it (and back)
 *   loaded     whichever comes first: QEMU's RARP for the VM's MAC on the
 *              port (QEMU announces the VM once its state is loaded,
 *              as OVN's activation-strategy=rarp watches for) or the QMP
 *              MIGRATION event `completed`. The guest does not run (-S) until
 *              the commit's `cont`.
 *   verified   the loaded copy's RAM digest equals the source's line on the
 *              second channel (qemu-ram-verify.ts): only then ready
 *   failure    a bad header, QEMU's `failed`, QEMU gone, no or a bad digest
 *              line, a copy that differs (QemuMemoryMismatchError), the
 *              deadline (over loading and verifying) or the signal: QEMU is
 *              stopped and the error returned
 */
import net from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import type { Clock } from '../common/clock.ts';
import type { VnetError } from '../common/errors.ts';
import type { Frame } from '../common/frame.ts';
import type { Logger } from '../common/logger.ts';
import { parseMac } from '../common/mac.ts';
import type { PacketPort } from '../dataplane/packet-port.ts';
import { StreamPort } from '../dataplane/stream-port.ts';
import type { MigrationVm } from './agent-context.ts';
import { readChannelLine } from './channel-hello.ts';
import { QemuMigrationError, QemuStreamHeaderError } from './errors.ts';
import type { QemuHost } from './qemu-host.ts';
import type { QemuRamDigest } from './qemu-ram-digest.ts';
import { readQemuRamLine, verifyQemuCopy, type TimedRamDigest } from './qemu-ram-verify.ts';
import { parseQemuStreamHeader, type QemuStreamHeader } from './qemu-stream-header.ts';
import type { QemuVm } from './qemu-vm.ts';

const ETHERTYPE_RARP = 0x8035;

export interface QemuReceiveInit {
  readonly id: string;
  readonly vm: MigrationVm;
  readonly channel: Duplex;
  /** The second channel: the source's RAM digest line. */
  readonly ramChannel: Duplex;
  /** The held port: a stream port (QEMU connects to its socket) or a packet port (QEMU attaches to its TAP device). */
  readonly port: StreamPort | PacketPort;
  readonly host: QemuHost;
  readonly clock: Clock;
  readonly signal: AbortSignal;
  readonly timeoutMs: number;
  readonly log: Logger;
}

export type QemuReceiveResult =
  | { readonly ok: true; readonly vm: QemuVm; readonly trigger: 'rarp' | 'event'; readonly readyAtMs: number; readonly ram: TimedRamDigest }
  | { readonly ok: false; readonly error: VnetError };

/** Whether `f` is a RARP frame from `mac` (what QEMU's announce-self sends). */
export function isRarpFrom(f: Frame, mac: number): boolean {
  const d = f.data;
  return d.length >= 14 && d.readUInt16BE(12) === ETHERTYPE_RARP && d.readUIntBE(6, 6) === mac;
}

export async function receiveQemuMigration(o: QemuReceiveInit): Promise<QemuReceiveResult> {
  const lineDone = new AbortController();
  const sourceLine = readQemuRamLine(o.ramChannel, AbortSignal.any([o.signal, lineDone.signal]));
  try {
    return await receiveVerified(o, sourceLine);
  } finally {
    lineDone.abort();
    // The line read (or never coming): this end of the second channel is done too.
    o.ramChannel.resume();
    o.ramChannel.end();
  }
}

async function receiveVerified(o: QemuReceiveInit, sourceLine: Promise<QemuRamDigest | VnetError>): Promise<QemuReceiveResult> {
  const header = await readHeader(o.channel, o.signal);
  if (header instanceof Error) return { ok: false, error: header as VnetError };
  if (header.header.mac !== o.vm.mac) return { ok: false, error: new QemuStreamHeaderError(`the stream is VM ${header.header.mac}'s, migration ${o.id} prepared ${o.vm.mac}`) };
  let vm: QemuVm;
  try {
    vm = await o.host.incoming({ name: o.vm.name ?? o.vm.port, mac: parseMac(o.vm.mac), port: o.vm.port, ...(o.port instanceof StreamPort ? { socketPath: o.port.path } : { tap: o.port.ifname }), memoryMiB: header.header.memoryMiB, ip: o.vm.ip });
  } catch (err) {
    return { ok: false, error: err as VnetError };
  }
  const mac = parseMac(o.vm.mac);
  let finish!: (r: QemuReceiveResult) => void;
  const done = new Promise<QemuReceiveResult>((resolve) => { finish = resolve; });
  let settled = false;
  const settle = (r: QemuReceiveResult): void => {
    if (settled) return;
    settled = true;
    finish(r);
  };
  const fail = (error: VnetError): void => settle({ ok: false, error });
  let verifying = false;
  // The stream is loaded (the guest stopped under -S): the copy is ready only once its RAM matches the source's.
  const loaded = (trigger: 'rarp' | 'event', readyAtMs: number): void => {
    if (settled || verifying) return;
    verifying = true;
    void verifyQemuCopy({ id: o.id, vm, sourceLine, clock: o.clock, signal: o.signal, log: o.log }).then((v) => {
      if (v.ok) settle({ ok: true, vm, trigger, readyAtMs, ram: v.digest });
      else fail(v.error);
    });
  };
  const unwatch = o.port.watch((frames) => { if (frames.some((f) => isRarpFrom(f, mac))) loaded('rarp', Math.round(o.clock.wallNow())); });
  const offEvents = vm.qmp.onEvent((e) => {
    if (e.event !== 'MIGRATION') return;
    const status = String(e.data.status);
    if (status === 'completed') loaded('event', Number.isFinite(e.timestamp) ? Math.round(e.timestamp * 1000) : Math.round(o.clock.wallNow()));
    else if (status === 'failed') fail(new QemuMigrationError(`migration ${o.id}: the incoming QEMU failed to load the stream: ${vm.process.outputTail().slice(-1000)}`));
  });
  const offExit = vm.process.onChange(() => {
    try { vm.process.checkAlive(); } catch (err) { fail(new QemuMigrationError(`migration ${o.id}: the incoming QEMU exited: ${(err as Error).message}`, { cause: err })); }
  });
  const onAbort = (): void => fail(new QemuMigrationError(`migration ${o.id}: cancelled`));
  o.signal.addEventListener('abort', onAbort, { once: true });
  const deadline = o.clock.setTimeout(() => fail(new QemuMigrationError(`migration ${o.id}: the stream did not complete within ${o.timeoutMs} ms`)), o.timeoutMs);
  let sock: net.Socket | undefined;
  try {
    await vm.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
    const path = join(vm.spec.dir, 'mig-in.sock');
    await vm.qmp.execute('migrate-incoming', { uri: `unix:${path}` });
    sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.createConnection({ path, allowHalfOpen: true }, () => resolve(s));
      s.once('error', reject);
    });
    sock.on('error', () => undefined);
    if (header.rest.length > 0) sock.write(header.rest);
    o.channel.pipe(sock);
    sock.pipe(o.channel);
    o.channel.resume();
    o.log.info({ id: o.id, memoryMiB: header.header.memoryMiB }, 'incoming QEMU receiving the stream');
  } catch (err) {
    fail(new QemuMigrationError(`migration ${o.id}: cannot start the incoming migration: ${(err as Error).message}`, { cause: err }));
  }
  const result = await done;
  o.signal.removeEventListener('abort', onAbort);
  deadline.cancel();
  unwatch();
  offEvents();
  offExit();
  if (!result.ok) {
    sock?.destroy();
    await vm.close();
  }
  return result;
}

/** The header line off the channel, and the bytes after it. */
async function readHeader(channel: Duplex, signal: AbortSignal): Promise<{ header: QemuStreamHeader; rest: Buffer } | VnetError> {
  const r = await readChannelLine(channel, signal, 512);
  if (r.state === 'closed') return new QemuMigrationError('the channel closed before the QEMU stream header');
  if (r.state === 'error') return new QemuStreamHeaderError(r.error.message);
  const h = parseQemuStreamHeader(r.line);
  return h instanceof QemuStreamHeaderError ? h : { header: h, rest: r.rest };
}
