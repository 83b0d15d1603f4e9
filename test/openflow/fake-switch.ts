import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { OpenFlowDecoder } from '../../src/openflow/decoder.ts';
import { encodeMessage } from '../../src/openflow/message-codec.ts';
import type { OfMessage } from '../../src/openflow/messages.ts';

/**
 * A scripted OpenFlow 1.3 switch over loopback, for the listener's unit
 * tests: it answers the handshake (HELLO with `versions`, FEATURES_REPLY
 * with `datapathId`), echoes and barriers unless told to stay silent, and
 * hands every other message to `onMessage`, which may answer.
 */
export interface FakeSwitchInit {
  port: number;
  datapathId: bigint;
  versions?: number[];
  /** Answer nothing at all after the handshake (a hung switch). */
  silent?: boolean;
  /** Send no HELLO (the test sends what it likes instead). */
  skipHello?: boolean;
  /** Do not answer FEATURES_REQUEST (a switch stuck in its handshake). */
  noFeatures?: boolean;
  tls?: { ca: string; cert: string; key: string };
  onMessage?: (m: OfMessage, sw: FakeSwitch) => void;
}

export class FakeSwitch {
  readonly received: OfMessage[] = [];
  readonly socket: Socket;
  closed = false;
  readonly #init: FakeSwitchInit;

  constructor(init: FakeSwitchInit) {
    this.#init = init;
    this.socket =
      init.tls === undefined
        ? tcpConnect(init.port, '127.0.0.1')
        : tlsConnect({ port: init.port, host: '127.0.0.1', ca: init.tls.ca, cert: init.tls.cert, key: init.tls.key, servername: 'localhost', checkServerIdentity: () => undefined });
    const decoder = new OpenFlowDecoder({ onMessage: (m) => this.#onMessage(m), onDecodeError: () => this.socket.destroy() });
    this.socket.on('data', (c: Buffer) => decoder.push(c));
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => {
      this.closed = true;
    });
    if (init.skipHello !== true) this.send({ type: 'hello', xid: 1, versions: init.versions ?? [1, 4] });
  }

  send(m: OfMessage): void {
    this.socket.write(encodeMessage(m));
  }

  close(): void {
    this.socket.destroy();
  }

  #onMessage(m: OfMessage): void {
    this.received.push(m);
    if (m.type === 'features-request' && this.#init.noFeatures !== true) {
      this.send({ type: 'features-reply', xid: m.xid, datapathId: this.#init.datapathId, nBuffers: 0, nTables: 254, auxiliaryId: 0, capabilities: 0x4f });
      return;
    }
    if (this.#init.silent === true || m.type === 'hello' || m.type === 'features-request') return;
    if (m.type === 'echo-request') this.send({ type: 'echo-reply', xid: m.xid, data: m.data });
    else if (m.type === 'barrier-request') this.send({ type: 'barrier-reply', xid: m.xid });
    else this.#init.onMessage?.(m, this);
  }
}
