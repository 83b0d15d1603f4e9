import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePortBelowEphemeral } from './free-port.ts';
import { waitFor } from './wait.ts';

/**
 * A 3-member etcd cluster (Debian's `etcd-server`) on loopback ports, in a
 * temporary directory this helper owns; `stop()` kills every member it
 * started and removes the directory. Members can be killed and restarted one
 * at a time. When `etcd` is missing the start fails naming the package: the
 * CI installs it (`.ci/run`), and tests never skip for want of it.
 * With `tls`, clients must speak TLS and present a certificate of the
 * cluster's own CA (`--client-cert-auth`), made here with openssl.
 * `timing` sets the members' raft heartbeat and election timeout (default
 * 100 ms / 1000 ms, tolerant of a loaded machine); etcd raises a lease
 * shorter than 1.5 election timeouts (whole seconds) to that, so a 1 s lease
 * needs an election timeout of at most 666 ms.
 */

export interface EtcdClusterTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  files: { ca: string; cert: string; key: string };
}

export interface EtcdMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  process: ChildProcess | undefined;
}

export interface EtcdCluster {
  members: EtcdMember[];
  /** Client URLs of every member, e.g. for `etcd://` endpoints. */
  endpoints: string[];
  /** A client certificate the members accept (only with `tls`). */
  tls: EtcdClusterTls | undefined;
  kill(name: string): Promise<void>;
  restart(name: string): Promise<void>;
  stop(): Promise<void>;
}

/** CA, a server certificate for 127.0.0.1 and a client certificate, in `dir`. */
function makeTls(dir: string): EtcdClusterTls & { server: { cert: string; key: string } } {
  const ssl = (...args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] }); };
  ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=etcd-test-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  const extensions = { server: ['subjectAltName=IP:127.0.0.1', 'extendedKeyUsage=serverAuth,clientAuth'], client: ['extendedKeyUsage=clientAuth'] };
  for (const [name, ext] of Object.entries(extensions)) {
    writeFileSync(join(dir, `${name}.ext`), [...ext, 'basicConstraints=CA:FALSE', ''].join('\n'));
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
  }
  const files = { ca: join(dir, 'ca.crt'), cert: join(dir, 'client.crt'), key: join(dir, 'client.key') };
  return {
    ca: readFileSync(files.ca), cert: readFileSync(files.cert), key: readFileSync(files.key), files,
    server: { cert: join(dir, 'server.crt'), key: join(dir, 'server.key') },
  };
}

export interface EtcdTiming {
  heartbeatMs: number;
  electionTimeoutMs: number;
}

export async function startEtcdCluster(size = 3, options: { tls?: boolean; timing?: EtcdTiming } = {}): Promise<EtcdCluster> {
  const timing = options.timing ?? { heartbeatMs: 100, electionTimeoutMs: 1000 };
  const dir = mkdtempSync(join(tmpdir(), 'vnet-etcd-'));
  const tls = options.tls === true ? makeTls(dir) : undefined;
  const scheme = tls === undefined ? 'http' : 'https';
  const members: EtcdMember[] = [];
  for (let i = 0; i < size; i++) {
    const client = await freePortBelowEphemeral();
    let peer = await freePortBelowEphemeral();
    while (peer === client) peer = await freePortBelowEphemeral();
    members.push({ name: `m${i}`, clientUrl: `${scheme}://127.0.0.1:${client}`, peerUrl: `http://127.0.0.1:${peer}`, process: undefined });
  }
  const initial = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  const launch = (m: EtcdMember): void => {
    const child = spawn('etcd', [
      '--name', m.name, '--data-dir', join(dir, m.name),
      '--listen-client-urls', m.clientUrl, '--advertise-client-urls', m.clientUrl,
      '--listen-peer-urls', m.peerUrl, '--initial-advertise-peer-urls', m.peerUrl,
      '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', 'vnet-test',
      '--heartbeat-interval', String(timing.heartbeatMs), '--election-timeout', String(timing.electionTimeoutMs),
      '--log-level', 'error', '--logger', 'zap',
      ...(tls === undefined ? [] : ['--cert-file', tls.server.cert, '--key-file', tls.server.key, '--client-cert-auth', '--trusted-ca-file', tls.files.ca]),
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
    child.on('error', (err) => { stderr += `\n${err.message}`; });
    // If the test process ends without stop() (a failure, a timeout), its members go with it.
    const orphan = (): void => { child.kill('SIGKILL'); };
    process.once('exit', orphan);
    child.on('exit', () => {
      process.removeListener('exit', orphan);
      if (m.process === child) m.process = undefined;
    });
    m.process = child;
    (child as ChildProcess & { stderrTail?: () => string }).stderrTail = () => stderr;
  };
  const healthy = async (m: EtcdMember): Promise<boolean> => {
    if (m.process === undefined) throw new Error(`etcd member ${m.name} exited (is Debian's etcd-server installed?)`);
    return await new Promise<boolean>((resolve) => {
      const request = tls === undefined ? httpRequest : httpsRequest;
      const req = request(`${m.clientUrl}/health`, { timeout: 2000, ...(tls === undefined ? {} : { ca: tls.ca, cert: tls.cert, key: tls.key }) }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => { body += d.toString(); });
        res.on('end', () => resolve(body.includes('"true"')));
      });
      req.on('error', () => resolve(false));
      req.on('timeout', () => { req.destroy(); resolve(false); });
      req.end();
    });
  };
  const cluster: EtcdCluster = {
    members,
    endpoints: members.map((m) => m.clientUrl),
    tls: tls === undefined ? undefined : { ca: tls.ca, cert: tls.cert, key: tls.key, files: tls.files },
    async kill(name) {
      const m = members.find((x) => x.name === name);
      const child = m?.process;
      if (m === undefined || child === undefined) throw new Error(`no running etcd member ${name}`);
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
    async restart(name) {
      const m = members.find((x) => x.name === name);
      if (m === undefined || m.process !== undefined) throw new Error(`etcd member ${name} is unknown or running`);
      launch(m);
      await waitFor(() => healthy(m), `etcd member ${name} healthy again`, 30_000);
    },
    async stop() {
      await Promise.all(members.map(async (m) => {
        const child = m.process;
        if (child === undefined) return;
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await exited;
      }));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    for (const m of members) launch(m);
    await waitFor(async () => (await Promise.all(members.map(healthy))).every(Boolean), 'etcd cluster healthy', 30_000);
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}
