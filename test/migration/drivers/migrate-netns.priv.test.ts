// Privileged (root): a small guest migrates between two network namespaces over a veth
// shaped with tc — tbf for bandwidth, netem for delay — with each end its own process.
// Kernels built without sch_netem (this project's machines and CI) get the delay from the
// project's userspace delay relay (src/common/delay-relay.ts) in the destination namespace
// instead; tbf still shapes the bandwidth in the kernel. The test says which it used.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { requireTools, useNetns, waitFor } from '../../helpers/netns.ts';

const PEER = fileURLToPath(new URL('./fixtures/migrate-peer.ts', import.meta.url));
const RELAY = fileURLToPath(new URL('./fixtures/relay-peer.ts', import.meta.url));
const RATE_MBIT = 40;
const DELAY_MS = 10; // each way: 20 ms RTT

interface SendOut { ok: boolean; totalMs: number; downtimeMs: number; bytes: { total: number }; memDigest: string; diskDigest: string; sourceRunning: boolean; message?: string }
interface RecvOut { ok: boolean; memDigest: string; diskDigest: string; message?: string }

test('a guest migrates between namespaces over a tc-shaped veth (tbf + netem), bit-identical', async (t) => {
  requireTools(['ip', 'tc', 'ss']);
  const ns = await useNetns(t);
  const a = await ns.namespace();
  const b = await ns.namespace();
  const [va, vb] = await ns.vethPair({ ns: a }, { ns: b });
  await ns.addAddress(a, va, '10.77.0.1/24');
  await ns.addAddress(b, vb, '10.77.0.2/24');
  // a -> b: a 40 Mbit/s token bucket (then 10 ms of netem delay, where the kernel has netem)
  await ns.exec(a, ['tc', 'qdisc', 'replace', 'dev', va, 'root', 'handle', '1:', 'tbf', 'rate', `${RATE_MBIT}mbit`, 'burst', '64kb', 'latency', '200ms']);
  const netem = await ns.exec(a, ['tc', 'qdisc', 'add', 'dev', va, 'parent', '1:1', 'handle', '10:', 'netem', 'delay', `${DELAY_MS}ms`, 'limit', '10000'], { allowFailure: true });
  const haveNetem = netem.code === 0;
  if (haveNetem) await ns.qdisc(b, vb, ['netem', 'delay', `${DELAY_MS}ms`]);
  else assert.match(netem.stderr, /unknown/i, `netem failed for another reason: ${netem.stderr}`);
  t.diagnostic(haveNetem ? 'delay: netem' : 'delay: userspace relay (kernel has no sch_netem); bandwidth: tbf');

  for (const [rule, port, channels] of [['smart-stop', 7071, 1], ['time-bound', 7072, 2]] as const) {
    // Without netem the receiver listens on b's loopback behind a relay on b's veth address.
    const recvPort = haveNetem ? port : port + 100;
    const recv = ns.spawn(b, [process.execPath, '--import', 'tsx', PEER, 'receive', '--listen', haveNetem ? '10.77.0.2' : '127.0.0.1', '--port', String(recvPort), '--channels', String(channels), '--timeout', '60000', '--json']);
    if (!haveNetem) {
      ns.spawn(b, [process.execPath, '--import', 'tsx', RELAY, '--listen', `10.77.0.2:${port}`, '--target', `127.0.0.1:${recvPort}`, '--delay', `${DELAY_MS}ms`]);
    }
    let recvOut = '';
    recv.stdout?.on('data', (d: Buffer) => { recvOut += d.toString(); });
    const recvExit = new Promise<number>((resolve) => recv.once('exit', (code) => resolve(code ?? -1)));
    for (const p of haveNetem ? [port] : [port, recvPort]) {
      await waitFor(async () => (await ns.exec(b, ['ss', '-ltnH', `sport = :${p}`])).stdout.includes(`:${p}`), `listening on ${p}`, 20_000);
    }

    const sent = await ns.exec(a, [process.execPath, '--import', 'tsx', PEER, 'send', '--host', '10.77.0.2', '--port', String(port), '--rule', rule,
      '--profile', 'tpc-w', '--pages', '2048', '--blocks', '128', '--deadline', '8000', '--json'], { timeoutMs: 60_000, allowFailure: true });
    assert.equal(await recvExit, 0, `receiver: ${recvOut}`);
    const s = JSON.parse(sent.stdout.trim().split('\n').pop() ?? '{}') as SendOut;
    const r = JSON.parse(recvOut.trim().split('\n').pop() ?? '{}') as RecvOut;
    assert.equal(s.ok, true, `${rule} sender: ${s.message ?? sent.stderr}`);
    t.diagnostic(`${rule}: ${(s.bytes.total / 1e6).toFixed(1)} MB in ${s.totalMs.toFixed(0)} ms, downtime ${s.downtimeMs.toFixed(0)} ms`);
    assert.equal(r.ok, true, `${rule} receiver: ${r.message}`);
    assert.equal(r.memDigest, s.memDigest, `${rule}: destination memory equals the source's at pause`);
    assert.equal(r.diskDigest, s.diskDigest, `${rule}: destination disk equals the source's`);
    // The shaping took effect: the transfer cannot beat the token bucket, nor the path's delay.
    const floorMs = (s.bytes.total * 8) / (RATE_MBIT * 1000);
    assert.ok(s.totalMs >= floorMs * 0.9, `${rule}: ${s.totalMs} ms for ${s.bytes.total} bytes, faster than ${RATE_MBIT} Mbit/s allows`);
    assert.ok(s.downtimeMs >= DELAY_MS, `${rule}: downtime ${s.downtimeMs} ms shorter than one-way delay`);
  }
});
