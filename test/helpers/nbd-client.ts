/**
 * A small NBD client for the tests of src/host/nbd-server.ts: raw bytes in
 * (`send`), and exact reads of what the server answers (`readExactly`), with
 * the handshake and simple-reply steps on top. Every read is bounded by a
 * deadline so a server that says nothing fails the test rather than hanging.
 */
import net from 'node:net';
import {
  CLIENT_FLAG, CMD, encodeClientFlags, encodeGoData, encodeOption, encodeRequest, IHAVEOPT, NBD_MAGIC, OPT, OPTION_REPLY_MAGIC, REP, SIMPLE_REPLY_MAGIC,
} from '../../src/host/nbd-codec.ts';

export interface OptionReply { option: number; type: number; data: Buffer }
export interface SimpleReply { error: number; cookie: bigint; data: Buffer }

export class NbdTestClient {
  readonly socket: net.Socket;
  #buffer = Buffer.alloc(0);
  #closed = false;
  #wake: (() => void) | undefined;
  #cookie = 1n;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (b: Buffer) => { this.#buffer = Buffer.concat([this.#buffer, b]); this.#wake?.(); });
    socket.on('close', () => { this.#closed = true; this.#wake?.(); });
    socket.on('error', () => {});
  }

  static async connect(path: string): Promise<NbdTestClient> {
    const socket = net.connect(path);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    return new NbdTestClient(socket);
  }

  /** Connect and read the greeting; returns the handshake flags. */
  static async greeted(path: string): Promise<{ client: NbdTestClient; flags: number }> {
    const client = await NbdTestClient.connect(path);
    const g = await client.readExactly(18);
    if (g.readBigUInt64BE(0) !== NBD_MAGIC || g.readBigUInt64BE(8) !== IHAVEOPT) throw new Error('not an NBD newstyle greeting');
    return { client, flags: g.readUInt16BE(16) };
  }

  /** Handshake with NBD_OPT_GO on `name`: the export's size and transmission flags. */
  static async open(path: string, name: string): Promise<{ client: NbdTestClient; size: bigint; flags: number }> {
    const { client } = await NbdTestClient.greeted(path);
    client.send(encodeClientFlags(CLIENT_FLAG.fixedNewstyle | CLIENT_FLAG.noZeroes));
    client.send(encodeOption(OPT.go, encodeGoData(name)));
    const info = await client.optionReply();
    if (info.type !== REP.info) throw new Error(`GO answered ${info.type.toString(16)}`);
    const ack = await client.optionReply();
    if (ack.type !== REP.ack) throw new Error(`GO ended with ${ack.type.toString(16)}`);
    return { client, size: info.data.readBigUInt64BE(2), flags: info.data.readUInt16BE(10) };
  }

  send(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  async readExactly(n: number, timeoutMs = 10_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.#buffer.length < n) {
      if (this.#closed) throw new Error(`connection closed with ${this.#buffer.length} of ${n} bytes`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${n} bytes within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => { const t = setTimeout(resolve, left); this.#wake = () => { clearTimeout(t); resolve(); }; });
      this.#wake = undefined;
    }
    const out = this.#buffer.subarray(0, n);
    this.#buffer = this.#buffer.subarray(n);
    return out;
  }

  async optionReply(): Promise<OptionReply> {
    const h = await this.readExactly(20);
    if (h.readBigUInt64BE(0) !== OPTION_REPLY_MAGIC) throw new Error('not an option reply');
    return { option: h.readUInt32BE(8), type: h.readUInt32BE(12), data: await this.readExactly(h.readUInt32BE(16)) };
  }

  /** A simple reply; `dataLength` bytes follow it when it carries no error. */
  async simpleReply(dataLength = 0): Promise<SimpleReply> {
    const h = await this.readExactly(16);
    if (h.readUInt32BE(0) !== SIMPLE_REPLY_MAGIC) throw new Error('not a simple reply');
    const error = h.readUInt32BE(4);
    return { error, cookie: h.readBigUInt64BE(8), data: error === 0 && dataLength > 0 ? await this.readExactly(dataLength) : Buffer.alloc(0) };
  }

  async read(offset: number, length: number): Promise<SimpleReply> {
    this.send(encodeRequest({ type: CMD.read, cookie: this.#cookie++, offset, length }));
    return this.simpleReply(length);
  }

  async write(offset: number, data: Uint8Array, flags = 0): Promise<SimpleReply> {
    this.send(encodeRequest({ type: CMD.write, flags, cookie: this.#cookie++, offset, length: data.length, data }));
    return this.simpleReply();
  }

  async command(type: number, offset = 0, length = 0): Promise<SimpleReply> {
    this.send(encodeRequest({ type, cookie: this.#cookie++, offset, length }));
    return this.simpleReply();
  }

  /** Resolves once the server has closed the connection (or the deadline passes: throws). */
  async closedByServer(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#closed) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`the server did not close the connection within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => { const t = setTimeout(resolve, left); this.#wake = () => { clearTimeout(t); resolve(); }; });
      this.#wake = undefined;
    }
  }

  close(): void {
    this.socket.destroy();
  }
}
