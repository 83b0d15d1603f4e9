/**
 * Adaptation with real kernel traffic (root): three `vnet daemon` processes
 * (the hub and two hosts, TLS tunnels on loopback, control channels to the
 * controller in this process), two VMs as network namespaces holding TAP
 * devices their daemons made (`netns:` port option). One VM pings the
 * other: the controller must add a fast-path link between the two hosts,
 * the pings must then go host to host (the backbone carries none of a ping
 * burst), and when the pings stop the link must go again. Fails (does not
 * skip) without root, `ip` or `ping`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { silentLogger } from '../../src/common/logger.ts';
import { ensureDemoCertificates } from '../../src/cli/demo-runner.ts';
import { startControllerProcess } from '../../src/controller/launch.ts';
import { parseDeployment } from '../../src/controller/deployment-file.ts';
import { waitFor } from '../helpers/wait.ts';

const VNET = resolve(import.meta.dirname, '../../bin/vnet.js');

function sh(cmd: string[], check = true): string {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: 30_000 });
  if (check && r.status !== 0) throw new Error(`${cmd.join(' ')}: ${r.stderr?.trim() || r.status}`);
  return r.stdout ?? '';
}

/** A port free now, below the ephemeral range. */
async function freePort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * 10_000);
    const s = createServer();
    const ok = await new Promise<boolean>((r) => { s.once('error', () => r(false)); s.listen(port, '127.0.0.1', () => r(true)); });
    if (ok) {
      await new Promise((r) => s.close(r));
      return port;
    }
  }
  throw new Error('no free port');
}

