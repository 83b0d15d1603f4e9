import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatStatus, linkPath, type StatusSample } from '../../src/cli/status-format.ts';

const zero = { txFrames: 0, txBytes: 0, rxFrames: 0, rxBytes: 0, txDropped: 0, decodeErrors: 0 };

function sample(atMs: number, txBytes: number): StatusSample {
  return {
    atMs,
    status: {
      hostId: 'h1', role: 'spoke', site: 'lab', listen: { transport: 'tls', host: '127.0.0.1', port: 7501 }, rulesVersion: 3, linksVersion: 2,
      ports: [{ name: 'vm1', kind: 'tap', mac: '02:00:00:00:00:11', ip: '10.0.0.1', mtu: 1500, rxFrames: 10, rxBytes: txBytes / 2, txFrames: 9, txBytes: 0, txDropped: 4 }],
      links: [],
      controller: { url: 'wss://ctl:7400/control', state: 'connected' },
    },
    links: [
      { peer: 'hub', kind: 'backbone', state: 'up', direction: 'outbound', ...zero, txBytes, reconnects: 2, backlogBytes: 0, srttMs: 0.4321, address: { host: '10.0.0.9', port: 7000 } },
      { peer: 'h3', kind: 'fast-path', state: 'connecting', direction: 'outbound', ...zero, reconnects: 5, backlogBytes: 2048, lastError: { code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 10.0.0.3:7000', atMs: 1_000_000 - 30_000 } },
    ],
    fdb: [
      { mac: '02:00:00:00:00:11', location: { kind: 'port', name: 'vm1' }, ageMs: 1000 },
      { mac: '02:00:00:00:00:13', location: { kind: 'link', peer: 'h3' }, ageMs: 5000 },
      { mac: '02:00:00:00:00:12', location: { kind: 'link', peer: 'hub' }, ageMs: 2000 },
    ],
  };
}

test('a link is direct unless it is a spoke\'s backbone, which the hub relays', () => {
  assert.equal(linkPath('spoke', { kind: 'backbone', peer: 'hub' }), 'via hub hub');
  assert.equal(linkPath('spoke', { kind: 'fast-path', peer: 'h3' }), 'direct');
  assert.equal(linkPath('hub', { kind: 'backbone', peer: 'h1' }), 'direct');
});

test('vnet status shows the daemon, its links with path, state, round trip, rates and last error, its ports and the remote VMs it learned', () => {
  const text = formatStatus(sample(2000, 250_000), sample(1000, 125_000), 1_000_000);
  const lines = text.split('\n');
  assert.equal(lines[0], 'host h1 (spoke, site lab), listening tls 127.0.0.1:7501');
  assert.equal(lines[1], 'controller: wss://ctl:7400/control connected');
  const hub = lines.find((l) => l.startsWith('hub '))!;
  assert.match(hub, /^hub\s+backbone\s+via hub hub\s+up\s+0\.43 ms\s+1\.0 Mbit\/s\s+-\s+0 B\s+0\s+2\s+-$/);
  const h3 = lines.find((l) => l.startsWith('h3 '))!;
  assert.match(h3, /^h3\s+fast-path\s+direct\s+connecting\s+-\s+-\s+-\s+2\.0 KiB\s+0\s+5\s+ECONNREFUSED 30s ago: connect ECONNREFUSED 10\.0\.0\.3:7000$/);
  assert.match(text, /^vm1\s+tap\s+02:00:00:00:00:11\s+10\.0\.0\.1\s+500 kbit\/s\s+-\s+10\s+9\s+4$/m);
  const remote = text.slice(text.indexOf('REMOTE VMs'));
  assert.match(remote, /^02:00:00:00:00:12\s+hub\s+via hub hub\s+2s ago$/m);
  assert.match(remote, /^02:00:00:00:00:13\s+h3\s+direct\s+5s ago$/m);
  assert.doesNotMatch(remote, /00:11/, 'a local VM is a port, not a remote VM');
});

test('without an earlier reading the rates show "-"; a refused or standalone daemon says so', () => {
  const one = sample(0, 1000);
  assert.match(formatStatus(one, undefined, 1_000_000), /^hub\s+backbone\s+via hub hub\s+up\s+0\.43 ms\s+-\s+-/m);
  one.status.controller = { url: 'wss://ctl:7400/control', state: 'closed', refusal: { code: 'VNET_ERR_UNKNOWN_HOST', message: 'host "h1" is not in the deployment' } };
  assert.match(formatStatus(one, undefined, 0), /^controller: wss:\/\/ctl:7400\/control refused \(VNET_ERR_UNKNOWN_HOST: host "h1" is not in the deployment\)$/m);
  one.status.controller = undefined;
  assert.match(formatStatus(one, undefined, 0), /^controller: none \(standalone\)$/m);
});

test('vnet status writes an IPv6 listen address in brackets', () => {
  const s = sample(2000, 0);
  const v6 = { ...s, status: { ...s.status, listen: { transport: 'tls' as const, host: 'fd00:9::2', port: 7502 } } };
  assert.equal(formatStatus(v6, undefined, 1_000_000).split('\n')[0], 'host h1 (spoke, site lab), listening tls [fd00:9::2]:7502');
});

test('vnet status lists each native-records link\'s version, key generations, bytes under the current keys and the send key\'s age; none without records', () => {
  const now = sample(2000, 250_000);
  now.links[0] = { ...now.links[0]!, records: { version: 2, txGeneration: 3, rxGeneration: 2, txRecords: 10, txBytes: 3 * 1024 * 1024, rxRecords: 4, rxBytes: 2048, txKeyAgeMs: 125_400 } };
  const text = formatStatus(now, undefined, 1_000_000);
  const section = text.slice(text.indexOf('RECORD KEYS'), text.indexOf('PORTS'));
  assert.match(section, /^PEER\s+KIND\s+VERSION\s+TX KEY\s+TX UNDER KEY\s+RX KEY\s+RX UNDER KEY\s+TX KEY AGE$/m);
  assert.match(section, /^hub\s+backbone\s+vnet-records\/2\s+gen 3\s+3\.0 MiB\s+gen 2\s+2\.0 KiB\s+125 s$/m);
  assert.doesNotMatch(section, /^h3/m, 'a link without records is not listed');
  assert.doesNotMatch(formatStatus(sample(2000, 250_000), undefined, 1_000_000), /RECORD KEYS/);
});

test('vnet status shows a packet port\'s drops under the ports, every counter by name; other ports have no such line', () => {
  const s = sample(2000, 0);
  s.status.ports.push({
    name: 'qemu0', kind: 'packet', mac: '02:00:00:00:00:21', ip: undefined, mtu: 1500, rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0, txDropped: 0,
    packet: { runts: 0, tooLarge: 3, spoofedMac: 7, spoofedIp: 2, malformed: 1, kernelDrops: 5 },
  });
  const text = formatStatus(s, undefined, 1_000_000);
  assert.match(text, /^qemu0 \(packet\) dropped: spoofed-mac 7, spoofed-ip 2, too-large 3, runts 0, malformed 1, kernel 5$/m);
  assert.doesNotMatch(text, /^vm1 \(/m);
});
