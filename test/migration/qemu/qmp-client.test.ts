import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QmpClient, QmpLineDecoder } from '../../../src/migration/qemu/qmp-client.ts';
import { QmpClosedError, QmpCommandError, QmpConnectError, QmpProtocolError, QmpTimeoutError } from '../../../src/migration/errors.ts';

const GREETING = '{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2"}, "capabilities": ["oob"]}}\r\n';

type Handler = (msg: Record<string, unknown>, sock: Socket) => void;

/** A fake QEMU: greets (unless told otherwise), then hands every request line to `handler`. */
async function fakeQmp(t: { after(fn: () => void | Promise<void>): void }, handler: Handler, opts: { greeting?: string } = {}): Promise<{ path: string; server: Server; received: Record<string, unknown>[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'vnet-qmp-'));
  const path = join(dir, 'qmp.sock');
  const received: Record<string, unknown>[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    sock.write(opts.greeting ?? GREETING);
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const msg = JSON.parse(line) as Record<string, unknown>;
        received.push(msg);
        if (msg.execute === 'qmp_capabilities') sock.write(`${JSON.stringify({ return: {}, id: msg.id })}\r\n`);
        else handler(msg, sock);
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });
  return { path, server, received };
}

const reply = (sock: Socket, obj: unknown): void => {
  sock.write(`${JSON.stringify(obj)}\r\n`);
};

test('connect reads the greeting and negotiates capabilities before any command', async (t) => {
  const { path, received } = await fakeQmp(t, (msg, sock) => reply(sock, { return: { status: 'running', running: true }, id: msg.id }));
  const c = await QmpClient.connect(path, { timeoutMs: 2000 });
  t.after(() => c.close());
  assert.deepEqual(c.greeting.version.qemu, { major: 7, minor: 2, micro: 22 });
  assert.deepEqual(c.greeting.capabilities, ['oob']);
  assert.equal(received[0]?.execute, 'qmp_capabilities');
  const st = await c.execute<{ status: string }>('query-status');
  assert.equal(st.status, 'running');
  assert.equal(received[1]?.execute, 'query-status');
  assert.equal(typeof received[1]?.id, 'string');
});

test('execute sends arguments and matches answers by id, even out of order', async (t) => {
  const held: Record<string, unknown>[] = [];
  const { path, received } = await fakeQmp(t, (msg, sock) => {
    held.push(msg);
    if (held.length === 2) {
      reply(sock, { return: { which: (held[1]?.arguments as { n: number }).n }, id: held[1]?.id });
      reply(sock, { return: { which: (held[0]?.arguments as { n: number }).n }, id: held[0]?.id });
    }
  });
  const c = await QmpClient.connect(path, { timeoutMs: 2000 });
  t.after(() => c.close());
  const [a, b] = await Promise.all([c.execute<{ which: number }>('echo', { n: 1 }), c.execute<{ which: number }>('echo', { n: 2 })]);
  assert.equal(a.which, 1);
  assert.equal(b.which, 2);
  assert.deepEqual(received[1]?.arguments, { n: 1 });
});

test('an error answer rejects with QmpCommandError carrying the class and description', async (t) => {
  const { path } = await fakeQmp(t, (msg, sock) => reply(sock, { error: { class: 'CommandNotFound', desc: "The command nope has not been found" }, id: msg.id }));
  const c = await QmpClient.connect(path, { timeoutMs: 2000 });
  t.after(() => c.close());
  await assert.rejects(c.execute('nope'), (err: unknown) => {
    assert.ok(err instanceof QmpCommandError);
    assert.equal(err.code, 'VNET_ERR_QMP_COMMAND');
    assert.equal(err.errorClass, 'CommandNotFound');
    assert.equal(err.command, 'nope');
    return true;
  });
});

test('an answer without id (request QEMU could not parse) goes to the oldest outstanding command', async (t) => {
  const { path } = await fakeQmp(t, (_msg, sock) => reply(sock, { error: { class: 'GenericError', desc: 'JSON parse error' } }));
  const c = await QmpClient.connect(path, { timeoutMs: 2000 });
  t.after(() => c.close());
  await assert.rejects(c.execute('x'), QmpCommandError);
});

