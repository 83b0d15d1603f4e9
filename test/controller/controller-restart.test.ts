/**
 * The controller restarts under a live overlay: real daemons (mutual TLS over
 * loopback) with controller agents and memory-port VMs exchanging frames.
 * While the controller is away the daemons keep forwarding with the links
 * and rules they were given; the restarted controller finds its state in the
 * database, the daemons reconnect on their own, and everything converges
 * again by version. A daemon that drops off and comes back converges too.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/common/logger.ts';
import { realClock } from '../../src/common/clock.ts';
import { parseDeployment } from '../../src/controller/deployment-file.ts';
import { CONTROLLER_HOST_ID, startControllerProcess, type ControllerProcess } from '../../src/controller/launch.ts';
import { ensureDemoCertificates } from '../../src/cli/demo-runner.ts';
import { caFiles, hostFiles, loadHostCredentials } from '../../src/pki/certs.ts';
import { Daemon } from '../../src/dataplane/daemon.ts';
import { MemoryPort } from '../../src/dataplane/memory-port.ts';
import { TlsTransport } from '../../src/dataplane/tls-transport.ts';
import { ControllerAgent } from '../../src/dataplane/controller-agent.ts';
import { parseMac } from '../../src/common/mac.ts';
import { testFrame, seqOf } from '../helpers/ethernet.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = silentLogger();
const DEPLOYMENT = `
name: restart-test
controller:
  control: { host: 127.0.0.1, port: 0 }
  api: { host: 127.0.0.1, port: 0 }
sites: [{ id: lab }]
hosts:
  - { id: hub, site: lab, hub: true, listen: { transport: tls, host: 127.0.0.1, port: 0 } }
  - { id: hA, site: lab, listen: { transport: tls, host: 127.0.0.1, port: 0 } }
  - { id: hB, site: lab, listen: { transport: tls, host: 127.0.0.1, port: 0 } }
vms:
  - { name: vm1, mac: "02:00:00:00:07:01", ip: 10.70.0.1, host: hA }
  - { name: vm2, mac: "02:00:00:00:07:02", ip: 10.70.0.2, host: hB }
policy: { updatePeriodMs: 200, smoothingIntervalMs: 1000 }
`;

describe('controller restart under a live overlay', { timeout: 90_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-restart-'));
  const certs = join(dir, 'certs');
  const deployment = parseDeployment(DEPLOYMENT, 'restart-test.yaml');
  let ctl: ControllerProcess | undefined;
  const daemons = new Map<string, Daemon>();
  const agents = new Map<string, ControllerAgent>();
  const vm1 = new MemoryPort({ name: 'vm1', mac: parseMac('02:00:00:00:07:01') });
  const vm2 = new MemoryPort({ name: 'vm2', mac: parseMac('02:00:00:00:07:02') });
  const got: number[] = [];
  vm2.onDeliver((f) => got.push(seqOf(f)));
  let seq = 0;

  let controlPort = 0;
  /** Same database, same control port each time: a restart, as an operator would do it. */
  const startCtl = async (): Promise<ControllerProcess> => {
    const c = await startControllerProcess(
      { logger },
      { deployment, dbPath: join(dir, 'vnet.db'), tlsDir: certs, tokenFile: join(dir, 'token'), control: { host: '127.0.0.1', port: controlPort } },
    );
    controlPort = c.controller.controlPort;
    return c;
  };

  const startAgent = async (host: string, url: string): Promise<ControllerAgent> => {
    const files = hostFiles(certs, host);
    const [ca, cert, key] = await Promise.all([readFile(caFiles(certs).cert), readFile(files.cert), readFile(files.key)]);
    const agent = new ControllerAgent(
      { daemon: daemons.get(host)!, logger, clock: realClock },
      { url, tls: { ca, cert, key, servername: CONTROLLER_HOST_ID }, backoff: { initialMs: 50, maxMs: 300 } },
    );
    agent.start();
    agents.set(host, agent);
    return agent;
  };

  const allUp = (c: ControllerProcess): boolean => c.controller.model.listHosts().every((h) => h.state === 'up');
  const burst = async (n: number, what: string): Promise<void> => {
    const from = seq;
    for (let i = 0; i < n; i++) vm1.transmit(testFrame(vm2.mac, vm1.mac, seq++));
    await waitFor(() => got.filter((s) => s >= from).length === n, what);
  };

  before(async () => {
    await ensureDemoCertificates(certs, ['hub', 'hA', 'hB']);
    ctl = await startCtl();
    for (const id of ['hub', 'hA', 'hB']) {
      const hub = daemons.get('hub');
      const transport = new TlsTransport({ logger }, { localHost: id, ...(await loadHostCredentials(certs, id)), keepaliveMs: 100, deadMs: 1500 });
      const d = await Daemon.start(
        { logger, transport },
        { hostId: id, role: id === 'hub' ? 'hub' : 'spoke', listen: { host: '127.0.0.1', port: 0 }, hub: hub ? { ...hub.listenAddress!, id: 'hub' } : undefined, reconnect: { initialMs: 20, maxMs: 200 } },
      );
      daemons.set(id, d);
      await startAgent(id, ctl.controlUrl);
    }
    daemons.get('hA')!.addPort(vm1);
    daemons.get('hB')!.addPort(vm2);
    await waitFor(() => allUp(ctl!), 'every host registered with the controller');
    const hubLinkUp = (id: string): boolean => daemons.get(id)!.facts().links.some((l) => l.peer === 'hub' && l.state === 'up');
    await waitFor(() => hubLinkUp('hA') && hubLinkUp('hB') && daemons.get('hub')!.facts().links.filter((l) => l.state === 'up').length === 2, 'backbone up on both ends');
    await burst(100, 'traffic before the restart');
  });

  after(async () => {
    await Promise.all([...agents.values()].map((a) => a.close()));
    await Promise.all([...daemons.values()].map((d) => d.close()));
    await ctl?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps forwarding while the controller is down, and converges after it restarts', async () => {
    // A fast-path link asked for by the operator: desired state the controller must remember.
    await ctl!.controller.model.addFastPathLink('hA', 'hB', 'operator wants it', 'test');
    const a = daemons.get('hA')!;
    const b = daemons.get('hB')!;
    await waitFor(() => a.facts().links.some((l) => l.peer === 'hB' && l.state === 'up'), 'fast-path link pushed and up');
    const versionsBefore = { rules: a.facts().rulesVersion, links: a.facts().linksVersion };
    assert.ok(versionsBefore.links > 0, 'the daemon acknowledged a links version');

    await ctl!.close();
    ctl = undefined;
    await waitFor(() => [...agents.values()].every((x) => x.state !== 'connected'), 'agents noticed the controller is gone');
    await burst(300, 'traffic with the controller down');
    assert.ok(a.facts().links.some((l) => l.peer === 'hB' && l.state === 'up'), 'links kept while the controller is away');

    ctl = await startCtl();
    // The agents redial on their own (backoff) and are converged by version.
    await waitFor(() => allUp(ctl!), 'every host back after the restart');
    assert.ok(ctl.controller.model.listLinks().some((l) => l.kind === 'fast-path' && [l.a, l.b].sort().join() === 'hA,hB'), 'the operator link survived the restart (SQLite)');
    await burst(300, 'traffic after the restart');
    assert.ok(b.facts().links.some((l) => l.peer === 'hA' && l.state === 'up'), 'fast path still up after convergence');
    assert.equal(new Set(got).size, got.length, 'no frame delivered twice');
  });

  it('converges a daemon that disconnects and reconnects', async () => {
    const agent = agents.get('hB')!;
    await agent.close();
    await waitFor(() => ctl!.controller.model.getHost('hB')?.state === 'down', 'controller marks hB down');
    await burst(100, 'traffic while hB is away from the controller');
    await startAgent('hB', ctl!.controlUrl);
    await waitFor(() => ctl!.controller.model.getHost('hB')?.state === 'up', 'hB back');
    await burst(100, 'traffic after hB reconnected');
  });
});
