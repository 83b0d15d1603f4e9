/**
 * bench/cutover — what a VM's move costs the traffic around it, side by side
 * in one run (root): frames lost and the longest gap of a ping every 10 ms
 * from a VM on a third host, the time until the VM answers again, and
 * whether a continuous checked TCP stream into the VM survives intact.
 *
 *   vxlan   kernel bridges joined by VXLAN (flood and learn); the VM's port
 *           moved to the other host's bridge; the VM's gratuitous ARP
 *
 * Usage (root): node --import tsx bench/cutover/run.ts
 */
import { vxlanBaseline, type CutoverFigures } from './vxlan-baseline.ts';

const tag = Math.random().toString(36).slice(2, 6);
const rows: CutoverFigures[] = [await vxlanBaseline(tag)];

console.log(`${'path'.padEnd(34)} ${'pings lost'.padStart(10)} ${'max gap ms'.padStart(10)} ${'answers again ms'.padStart(16)}  TCP stream`);
for (const r of rows) {
  const tcp = r.stream.intact ? `intact (${(r.stream.bytes / 1024).toFixed(0)} KiB)` : `BROKEN: ${r.stream.error ?? '?'}`;
  console.log(`${r.path.padEnd(34)} ${`${r.ping.lost}/${r.ping.sent}`.padStart(10)} ${r.ping.maxGapMs.toFixed(1).padStart(10)} ${r.cutoverMs.toFixed(1).padStart(16)}  ${tcp}`);
}
