/**
 * bench/cutover — what a VM's move costs the traffic around it, side by side
 * in one run (root): frames lost and the longest gap of a ping every 10 ms
 * from a VM on a third host, the time until the VM answers again, and
 * whether a continuous checked TCP stream into the VM survives intact.
 *
 *   vxlan   kernel bridges joined by VXLAN (flood and learn); the VM's port
 *           moved to the other host's bridge; the VM's gratuitous ARP
 *   vnet    the overlay (hub and three spokes, `vnet daemon` processes); the
 *           namespace VM live-migrated by the controller, its TAP attachment
 *           handed from one daemon to the other (vnet-overlay.ts)
 *
 * and the same two for a real Linux guest under QEMU (TCG, 128 MiB), moved
 * by QEMU's own live migration: on the VXLAN bridges through TAP devices
 * (qemu-vxlan-baseline.ts), and on vnet through stream ports, the stream
 * carried over the daemons' migration channel (vnet-overlay.ts with qemu:
 * 'stream'), and on vnet with the guest's NIC on a TAP device that QEMU holds
 * and each daemon reads through a packet-socket port (qemu: 'tap').
 * The TCP stream bounces off the guest's echo service there.
 *
 * Columns: pings lost / sent; the longest gap between two replies over the
 * whole run (with several moves, late gaps included); "answers again": from
 * the move until the first reply to a ping sent after it — VXLAN: from the
 * VM's port leaving the source's bridge; vnet, namespace VM: from the
 * source's pause to the first reply whose request (its print moment less its
 * round trip) was sent after it, the worst move; QEMU: the source's STOP to
 * the first reply after the destination's RESUME; the migration's cutover
 * time from its API (pause → every daemon acknowledged; vnet only, the worst
 * move); frames the path counted lost at the cutover (vnet's daemons; VXLAN
 * counts none); a QEMU guest's own downtime (source STOP to destination
 * RESUME); the TCP stream's verdict.
 *
 * `--moves N`: vnet's namespace VM moves back and forth N times under one
 * ping (the row shows the worst move), then where each move's cutover time
 * went, phase by phase, and each move's ping gaps (phases.ts), each gap over
 * 100 ms with what the kernel says of the pinger's, each daemon's and the
 * controller's scheduling over it (sched-watch.ts: ran, or waited runnable)
 * and why it happened: ping not scheduled, the daemons on the path not
 * scheduled (the machine's load), or neither (the network).
 *
 * A vnet QEMU row also prints how its ping gap at the cutover divides up:
 * ping's sampling before the STOP, QEMU's downtime (STOP → RESUME), the
 * guest waking (RESUME → its first answer out of its NIC, a ping already
 * waiting in its QEMU), and that answer's trip to the pinger (the network's
 * part); the guest's own downtime is the STOP → that answer.
 *
 * `--timeline`: a QEMU move's moments on one time line, ms after the source's
 * STOP (timeline.ts): QMP events, the daemons' and the controller's steps,
 * the probes' edges.
 *
 * Usage (root): node --import tsx bench/cutover/run.ts [--only namespace|qemu|qemu-tap] [--moves N] [--timeline]
 */
import { qemuVxlanBaseline } from './qemu-vxlan-baseline.ts';
import { longestGapNote, phaseReport } from './phases.ts';
import { gapAccountLines } from './timeline.ts';
import { vnetOverlay } from './vnet-overlay.ts';
import { vxlanBaseline, type CutoverFigures } from './vxlan-baseline.ts';

const tag = Math.random().toString(36).slice(2, 6);
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
const moves = process.argv.includes('--moves') ? Number(process.argv[process.argv.indexOf('--moves') + 1]) : 1;
if (!Number.isInteger(moves) || moves < 1 || moves > 100) throw new Error(`--moves: a whole number 1..100, not ${process.argv[process.argv.indexOf('--moves') + 1]}`);
const rows: CutoverFigures[] = [];
if (only !== undefined && !['namespace', 'qemu', 'qemu-tap'].includes(only)) throw new Error(`--only: namespace, qemu or qemu-tap, not ${only}`);
if (only === undefined || only === 'namespace') rows.push(await vxlanBaseline(tag), await vnetOverlay({ moves }));
if (only === undefined || only === 'qemu') rows.push(await qemuVxlanBaseline(`q${tag}`), await vnetOverlay({ qemu: 'stream' }));
// qemu: the TAP case too, beside the stream case; qemu-tap: that case alone.
if (only === undefined || only === 'qemu' || only === 'qemu-tap') rows.push(await vnetOverlay({ qemu: 'tap' }));

const ms = (n: number | undefined): string => (n === undefined || Number.isNaN(n) ? '—' : n.toFixed(1));
console.log(`${'path'.padEnd(42)} ${'pings lost'.padStart(10)} ${'max gap ms'.padStart(10)} ${'answers again ms'.padStart(16)} ${'cutover ms'.padStart(10)} ${'frames lost'.padStart(11)} ${'guest down ms'.padStart(13)}  TCP stream`);
for (const r of rows) {
  const tcp = r.stream.intact ? `intact (${(r.stream.bytes / 1024).toFixed(0)} KiB)` : `BROKEN: ${r.stream.error ?? '?'}`;
  console.log(`${r.path.padEnd(42)} ${`${r.ping.lost}/${r.ping.sent}`.padStart(10)} ${r.ping.maxGapMs.toFixed(1).padStart(10)} ${ms(r.cutoverMs).padStart(16)} ${ms(r.acknowledgedMs).padStart(10)} ${(r.framesLost === undefined ? '—' : String(r.framesLost)).padStart(11)} ${ms(r.guestDowntimeMs).padStart(13)}  ${tcp}`);
}
// A QEMU guest: its own downtime against the ping's gap (timeline.ts; with --timeline, at the end of each time line).
for (const r of rows) if (r.gapAccount !== undefined && !process.argv.includes('--timeline')) console.log(['', `${r.path}:`, ...gapAccountLines(r.gapAccount).map((l) => `  ${l}`)].join('\n'));
// With several moves the longest gap may be anyone's: where it fell and who was not scheduled over it.
for (const r of rows) if (r.moves !== undefined && r.moves.length > 1 && r.sched !== undefined) console.log(`${r.path}: ${longestGapNote(r.moves, r.ping, r.sched) ?? 'no gap'}`);
if (process.argv.includes('--timeline')) for (const r of rows) if (r.timeline !== undefined) console.log(['', ...r.timeline].join('\n'));
for (const r of rows) if (r.moves !== undefined && r.moves.length > 1) console.log(['', ...phaseReport(r.moves, r.ping, r.events, r.sched)].join('\n'));
process.exit(0);
