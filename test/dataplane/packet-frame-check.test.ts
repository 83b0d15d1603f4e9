import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AddressLock, checkPacketSize } from '../../src/dataplane/packet-frame-check.ts';
import { seededRandom } from '../../src/topology/seeded-random.ts';
import { ethHeader, ipv4Bytes, ipv4Header, udpFrame } from '../helpers/packets.ts';

const VM = 0x02_00_00_77_00_01;
const OTHER = 0x02_00_00_77_00_02;
const PEER = 0x02_00_00_77_00_09;

function arp(srcMac: number, senderMac: number, senderIp: string): Buffer {
  const body = Buffer.alloc(28);
  body.writeUInt16BE(1, 0);
  body.writeUInt16BE(0x0800, 2);
  body[4] = 6;
  body[5] = 4;
  body.writeUInt16BE(1, 6);
  body.writeUIntBE(senderMac, 8, 6);
  ipv4Bytes(senderIp).copy(body, 14);
  ipv4Bytes('10.7.0.9').copy(body, 24);
  return Buffer.concat([ethHeader(0xffff_ffff_ffff, srcMac, 0x0806), body]);
}

function ipv6(src: string): Buffer {
  const h = Buffer.alloc(40);
  h[0] = 0x60;
  h[6] = 59; // no next header
  h[7] = 64;
  const groups = src.split(':');
  for (let i = 0; i < 8; i++) h.writeUInt16BE(parseInt(groups[i] ?? '0', 16) || 0, 8 + 2 * i);
  return Buffer.concat([ethHeader(PEER, VM, 0x86dd), h]);
}

test('checkPacketSize: runts, frames over the limit and truncated frames are refused; the rest pass', () => {
  assert.equal(checkPacketSize(14, 14, 1518), 'ok');
  assert.equal(checkPacketSize(1518, 1518, 1518), 'ok');
  assert.equal(checkPacketSize(13, 13, 1518), 'runt');
  assert.equal(checkPacketSize(0, 0, 1518), 'runt');
  assert.equal(checkPacketSize(1519, 1519, 1518), 'too-large');
  assert.equal(checkPacketSize(1519, 9000, 1518), 'too-large', 'truncated by the socket');
  assert.equal(checkPacketSize(100, 200, 1518), 'too-large', 'captured less than the wire length');
});

test('the address lock admits the VM\'s own MAC and IPv4 address, DHCP\'s 0.0.0.0, and refuses other sources', () => {
  const lock = new AddressLock({ macs: [VM], ips: ['10.7.0.1'] });
  const own = udpFrame(PEER, VM, ipv4Bytes('10.7.0.1'), ipv4Bytes('10.7.0.9'), 1, 2, Buffer.alloc(8));
  assert.deepEqual(lock.check(own), { ok: true });
  assert.deepEqual(lock.check(udpFrame(0xffff_ffff_ffff, VM, ipv4Bytes('0.0.0.0'), ipv4Bytes('255.255.255.255'), 68, 67, Buffer.alloc(8))), { ok: true });
  const otherMac = lock.check(udpFrame(PEER, OTHER, ipv4Bytes('10.7.0.1'), ipv4Bytes('10.7.0.9'), 1, 2, Buffer.alloc(8)));
  assert.equal(otherMac.ok, false);
  assert.equal(!otherMac.ok && otherMac.reason, 'mac');
  const otherIp = lock.check(udpFrame(PEER, VM, ipv4Bytes('10.7.0.66'), ipv4Bytes('10.7.0.9'), 1, 2, Buffer.alloc(8)));
  assert.deepEqual(otherIp, { ok: false, reason: 'ip', detail: 'IPv4 source 10.7.0.66' });
  const multicastSource = Buffer.from(own);
  multicastSource[6] = 0x01;
  assert.equal(lock.check(multicastSource).ok, false);
});

