/**
 * bench/tap-relay — the cost of the TAP port alone: TCP throughput (iperf3)
 * between two network namespaces whose interfaces are TAP devices joined by a
 * relay in this Node process (each read batch written to the other port with
 * sendBatch), for each combination of vnet_hdr on/off, next to a plain veth
 * pair (the kernel's limit). With vnet_hdr on both sides GSO super-frames
 * pass through as they are; with it off on the receiving side they are
 * segmented in software (src/dataplane/offload.ts).
 *
 * Usage (root): node --import tsx bench/tap-relay/run.ts [--seconds 3]
 * Everything lives in namespaces this program creates and removes.
 */
import { parseArgs } from 'node:util';
import { silentLogger } from '../../src/common/logger.ts';
import { TapPort } from '../../src/dataplane/tap-port.ts';
import { NetnsHarness, requireTools, waitFor } from '../../test/helpers/netns.ts';

const { values: opts } = parseArgs({ options: { seconds: { type: 'string', default: '3' } } });
const SECONDS = Number(opts.seconds);

interface Result {
  name: string;
  gbps: number;
  framesPerBatch: number;
  superFrames: number;
}

async function iperf(h: NetnsHarness, nsServer: string, nsClient: string, serverIp: string): Promise<number> {
  const server = h.spawn(nsServer, ['iperf3', '-s', '-1', '--forceflush', '-B', serverIp]);
  let out = '';
  server.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  await waitFor(() => out.includes('Server listening'), 'iperf3 server');
  const r = await h.exec(nsClient, ['iperf3', '-c', serverIp, '-t', String(SECONDS), '-J'], { timeoutMs: (SECONDS + 15) * 1000 });
  const json = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
  return json.end.sum_received.bits_per_second / 1e9;
}

async function veth(): Promise<Result> {
  const h = new NetnsHarness();
  try {
    const [a, b] = [await h.namespace(), await h.namespace()];
    const [x, y] = await h.vethPair({ ns: a }, { ns: b });
    await h.addAddress(a, x, '10.97.0.1/24');
    await h.addAddress(b, y, '10.97.0.2/24');
    return { name: 'veth (kernel)', gbps: await iperf(h, b, a, '10.97.0.2'), framesPerBatch: 0, superFrames: 0 };
  } finally {
    await h.cleanup();
  }
}

async function relay(vnetA: boolean, vnetB: boolean): Promise<Result> {
  const h = new NetnsHarness();
  const ports: TapPort[] = [];
  try {
    const [a, b] = [await h.namespace(), await h.namespace()];
    for (const [ns, vnetHdr, ip, mac] of [[a, vnetA, '10.97.0.1', 0x02_00_00_97_00_01], [b, vnetB, '10.97.0.2', 0x02_00_00_97_00_02]] as const) {
      const name = h.linkName();
      const port = TapPort.open({ name, mac, mtu: 1500, vnetHdr, logger: silentLogger() });
      ports.push(port);
      h.trackHostLink(name);
      await h.moveLink(name, ns);
      await h.addAddress(ns, name, `${ip}/24`);
      await h.linkUp(ns, name);
    }
    const [pA, pB] = ports as [TapPort, TapPort];
    let batches = 0;
    let frames = 0;
    let superFrames = 0;
    pA.start((fs) => {
      batches++;
      frames += fs.length;
      for (const f of fs) if (f.data.length > 1514) superFrames++;
      pB.sendBatch(fs);
    });
    pB.start((fs) => {
      batches++;
      frames += fs.length;
      pA.sendBatch(fs);
    });
    const gbps = await iperf(h, b, a, '10.97.0.2');
    return { name: `TAP relay, vnet_hdr ${vnetA ? 'on ' : 'off'} → ${vnetB ? 'on ' : 'off'}`, gbps, framesPerBatch: frames / Math.max(1, batches), superFrames };
  } finally {
    for (const p of ports) await p.close();
    await h.cleanup();
  }
}

requireTools(['ip', 'iperf3']);
const results: Result[] = [await veth()];
for (const [a, b] of [[true, true], [true, false], [false, true], [false, false]] as const) results.push(await relay(a, b));
console.log(`TCP throughput, iperf3 -t ${SECONDS}, one stream, client → server (MTU 1500)`);
console.log('path'.padEnd(34) + 'Gbit/s'.padStart(8) + 'frames/batch'.padStart(14) + 'super-frames'.padStart(14));
for (const r of results) {
  console.log(r.name.padEnd(34) + r.gbps.toFixed(2).padStart(8) + (r.framesPerBatch ? r.framesPerBatch.toFixed(1) : '-').padStart(14) + String(r.superFrames).padStart(14));
}
