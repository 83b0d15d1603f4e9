/**
 * The commit at the source (source-migration.ts): letting go of the VM.
 *
 * In order, while the port is still held (frames to the VM queue here): a
 * port that can hand its attachment over (`handOffPortOf`: a TAP device the
 * destination attached to on this kernel) steers every new frame from the
 * VM to the destination's queue, reads what is queued on its own (frames
 * from the VM, forwarded like any other) and closes (`handOffAttachment`);
 * the held frames go onto the link to the destination
 * (`flushToDestination`), after what a QEMU guest that stopped on its own
 * never took (`qemuReclaim`: delivered since its STOP, or left unread on
 * its TAP device). Then `dropVm`: the runtime lets go of the VM (a
 * namespace VM stays frozen for the destination to thaw; a QEMU quits) and
 * the port is removed.
 *
 * A step that fails is logged and the next one runs: the VM is the
 * destination's from the commit on.
 */
import type { AgentContext } from './agent-context.ts';
import type { HoldStats, Reclaim } from './migration-daemon.ts';
import { unreadTapFrames } from './qemu-unread.ts';
import type { QemuVm } from './qemu-vm.ts';
import type { VmRuntime } from './vm-runtime.ts';
import type { Port } from '../dataplane/port.ts';
import { DEFAULT_HOLD_LIMIT } from '../dataplane/port-outlet.ts';
import type { HandOffResult } from '../dataplane/tap-port.ts';

/** A port whose attachment can be handed to another queue of its device (a multi-queue TAP port). */
export interface HandOffPort extends Port {
  handOff(opts: { steer?: boolean }): Promise<HandOffResult>;
}

function isHandOffPort(port: Port): port is HandOffPort {
  return typeof (port as Partial<HandOffPort>).handOff === 'function' && (port as { multiQueue?: boolean }).multiQueue === true;
}

/** The VM's port if its attachment can be handed over (checked at once: a port that cannot goes straight to the flush). */
export function handOffPortOf(ctx: AgentContext, portName: string): HandOffPort | undefined {
  const port = ctx.daemon.port(portName);
  return port !== undefined && isHandOffPort(port) ? port : undefined;
}

/** Hand the port's attachment to the destination's queue: what it drained and whether it steered (undefined if it could not). */
export async function handOffAttachment(ctx: AgentContext, id: string, port: HandOffPort): Promise<HandOffResult | undefined> {
  try {
    return await port.handOff({ steer: true });
  } catch (err) {
    ctx.log.warn({ id, err: String(err) }, 'cannot hand the TAP attachment over');
    return undefined;
  }
}

/**
 * What a QEMU guest that stopped on its own never took: delivered since its
 * STOP (`stoppedAtMs`), and — on a TAP device — still queued there, read
 * back from QEMU's own file (qemu-unread.ts; a failure is logged and the
 * STOP alone decides).
 */
export function qemuReclaim(ctx: AgentContext, id: string, vm: QemuVm, stoppedAtMs: number | undefined): Reclaim {
  if (vm.spec.tap === undefined || vm.process.pid === undefined) return { sinceMs: stoppedAtMs };
  try {
    return { sinceMs: stoppedAtMs, unread: unreadTapFrames(vm.process.pid, vm.spec.tap, DEFAULT_HOLD_LIMIT) };
  } catch (err) {
    ctx.log.warn({ id, err: String(err) }, 'cannot read back what the stopped QEMU left on its TAP');
    return { sinceMs: stoppedAtMs };
  }
}

/**
 * The held frames onto the link to `to` — first, with `reclaim`, what the
 * stopped guest never took: their counts, and when they went (wall clock,
 * ms; undefined if they could not).
 */
export function flushToDestination(ctx: AgentContext, id: string, portName: string, to: string, reclaim?: Reclaim): { hold: HoldStats | undefined; flushedAtMs: number | undefined } {
  try {
    const hold = ctx.daemon.releasePort(portName, { link: to }, reclaim === undefined ? {} : { reclaim });
    return { hold, flushedAtMs: Math.round(ctx.clock.wallNow()) };
  } catch (err) {
    ctx.log.warn({ id, err: String(err) }, 'cannot release the held frames to the destination');
    return { hold: ctx.daemon.holdStats(portName), flushedAtMs: undefined };
  }
}

/** The runtime lets go of the VM, then its port is removed. */
export async function dropVm(ctx: AgentContext, id: string, runtime: VmRuntime | undefined, portName: string, to: string): Promise<void> {
  await runtime?.relinquish?.().catch((err: unknown) => ctx.log.warn({ id, err: String(err) }, 'VM runtime relinquish failed'));
  await ctx.daemon.removePort(portName, `migrated to ${to}`);
}
