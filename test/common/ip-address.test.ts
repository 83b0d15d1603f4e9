import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalAddress, ipAddressProblem, isAddressWithPrefix, isLoopbackAddress, isUnspecifiedAddress, urlHost } from '../../src/common/ip-address.ts';
import { formatHostPort, hostPortOrProblem, parseHostPort } from '../../src/common/host-port.ts';
import { hostProblem } from '../../src/common/address-schemas.ts';

test('canonical addresses: IPv6 compressed and lower case, IPv4-mapped as IPv4, names untouched', () => {
  assert.equal(canonicalAddress('FD00:0:0:0:0:0:0:1'), 'fd00::1');
  assert.equal(canonicalAddress('0:0:0:0:0:0:0:1'), '::1');
  assert.equal(canonicalAddress('::ffff:192.0.2.1'), '192.0.2.1');
  assert.equal(canonicalAddress('::ffff:c000:201'), '192.0.2.1');
  assert.equal(canonicalAddress('2001:db8::ffff:c000:201'), '2001:db8::ffff:c000:201');
  assert.equal(canonicalAddress('10.1.2.3'), '10.1.2.3');
  assert.equal(canonicalAddress('hub.example'), 'hub.example');
  assert.equal(canonicalAddress('fe80::1%eth0'), 'fe80::1%eth0', 'a zone id is not an address: left as it is');
});

test('loopback: 127.0.0.0/8, ::1 in any spelling, IPv4 loopback mapped into IPv6, localhost; nothing else', () => {
  for (const h of ['127.0.0.1', '127.9.8.7', '::1', '0:0:0:0:0:0:0:1', '[::1]', '::ffff:127.0.0.1', '::ffff:7f00:2', 'localhost', 'LOCALHOST']) {
    assert.equal(isLoopbackAddress(h), true, h);
  }
  for (const h of ['10.0.0.1', '128.0.0.1', '::', '::2', '::ffff:10.0.0.1', 'fd00::1', '::127.0.0.1', 'localhost.example', 'fe80::1%lo', undefined]) {
    assert.equal(isLoopbackAddress(h), false, String(h));
  }
});

test('address problems name what is wrong: zone ids, brackets, non-addresses', () => {
  assert.equal(ipAddressProblem('fd00::1'), undefined);
  assert.equal(ipAddressProblem('10.0.0.1'), undefined);
  assert.match(ipAddressProblem('fe80::1%eth0')!, /zone id/);
  assert.match(ipAddressProblem('[fd00::1]')!, /without brackets/);
  assert.match(ipAddressProblem('fd00::1::2')!, /not an IPv4 or IPv6 address/);
  assert.equal(hostProblem('hub.example'), undefined);
  assert.equal(hostProblem('fd00::1'), undefined);
  assert.match(hostProblem('hub:7000')!, /not an IPv6 address/);
  assert.match(hostProblem('[::1]')!, /without brackets/);
  assert.match(hostProblem('fe80::1%eth0')!, /zone id/);
});

test('addresses with a prefix length: IPv4 up to /32, IPv6 up to /128', () => {
  for (const ok of ['10.0.0.1', '10.0.0.1/24', 'fd00::1', 'fd00::1/64', '::1/128', '10.0.0.1/0']) assert.ok(isAddressWithPrefix(ok), ok);
  for (const bad of ['10.0.0.1/33', 'fd00::1/129', 'fd00::1/', '10.0.0.256/24', 'host/24', 'fd00::1/6a']) assert.ok(!isAddressWithPrefix(bad), bad);
});

test('host:port text: IPv6 literals in brackets both ways; zone ids and bare IPv6 refused with the reason', () => {
  assert.deepEqual(parseHostPort('[::1]:7400'), { host: '::1', port: 7400 });
  assert.deepEqual(parseHostPort('[fd00:9::1]:0'), { host: 'fd00:9::1', port: 0 });
  assert.deepEqual(parseHostPort('10.0.0.1:7000'), { host: '10.0.0.1', port: 7000 });
  assert.deepEqual(parseHostPort('hub.example:7000'), { host: 'hub.example', port: 7000 });
  assert.deepEqual(parseHostPort(':7000'), { host: '127.0.0.1', port: 7000 });
  assert.match(hostPortOrProblem('fd00::1:7000').problem!, /IPv6 address goes in brackets/);
  assert.match(hostPortOrProblem('[fe80::1%eth0]:7000').problem!, /zone id/);
  assert.match(hostPortOrProblem('[10.0.0.1]:7000').problem!, /not an IPv6 address/);
  assert.match(hostPortOrProblem('[]:7000').problem!, /not an IPv4 or IPv6 address/);
  assert.match(hostPortOrProblem('[::1]:70000').problem!, /over 65535/);
  assert.match(hostPortOrProblem('[::1]').problem!, /expected HOST:PORT/);
  assert.equal(formatHostPort({ host: 'fd00::1', port: 7000 }), '[fd00::1]:7000');
  assert.equal(formatHostPort({ host: '10.0.0.1', port: 7000 }), '10.0.0.1:7000');
  assert.equal(formatHostPort({ host: 'hub.example', port: 7000 }), 'hub.example:7000');
  for (const a of [{ host: 'fd00::1', port: 1 }, { host: '::1', port: 65535 }, { host: 'h', port: 0 }]) assert.deepEqual(parseHostPort(formatHostPort(a)), a);
  assert.equal(urlHost('::1'), '[::1]');
  assert.equal(new URL(`wss://${formatHostPort({ host: '::1', port: 7400 })}/control`).port, '7400');
});

test('unspecified addresses: 0.0.0.0, :: in any spelling, 0.0.0.0 mapped into IPv6; nothing else', () => {
  for (const h of ['0.0.0.0', '::', '0:0:0:0:0:0:0:0', '::ffff:0.0.0.0']) assert.equal(isUnspecifiedAddress(h), true, h);
  for (const h of ['::1', '0.0.0.1', 'fd00::', 'localhost', '']) assert.equal(isUnspecifiedAddress(h), false, h);
});