test('real IP traffic between VM namespaces: a fast path is added, carries the pings, and goes when they stop', { timeout: 120_000 }, async (t) => {
  for (const tool of ['ip', 'ping']) assert.equal(spawnSync('which', [tool]).status, 0, `missing tool: ${tool}`);
  assert.equal(process.getuid?.(), 0, 'needs root (network namespaces, TAP devices)');
  const tag = randomBytes(2).toString('hex');
  const work = mkdtempSync(join(tmpdir(), 'vnet-adapt-priv-'));
  const procs: ChildProcess[] = [];
  const ns = [`va${tag}-0`, `va${tag}-1`];
  t.after(async () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGINT');
    await Promise.all(procs.map((p) => (p.exitCode !== null || p.signalCode !== null ? undefined : new Promise((r) => { p.once('exit', r); setTimeout(r, 5000); }))));
    for (const n of ns) sh(['ip', 'netns', 'del', n], false);
    rmSync(work, { recursive: true, force: true });
  });
  for (const n of ns) {
    sh(['ip', 'netns', 'add', n]);
    sh(['ip', '-n', n, 'link', 'set', 'lo', 'up']);
  }
  const ports = { hub: await freePort(), c1: await freePort(), c2: await freePort(), control: await freePort() };
  const certs = join(work, 'certs');
  await ensureDemoCertificates(certs, ['hub', 'c1', 'c2']);
  const deployment = parseDeployment(`name: adapt-priv
sites: [{ id: lab }]
hosts:
  - { id: hub, site: lab, hub: true, listen: { transport: tls, host: 127.0.0.1, port: ${ports.hub} } }
  - { id: c1, site: lab, listen: { transport: tls, host: 127.0.0.1, port: ${ports.c1} } }
  - { id: c2, site: lab, listen: { transport: tls, host: 127.0.0.1, port: ${ports.c2} } }
vms:
  - { name: v0, mac: "02:00:00:00:09:00", ip: 10.99.0.10, host: c1 }
  - { name: v1, mac: "02:00:00:00:09:01", ip: 10.99.0.11, host: c2 }
policy:
  updatePeriodMs: 200
  smoothingIntervalMs: 400
  fastPathBudget: 1
  fastPathMinBytesPerSec: 5000
`, 'adapt-priv.yaml');
  const ctl = await startControllerProcess({ logger: silentLogger() }, {
    deployment, dbPath: join(work, 'vnet.db'), tlsDir: certs,
    control: { host: '127.0.0.1', port: ports.control }, api: { host: '127.0.0.1', port: 0 }, tokenFile: join(work, 'api-token'),
  });
  t.after(() => ctl.close());
  const model = ctl.controller.model;
  for (const [h, vm] of [['hub', -1], ['c1', 0], ['c2', 1]] as const) {
    const lines = [
      `host: ${h}`, `role: ${h === 'hub' ? 'hub' : 'spoke'}`, 'transport: tls', `tls: { dir: ${certs} }`,
      `listen: { host: 127.0.0.1, port: ${ports[h]} }`,
      ...(h === 'hub' ? [] : [`hub: { host: 127.0.0.1, port: ${ports.hub} }`, 'hubId: hub']),
      `controller: { url: "${ctl.controlUrl}" }`, 'reconnect: { initialMs: 100, maxMs: 1000 }',
      vm < 0 ? 'ports: []' : `ports: [{ name: va${tag}t${vm}, type: tap, mac: "02:00:00:00:09:0${vm}", netns: ${ns[vm]} }]`,
    ];
    writeFileSync(join(work, `${h}.yaml`), lines.join('\n') + '\n');
    procs.push(spawn('node', [VNET, 'daemon', '--config', join(work, `${h}.yaml`)], { stdio: 'ignore' }));
  }
  for (const i of [0, 1]) {
    await waitFor(() => sh(['ip', '-n', ns[i]!, 'link', 'show', `va${tag}t${i}`], false).length > 0, `TAP device in ${ns[i]}`, 30_000);
    sh(['ip', '-n', ns[i]!, 'addr', 'add', `10.99.0.1${i}/24`, 'dev', `va${tag}t${i}`]);
    sh(['ip', '-n', ns[i]!, 'link', 'set', 'dev', `va${tag}t${i}`, 'up']);
  }
  await waitFor(() => model.listHosts().every((h) => h.state === 'up'), 'daemons connected to the controller', 30_000);

  // v0 pings v1 (about 25 kB/s each way): through the hub first, then the controller adds c1–c2.
  const pinger = spawn('ip', ['netns', 'exec', ns[0]!, 'ping', '-q', '-i', '0.05', '-s', '1200', '10.99.0.11'], { stdio: 'ignore' });
  procs.push(pinger);
  await waitFor(() => model.getLink('c1', 'c2')?.kind === 'fast-path' && model.getLink('c1', 'c2')?.state === 'up', 'fast path c1–c2 up', 20_000);
  assert.equal(model.getLink('c1', 'c2')!.requestedBy, 'adaptation');
  assert.ok(model.listDecisions({}).some((d) => d.kind === 'fast-path-added' && d.detail.a === 'c1' && d.detail.b === 'c2'));
  await waitFor(() => model.listHosts().every((h) => { const r = model.getRules(h.id); return r !== undefined && r.appliedVersion === r.version; }), 'rules applied', 10_000);

  // A burst over the fast path: the link's counters grow by it, the backbone's do not.
  // (Counters reach the controller once per period; read them a few periods apart.)
  const backbone = (): number => model.listLinks().filter((l) => l.kind === 'backbone').reduce((s, l) => s + l.frames, 0);
  const sample = async (): Promise<{ fast: number; bb: number }> => {
    await new Promise((r) => setTimeout(r, 600));
    return { fast: model.getLink('c1', 'c2')!.frames, bb: backbone() };
  };
  const before = await sample();
  const r = spawnSync('ip', ['netns', 'exec', ns[0]!, 'ping', '-c', '100', '-i', '0.002', '-s', '1200', '10.99.0.11'], { encoding: 'utf8', timeout: 20_000 });
  assert.match(r.stdout, / 0% packet loss/, r.stdout + r.stderr);
  const after = await sample();
  assert.ok(after.fast - before.fast >= 200, `fast path carried ${after.fast - before.fast} frames of a 100-ping burst`);
  // The backbone still floods the namespaces' own multicast (IPv6 neighbour discovery, MLD): a few frames, not the burst's 200.
  assert.ok(after.bb - before.bb <= 20, `the backbone carried ${after.bb - before.bb} frames`);

  // The pings stop: the link goes after the hysteresis.
  pinger.kill('SIGINT');
  await waitFor(() => model.getLink('c1', 'c2') === undefined, 'fast path removed', 20_000);
  assert.ok(model.listDecisions({}).some((d) => d.kind === 'fast-path-removed' && d.detail.a === 'c1'));
});