test('no answer within the deadline rejects with QmpTimeoutError; a late answer is ignored', async (t) => {
  let late: (() => void) | undefined;
  const { path } = await fakeQmp(t, (msg, sock) => {
    if (msg.execute === 'slow') late = () => reply(sock, { return: {}, id: msg.id });
    else reply(sock, { return: { ok: true }, id: msg.id });
  });
  const c = await QmpClient.connect(path, { timeoutMs: 2000 });
  t.after(() => c.close());
  await assert.rejects(c.execute('slow', undefined, { timeoutMs: 50 }), (err: unknown) => err instanceof QmpTimeoutError && err.code === 'VNET_ERR_QMP_TIMEOUT');
  late?.();
  assert.deepEqual(await c.execute('fast'), { ok: true });
});

test('events reach listeners and waitForEvent, with the timestamp', async (t) => {
  const { path } = await fakeQmp(t, (msg, sock) => {
    reply(sock, { timestamp: { seconds: 1700000000, microseconds: 500000 }, event: 'STOP' });
    reply(sock, { return: {}, id: msg.id });
  });
  const c = await QmpClient.connect(path, { timeoutMs: 2000 });
  t.after(() => c.close());
  const seen: string[] = [];
  c.onEvent((e) => seen.push(e.event));
  const stopped = c.waitForEvent('STOP', { timeoutMs: 2000 });
  await c.execute('stop');
  const ev = await stopped;
  assert.equal(ev.event, 'STOP');
  assert.equal(ev.timestamp, 1700000000.5);
  assert.deepEqual(seen, ['STOP']);
  await assert.rejects(c.waitForEvent('RESUME', { timeoutMs: 30 }), QmpTimeoutError);
});

test('the server closing rejects outstanding commands and waiters with QmpClosedError', async (t) => {
  const { path } = await fakeQmp(t, (_msg, sock) => sock.destroy());
  const c = await QmpClient.connect(path, { timeoutMs: 2000 });
  const waiting = c.waitForEvent('SHUTDOWN', { timeoutMs: 5000 });
  const closedWith = new Promise<Error | undefined>((r) => c.onClose(r));
  await assert.rejects(c.execute('quit'), QmpClosedError);
  await assert.rejects(waiting, QmpClosedError);
  assert.ok((await closedWith) !== undefined);
  assert.equal(c.closed, true);
  await assert.rejects(c.execute('query-status'), QmpClosedError);
});

test('bytes that are not JSON close the connection with QmpProtocolError', async (t) => {
  const { path } = await fakeQmp(t, (_msg, sock) => sock.write('this is not json\r\n'));
  const c = await QmpClient.connect(path, { timeoutMs: 2000 });
  t.after(() => c.close());
  await assert.rejects(c.execute('query-status'), (err: unknown) => err instanceof QmpProtocolError && err.code === 'VNET_ERR_QMP_PROTOCOL');
  assert.equal(c.closed, true);
});

test('a wrong greeting, or none at all, is a QmpConnectError', async (t) => {
  const bad = await fakeQmp(t, () => {}, { greeting: '{"hello": 1}\n' });
  await assert.rejects(QmpClient.connect(bad.path, { timeoutMs: 2000 }), (err: unknown) => err instanceof QmpConnectError && /greeting/.test(err.message));
  const silent = await fakeQmp(t, () => {}, { greeting: '' });
  await assert.rejects(QmpClient.connect(silent.path, { timeoutMs: 100 }), (err: unknown) => err instanceof QmpConnectError && /no greeting/.test(err.message));
  await assert.rejects(QmpClient.connect(join(tmpdir(), 'vnet-no-such-dir', 'qmp.sock'), { timeoutMs: 1000 }), QmpConnectError);
});

test('the line decoder accepts any chunking and bounds the line length', () => {
  const d = new QmpLineDecoder(64);
  const bytes = Buffer.from('{"a":1}\r\n\r\n{"b":[2,3]}\n{"c"');
  const got: Record<string, unknown>[] = [];
  for (const b of bytes) got.push(...d.push(Uint8Array.of(b)));
  assert.deepEqual(got, [{ a: 1 }, { b: [2, 3] }]);
  assert.deepEqual(d.push(Buffer.from(':4}\n')), [{ c: 4 }]);
  assert.throws(() => new QmpLineDecoder(16).push(Buffer.from('{"x":"' + 'y'.repeat(32))), QmpProtocolError);
  assert.throws(() => new QmpLineDecoder(16).push(Buffer.from('[1,2]\n')), QmpProtocolError);
  assert.throws(() => new QmpLineDecoder(16).push(Buffer.from('{"x":\n')), QmpProtocolError);
});
