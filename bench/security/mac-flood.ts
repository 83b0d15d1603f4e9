/**
 * What a misbehaving VM costs the others (root): the overlay of
 * test/security/port-security.priv.test.ts — the controller in this process,
 * a hub and three spokes as `vnet daemon` processes, namespace VMs — with vm0
 * on c1 pinging vm1 on c2 every 20 ms while a VM on c3 floods:
 *
 *   random-src   every frame a new random source MAC, to random unknown
 *                unicast destinations (the MAC flood of issue 11: 8,000 and
 *                20,000 frames/s), from a port with the default security
 *                (locked) and from one with `lock: false` (MAC limits only);
 *   broadcast    broadcasts from the VM's own MAC (a broadcast storm: the
 *                flood token bucket).
 *
 * The same floods from a port whose limits are all set out of reach (vm4)
 * are the comparison: what the other VMs see without port security.
 *
 * Per run: the rate the flooder achieved, the frames the kernel dropped
 * before the daemon read them, the frames each port limit dropped (from the
 * daemon's port facts), the frames that got past, the MACs the hub learned,
 * and the pinging pair's loss and RTT (avg, max) during the flood.
 *
 *   node --import tsx bench/security/mac-flood.ts [frames per run, default 40000]
 */
import { PORT_LIMITS as LIMITS, type PortLimit, type PortSecurityFacts } from '../../src/control/daemon-control.ts';
import { flood, kernelTxDropped, pingSummary, portOf, type FloodInit } from '../../test/helpers/mac-flood.ts';
import { startNetnsOverlay, type NetnsOverlay } from '../../test/helpers/netns-overlay.ts';

const COUNT = Number(process.argv[2] ?? 40_000);
const PING_INTERVAL_S = 0.02;
/** vm4's port: every limit out of reach, for comparison. */
const NO_LIMITS = '{ lock: false, maxMacs: 65536, newMacsPerSecond: 1000000, floodFramesPerSecond: 10000000, floodBurst: 10000000 }';

interface Row {
  run: string;
  offeredFps: number;
  kernelDropped: number;
  dropped: Record<PortLimit, number>;
  passed: number;
  hubMacs: number;
  pingLossPct: number;
  rttAvgMs: number;
  rttMaxMs: number;
}

async function security(o: NetnsOverlay, i: number): Promise<PortSecurityFacts> {
  return (await portOf(o, i)).security!;
}

async function hubMacs(o: NetnsOverlay): Promise<number> {
  return ((await o.admin('hub', '/fdb')) as unknown[]).length;
}

/** Ping vm0 → vm1 for about `seconds` while `during` runs. */
async function measure(o: NetnsOverlay, run: string, seconds: number, during: () => Promise<{ sent: number; seconds: number } | undefined>, flooder: number): Promise<Row> {
  const before = await security(o, flooder);
  const kernelBefore = await kernelTxDropped(o, flooder);
  const pings = Math.max(10, Math.ceil(seconds / PING_INTERVAL_S));
  const ping = o.exec(0, ['ping', '-n', '-q', '-c', String(pings), '-i', String(PING_INTERVAL_S), '-W', '5', o.vms[1]!.ip], 120_000);
  const f = await during();
  const p = pingSummary((await ping).stdout);
  await new Promise((r) => setTimeout(r, 500)); // let the daemon read what the kernel still queues (figures only)
  const after = await security(o, flooder);
  const kernelDropped = (await kernelTxDropped(o, flooder)) - kernelBefore;
  const dropped = Object.fromEntries(LIMITS.map((l) => [l, after[l] - before[l]])) as Row['dropped'];
  const sent = f?.sent ?? 0;
  return {
    run,
    offeredFps: f === undefined ? 0 : Math.round(f.sent / f.seconds),
    kernelDropped,
    dropped,
    passed: Math.max(0, sent - kernelDropped - LIMITS.reduce((n, l) => n + dropped[l], 0)),
    hubMacs: await hubMacs(o),
    pingLossPct: (100 * (p.sent - p.received)) / p.sent,
    rttAvgMs: p.avgMs,
    rttMaxMs: p.maxMs,
  };
}

function print(rows: readonly Row[]): void {
  const head = ['run', 'offered f/s', 'kernel drop', ...LIMITS, 'passed', 'hub MACs', 'ping loss %', 'rtt avg ms', 'rtt max ms'];
  const lines = rows.map((r) => [
    r.run, String(r.offeredFps), String(r.kernelDropped), ...LIMITS.map((l) => String(r.dropped[l])), String(r.passed), String(r.hubMacs),
    r.pingLossPct.toFixed(1), r.rttAvgMs.toFixed(2), r.rttMaxMs.toFixed(2),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(fmt(head));
  for (const l of lines) console.log(fmt(l));
}

async function main(): Promise<void> {
  const cleanups: Array<() => Promise<void> | void> = [];
  try {
    const o = await startNetnsOverlay({ after: (fn) => { cleanups.push(fn); } }, {
      hosts: ['c1', 'c2', 'c3'],
      vms: [{ host: 'c1' }, { host: 'c2' }, { host: 'c3' }, { host: 'c3', security: '{ lock: false }' }, { host: 'c3', security: NO_LIMITS }],
      policy: '',
      tools: ['ping', 'python3'],
    });
    const warm = await o.exec(0, ['ping', '-n', '-c', '3', '-i', '0.2', '-W', '2', o.vms[1]!.ip]);
    if (warm.code !== 0) throw new Error(`vm0 cannot reach vm1: ${warm.stdout}${warm.stderr}`);
    const rows: Row[] = [];
    rows.push(await measure(o, 'no flood', 3, async () => undefined, 2));
    const runs: Array<[string, number, FloodInit]> = [
      ['locked random-src 8k', 2, { count: COUNT, rate: 8_000, src: 'random', dst: 'unknown' }],
      ['locked random-src 20k', 2, { count: COUNT, rate: 20_000, src: 'random', dst: 'unknown' }],
      ['unlocked random-src 8k', 3, { count: COUNT, rate: 8_000, src: 'random', dst: 'unknown' }],
      ['unlocked random-src 20k', 3, { count: COUNT, rate: 20_000, src: 'random', dst: 'unknown' }],
      ['locked broadcast 8k', 2, { count: COUNT, rate: 8_000, src: o.vms[2]!.mac, dst: 'broadcast' }],
      ['no limits random-src 8k', 4, { count: COUNT, rate: 8_000, src: 'random', dst: 'unknown' }],
      ['no limits random-src 20k', 4, { count: COUNT, rate: 20_000, src: 'random', dst: 'unknown' }],
      ['no limits broadcast 8k', 4, { count: COUNT, rate: 8_000, src: o.vms[4]!.mac, dst: 'broadcast' }],
    ];
    for (const [name, vm, init] of runs) rows.push(await measure(o, name, init.count / init.rate, () => flood(o, vm, init), vm));
    console.log(`MAC flood: ${COUNT} frames per run from a VM on c3; vm0 (c1) pings vm1 (c2) every ${PING_INTERVAL_S * 1000} ms meanwhile`);
    print(rows);
  } finally {
    for (const fn of cleanups.reverse()) await fn();
  }
}

await main();
