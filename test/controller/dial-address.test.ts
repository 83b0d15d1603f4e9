import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DaemonFacts } from '../../src/control/daemon-control.ts';
import { dialableFacts } from '../../src/controller/dial-address.ts';

function facts(host: string | undefined): DaemonFacts {
  return {
    hostId: 'h1', role: 'spoke', site: undefined, ports: [], links: [], rulesVersion: 0, linksVersion: 0,
    listen: host === undefined ? undefined : { transport: 'tls', host, port: 7502 },
  };
}

test('a wildcard listen address becomes the address the control connection came from (IPv6, IPv4, IPv4-mapped)', () => {
  assert.deepEqual(dialableFacts(facts('::'), '[fd00:9::2]:40112').listen, { transport: 'tls', host: 'fd00:9::2', port: 7502 });
  assert.deepEqual(dialableFacts(facts('0.0.0.0'), '10.1.0.2:40112').listen, { transport: 'tls', host: '10.1.0.2', port: 7502 });
  assert.deepEqual(dialableFacts(facts('::'), '[::ffff:10.1.0.2]:40112').listen, { transport: 'tls', host: '10.1.0.2', port: 7502 });
});

test('an explicit listen address, no listen address, or an unusable source is left as it is', () => {
  for (const f of [facts('fd00:9::7'), facts('hub.example'), facts(undefined)]) assert.equal(dialableFacts(f, '[fd00:9::2]:1'), f);
  const wild = facts('::');
  assert.equal(dialableFacts(wild, '?:0'), wild);
  assert.equal(dialableFacts(wild, '[::]:5'), wild);
});
