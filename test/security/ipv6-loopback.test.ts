/**
 * The underlay over IPv6, on `::1`: daemons link over plain TCP with the
 * deployment's link key and over TLS with host certificates; a controller
 * listens on `[::1]`, daemons register over `wss://[::1]:PORT/control`, and a
 * fast-path link the operator asks for is dialled at the address the peer
 * reported (an IPv6 literal; for a peer on the wildcard `::`, the address
 * its control connection came from) and carries frames.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/common/logger.ts';
import { realClock } from '../../src/common/clock.ts';
import { parseMac } from '../../src/common/mac.ts';
import { createCa, issueHostCertificate, caFiles, hostFiles, loadHostCredentials, type PemPair } from '../../src/pki/certs.ts';
import { TcpTransport } from '../../src/dataplane/tcp-transport.ts';
import { TlsTransport } from '../../src/dataplane/tls-transport.ts';
import { LinkKeyAuthenticator } from '../../src/dataplane/link-auth.ts';
import type { HostMembership } from '../../src/dataplane/link-membership.ts';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { MemoryPort } from '../../src/dataplane/memory-port.ts';
import { ControllerAgent } from '../../src/dataplane/controller-agent.ts';
import { parseDeployment } from '../../src/controller/deployment-file.ts';
import { CONTROLLER_HOST_ID, startControllerProcess, type ControllerProcess } from '../../src/controller/launch.ts';
import { ensureDemoCertificates } from '../../src/cli/demo-runner.ts';
import { connect, type CtlIo, type GlobalOptions } from '../../src/cli/ctl-io.ts';
import { startThreeDaemons } from './fixtures/three-daemons.ts';
import { testFrame, seqOf } from '../helpers/ethernet.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = silentLogger();
const LINK = { keepaliveMs: 100, deadMs: 2000, handshakeTimeoutMs: 2000 };

describe('tunnel links on ::1', { timeout: 60_000 }, () => {
  it('plain TCP with the link key: spokes dial [::1], the hub forwards their frames', async () => {
    const key = randomBytes(32);
    const make = (id: string, membership: HostMembership): TcpTransport =>
      new TcpTransport({ logger }, { localHost: id, ...LINK, authenticator: new LinkKeyAuthenticator(key), membership });
    const t = await startThreeDaemons(logger, make, { host: '::1' });
    try {
      assert.equal(t.hub.listenAddress?.host, '::1');
      await t.forwarding('link key over IPv6');
    } finally {
      await t.close();
    }
  });

  it('TLS with host certificates (IPv6 addresses in their SANs): spokes dial [::1], the hub forwards their frames', async () => {
    const ca = await createCa({ commonName: 'v6-test' });
    const certs = new Map<string, PemPair>();
    for (const id of ['hub', 'hA', 'hB']) certs.set(id, await issueHostCertificate(ca, id, { ips: ['::1', 'fd00:9::1'] }));
    const make = (id: string, membership: HostMembership): TlsTransport =>
      new TlsTransport({ logger }, { localHost: id, ...LINK, ca: ca.cert, ...certs.get(id)!, membership });
    const t = await startThreeDaemons(logger, make, { host: '::1' });
    try {
      await t.forwarding('TLS over IPv6');
    } finally {
      await t.close();
    }
  });
});

const DEPLOYMENT = `
name: ipv6-loopback
controller:
  control: { host: "::1", port: 0 }
  api: { host: "::1", port: 0 }
sites: [{ id: lab }]
hosts:
  - { id: hub, site: lab, hub: true, listen: { transport: tls, host: "::1", port: 0 } }
  - { id: hA, site: lab, listen: { transport: tls, host: "::1", port: 0 } }
  - { id: hB, site: lab, listen: { transport: tls, host: "::1", port: 0 } }
vms:
  - { name: vm1, mac: "02:00:00:00:06:01", ip: "fd00:66::1", host: hA }
  - { name: vm2, mac: "02:00:00:00:06:02", ip: "fd00:66::2", host: hB }
`;

describe('a controller on [::1]', { timeout: 90_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-ipv6-'));
  const certs = join(dir, 'certs');
  let ctl: ControllerProcess | undefined;
  const daemons = new Map<string, Daemon>();
  const agents: ControllerAgent[] = [];
  const vm1 = new MemoryPort({ name: 'vm1', mac: parseMac('02:00:00:00:06:01') });
  const vm2 = new MemoryPort({ name: 'vm2', mac: parseMac('02:00:00:00:06:02') });
  const got: number[] = [];
  vm2.onDeliver((f) => got.push(seqOf(f)));

  before(async () => {
    await ensureDemoCertificates(certs, ['hub', 'hA', 'hB']);
    ctl = await startControllerProcess({ logger }, { deployment: parseDeployment(DEPLOYMENT, 'ipv6.yaml'), dbPath: join(dir, 'vnet.db'), tlsDir: certs, tokenFile: join(dir, 'token') });
    for (const id of ['hub', 'hA', 'hB']) {
      const hub = daemons.get('hub');
      const transport = new TlsTransport({ logger }, { localHost: id, ...(await loadHostCredentials(certs, id)), ...LINK });
      daemons.set(id, await Daemon.start(
        { logger, transport },
        { hostId: id, role: id === 'hub' ? 'hub' : 'spoke', listen: { host: id === 'hB' ? '::' : '::1', port: 0 }, hub: hub ? { ...hub.listenAddress!, id: 'hub' } : undefined, reconnect: { initialMs: 20, maxMs: 200 } },
      ));
      const files = hostFiles(certs, id);
      const [ca, cert, key] = await Promise.all([readFile(caFiles(certs).cert), readFile(files.cert), readFile(files.key)]);
      const agent = new ControllerAgent({ daemon: daemons.get(id)!, logger, clock: realClock }, { url: ctl.controlUrl, tls: { ca, cert, key, servername: CONTROLLER_HOST_ID }, backoff: { initialMs: 50, maxMs: 300 } });
      agent.start();
      agents.push(agent);
    }
    daemons.get('hA')!.addPort(vm1);
    daemons.get('hB')!.addPort(vm2);
  });

  after(async () => {
    await Promise.all(agents.map((a) => a.close()));
    await Promise.all([...daemons.values()].map((d) => d.close()));
    await ctl?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('daemons register over wss://[::1]:PORT/control; the API URL has brackets; a fast path is dialled at the reported IPv6 address and carries frames', async () => {
    assert.match(ctl!.controlUrl, /^wss:\/\/\[::1\]:\d+\/control$/);
    assert.match(ctl!.api.url, /^http:\/\/\[::1\]:\d+$/);
    const model = ctl!.controller.model;
    await waitFor(() => model.listHosts().every((h) => h.state === 'up'), 'every daemon registered over IPv6');
    assert.ok(model.getHost('hA')!.addresses.some((a) => a.host === '::1'), 'hA reported its IPv6 listen address');
    assert.equal(daemons.get('hB')!.listenAddress?.host, '::');
    assert.deepEqual(model.getHost('hB')!.addresses.map((a) => a.host), ['::1'], 'hB listens on the wildcard ::: peers dial where its control connection came from');
    assert.equal(model.listVms().find((v) => v.name === 'vm1')?.ip, 'fd00:66::1');
    // `vnet ctl --controller http://[::1]:PORT`: the CLI's own client reaches the API.
    const io = { env: {}, out: () => {}, err: () => {}, now: () => Date.now(), setExitCode: () => {}, exit: (): never => { throw new Error('exit'); }, isTty: false } as unknown as CtlIo;
    const client = await connect({ controller: ctl!.api.url, tokenFile: join(dir, 'token') } as GlobalOptions, io);
    const { hosts } = await client.get<{ hosts: Array<{ id: string }> }>('/api/v1/hosts');
    assert.deepEqual(hosts.map((h) => h.id).sort(), ['hA', 'hB', 'hub'], 'vnet ctl reaches the API on [::1]');

    await model.addFastPathLink('hA', 'hB', 'operator wants it', 'test');
    const a = daemons.get('hA')!;
    await waitFor(() => a.facts().links.some((l) => l.peer === 'hB' && l.kind === 'fast-path' && l.state === 'up'), 'fast path hA–hB up over IPv6');
    const fastFrames = (): number => a.facts().links.find((l) => l.peer === 'hB')?.txFrames ?? 0;
    const before = fastFrames();
    for (let i = 0; i < 50; i++) vm1.transmit(testFrame(vm2.mac, vm1.mac, i));
    await waitFor(() => got.length >= 50, '50 frames delivered to vm2');
    assert.ok(fastFrames() - before >= 50, 'they crossed the fast-path link');
  });
});