test('the address lock reads ARP senders (MAC and IP), looks through one VLAN tag, and checks IPv6 sources', () => {
  const lock = new AddressLock({ macs: [VM, OTHER], ips: ['10.7.0.1', 'fd00::1'] });
  assert.deepEqual(lock.check(arp(VM, VM, '10.7.0.1')), { ok: true });
  assert.deepEqual(lock.check(arp(VM, VM, '0.0.0.0')), { ok: true }, 'an ARP probe');
  assert.deepEqual(lock.check(arp(VM, VM, '10.7.0.5')), { ok: false, reason: 'ip', detail: 'ARP sender 10.7.0.5' });
  const lying = lock.check(arp(VM, OTHER, '10.7.0.1'));
  assert.equal(!lying.ok && lying.reason, 'mac', 'an ARP sender MAC that is not the frame\'s source');
  const frame = udpFrame(PEER, VM, ipv4Bytes('10.7.0.5'), ipv4Bytes('10.7.0.9'), 1, 2, Buffer.alloc(8));
  const tagged = Buffer.concat([frame.subarray(0, 12), Buffer.from([0x81, 0x00, 0x00, 0x07]), frame.subarray(12)]);
  assert.deepEqual(lock.check(tagged), { ok: false, reason: 'ip', detail: 'IPv4 source 10.7.0.5' });
  assert.deepEqual(lock.check(ipv6('fd00:0:0:0:0:0:0:1')), { ok: true });
  assert.deepEqual(lock.check(ipv6('fe80:0:0:0:0:0:0:42')), { ok: true }, 'link-local');
  assert.deepEqual(lock.check(ipv6('0:0:0:0:0:0:0:0')), { ok: true }, 'duplicate address detection');
  assert.deepEqual(lock.check(ipv6('fd00:0:0:0:0:0:0:2')), { ok: false, reason: 'ip', detail: 'IPv6 source fd00:0:0:0:0:0:0:2' });
});

test('the address lock without addresses checks the MAC only; headers cut short are malformed, not admitted', () => {
  const macOnly = new AddressLock({ macs: [VM], ips: [] });
  assert.equal(macOnly.checksIp, false);
  assert.deepEqual(macOnly.check(udpFrame(PEER, VM, ipv4Bytes('10.9.9.9'), ipv4Bytes('10.7.0.9'), 1, 2, Buffer.alloc(8))), { ok: true });
  const lock = new AddressLock({ macs: [VM], ips: ['10.7.0.1'] });
  const short = Buffer.concat([ethHeader(PEER, VM, 0x0800), ipv4Header(ipv4Bytes('10.7.0.1'), ipv4Bytes('10.7.0.9'), 17, 8).subarray(0, 19)]);
  assert.equal(lock.check(short).ok === false && (lock.check(short) as { reason: string }).reason, 'malformed');
  assert.equal((lock.check(Buffer.alloc(10)) as { reason: string }).reason, 'malformed');
  assert.throws(() => new AddressLock({ macs: [VM], ips: ['10.7.0.1/24'] }), RangeError);
});

test('the address lock gives a verdict, never throws, on thousands of random and mutated frames', () => {
  const lock = new AddressLock({ macs: [VM], ips: ['10.7.0.1', 'fd00::1'] });
  const rnd = seededRandom(42);
  const seeds = [arp(VM, VM, '10.7.0.1'), udpFrame(PEER, VM, ipv4Bytes('10.7.0.1'), ipv4Bytes('10.7.0.9'), 1, 2, Buffer.alloc(8)), ipv6('fd00:0:0:0:0:0:0:1')];
  for (let i = 0; i < 5000; i++) {
    const base = seeds[i % seeds.length]!;
    const f = Buffer.from(base.subarray(0, Math.floor(rnd() * (base.length + 1))));
    for (let k = 0; k < 3 && f.length > 0; k++) f[Math.floor(rnd() * f.length)] = Math.floor(rnd() * 256);
    const v = lock.check(f);
    assert.equal(typeof v.ok, 'boolean');
  }
});
