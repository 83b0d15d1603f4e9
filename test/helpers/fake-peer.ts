/**
 * A fake IPv4 host played by the test in Node, on the far side of a port: it
 * answers ARP requests for its address, ICMP echo requests, and (optionally)
 * accepts one TCP connection on a port, acknowledging every in-order segment
 * so the sender keeps sending. It counts what it saw, so a test can assert
 * that the kernel on the other side really exchanged traffic with it.
 */
import type { Frame } from '../../src/common/frame.ts';
import { dstMacOf, srcMacOf, type Mac } from '../../src/common/mac.ts';
import { checksum, ethHeader, ipv4Bytes, ipv4Header } from './packets.ts';

export interface FakePeerInit {
  mac: Mac;
  ip: string;
  /** Writes a frame towards the kernel (e.g. `port.send(plainFrame(b))`). */
  send: (frame: Buffer) => void;
  /** Accept TCP connections to this port. */
  tcpPort?: number;
}

export interface FakePeerCounts {
  arpRequests: number;
  echoRequests: number;
  tcpSyns: number;
  tcpDataSegments: number;
  tcpPayloadBytes: number;
  /** TCP frames larger than the link MTU would allow (GSO super-frames). */
  largestTcpFrame: number;
}

export class FakePeer {
  readonly mac: Mac;
  readonly ip: Buffer;
  readonly counts: FakePeerCounts = { arpRequests: 0, echoRequests: 0, tcpSyns: 0, tcpDataSegments: 0, tcpPayloadBytes: 0, largestTcpFrame: 0 };
  readonly #send: (frame: Buffer) => void;
  readonly #tcpPort: number | undefined;
  #tcpExpected: number | undefined;
  #ipId = 1;

  constructor(init: FakePeerInit) {
    this.mac = init.mac;
    this.ip = ipv4Bytes(init.ip);
    this.#send = init.send;
    this.#tcpPort = init.tcpPort;
  }

  /** Looks at one frame from the kernel and answers it if it is for us. */
  handle(frame: Frame): void {
    const d = frame.data;
    if (d.length < 14) return;
    const dst = dstMacOf(d);
    if (dst !== this.mac && dst !== 0xffff_ffff_ffff) return;
    const type = d.readUInt16BE(12);
    if (type === 0x0806) this.#arp(d);
    else if (type === 0x0800 && d.length >= 34 && d.subarray(30, 34).equals(this.ip)) this.#ipv4(d);
  }

  #arp(d: Buffer): void {
    if (d.length < 42 || d.readUInt16BE(20) !== 1 || !d.subarray(38, 42).equals(this.ip)) return;
    this.counts.arpRequests++;
    const reply = Buffer.alloc(42);
    ethHeader(srcMacOf(d), this.mac, 0x0806).copy(reply, 0);
    d.copy(reply, 14, 14, 20); // htype, ptype, hlen, plen
    reply.writeUInt16BE(2, 20);
    reply.set(reply.subarray(6, 12), 22); // sender MAC: ours
    this.ip.copy(reply, 28);
    d.copy(reply, 32, 22, 32); // target: the requester's MAC and IP
    this.#send(reply);
  }

  #ipv4(d: Buffer): void {
    const ihl = (d[14]! & 0xf) * 4;
    const l4 = 14 + ihl;
    const proto = d[23]!;
    const src = Buffer.from(d.subarray(26, 30));
    if (proto === 1 && d.length >= l4 + 8 && d[l4] === 8) {
      this.counts.echoRequests++;
      const icmp = Buffer.from(d.subarray(l4, 14 + d.readUInt16BE(16)));
      icmp[0] = 0; // echo reply
      icmp.writeUInt16BE(0, 2);
      icmp.writeUInt16BE(checksum(icmp), 2);
      this.#send(Buffer.concat([ethHeader(srcMacOf(d), this.mac, 0x0800), ipv4Header(this.ip, src, 1, icmp.length, this.#ipId++), icmp]));
    } else if (proto === 6 && this.#tcpPort !== undefined && d.length >= l4 + 20 && d.readUInt16BE(l4 + 2) === this.#tcpPort) {
      this.#tcp(d, l4, src);
    }
  }

  #tcp(d: Buffer, l4: number, src: Buffer): void {
    const flags = d[l4 + 13]!;
    const seq = d.readUInt32BE(l4 + 4);
    const dataOff = (d[l4 + 12]! >> 4) * 4;
    const payload = d.length - l4 - dataOff;
    this.counts.largestTcpFrame = Math.max(this.counts.largestTcpFrame, d.length);
    if ((flags & 0x02) !== 0) {
      this.counts.tcpSyns++;
      this.#tcpExpected = (seq + 1) >>> 0;
      this.#tcpReply(d, l4, src, 0x12, 1000, true); // SYN|ACK with an MSS option
      return;
    }
    if (payload <= 0 || this.#tcpExpected === undefined) return;
    this.counts.tcpDataSegments++;
    if (seq === this.#tcpExpected) {
      this.counts.tcpPayloadBytes += payload;
      this.#tcpExpected = (seq + payload) >>> 0;
    }
    this.#tcpReply(d, l4, src, 0x10, 1001, false); // cumulative ACK
  }

  #tcpReply(d: Buffer, l4: number, src: Buffer, flags: number, seq: number, mssOption: boolean): void {
    const tcp = Buffer.alloc(mssOption ? 24 : 20);
    tcp.writeUInt16BE(d.readUInt16BE(l4 + 2), 0);
    tcp.writeUInt16BE(d.readUInt16BE(l4), 2);
    tcp.writeUInt32BE(seq, 4);
    tcp.writeUInt32BE(this.#tcpExpected!, 8);
    tcp[12] = (tcp.length / 4) << 4;
    tcp[13] = flags;
    tcp.writeUInt16BE(65535, 14);
    if (mssOption) tcp.writeUInt32BE(0x020405b4, 20); // MSS 1460
    const ps = Buffer.alloc(12);
    this.ip.copy(ps, 0);
    src.copy(ps, 4);
    ps[9] = 6;
    ps.writeUInt16BE(tcp.length, 10);
    tcp.writeUInt16BE(checksum(Buffer.concat([ps, tcp])), 16);
    this.#send(Buffer.concat([ethHeader(srcMacOf(d), this.mac, 0x0800), ipv4Header(this.ip, src, 6, tcp.length, this.#ipId++), tcp]));
  }
}
