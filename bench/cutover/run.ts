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
 * Columns: pings lost / sent; the longest gap between replies; from the
 * pause until the VM answers again; the migration's cutover time from its
 * API (pause → every daemon acknowledged; vnet only); frames the path
 * counted lost at the cutover (vnet's daemons; VXLAN counts none); the TCP
 * stream's verdict.
 *
 * Usage (root): node --import tsx bench/cutover/run.ts
 */
import { vnetOverlay } from './vnet-overlay.ts';
import { vxlanBaseline, type CutoverFigures } from './vxlan-baseline.ts';

const tag = Math.random().toString(36).slice(2, 6);
const rows: CutoverFigures[] = [await vxlanBaseline(tag), await vnetOverlay()];

const ms = (n: number | undefined): string => (n === undefined || Number.isNaN(n) ? '—' : n.toFixed(1));
console.log(`${'path'.padEnd(34)} ${'pings lost'.padStart(10)} ${'max gap ms'.padStart(10)} ${'answers again ms'.padStart(16)} ${'cutover ms'.padStart(10)} ${'frames lost'.padStart(11)}  TCP stream`);
for (const r of rows) {
  const tcp = r.stream.intact ? `intact (${(r.stream.bytes / 1024).toFixed(0)} KiB)` : `BROKEN: ${r.stream.error ?? '?'}`;
  console.log(`${r.path.padEnd(34)} ${`${r.ping.lost}/${r.ping.sent}`.padStart(10)} ${r.ping.maxGapMs.toFixed(1).padStart(10)} ${ms(r.cutoverMs).padStart(16)} ${ms(r.acknowledgedMs).padStart(10)} ${(r.framesLost === undefined ? '—' : String(r.framesLost)).padStart(11)}  ${tcp}`);
}
process.exit(0);
