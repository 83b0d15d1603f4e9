import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { resetSocket } from '../../src/common/socket-reset.ts';
import { waitFor } from '../helpers/wait.ts';

/** A loopback server and one connection to it: the accepted socket and the client's. */
async function pair(t: { after(fn: () => Promise<void>): void }): Promise<{ server: Server; accepted: Socket; client: Socket; clientError: () => string | undefined; clientClosed: () => boolean }> {
  let accepted: Socket | undefined;
  const server = createServer((s) => { accepted = s; });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const client = connect((server.address() as { port: number }).port, '127.0.0.1');
  let error: string | undefined;
  let closed = false;
  client.on('error', (err: NodeJS.ErrnoException) => { error = err.code; });
  client.on('close', () => { closed = true; });
  client.resume();
  await waitFor(() => accepted !== undefined, 'the accepted connection');
  return { server, accepted: accepted!, client, clientError: () => error, clientClosed: () => closed };
}

/** TCP handles still open in this process. */
const tcpHandles = (): string[] => process.getActiveResourcesInfo().filter((r) => r.startsWith('TCP'));

test('a socket still writing is closed with a reset: the peer sees ECONNRESET', async (t) => {
  const { server, accepted, clientError, clientClosed } = await pair(t);
  let closed = false;
  accepted.on('close', () => { closed = true; });
  resetSocket(accepted);
  await waitFor(() => closed && clientClosed(), () => `both ends closed (this end ${closed}, the peer ${clientClosed()})`);
  assert.equal(clientError(), 'ECONNRESET');
  await new Promise<void>((r) => server.close(() => r()));
  await waitFor(() => tcpHandles().length === 0, () => `no TCP handle left open (open: ${tcpHandles().join(', ')})`);
});

test('a socket that already ended its writing is closed, not leaked (Node refuses to reset it and leaves its handle open)', async (t) => {
  const { server, accepted, clientClosed } = await pair(t);
  let closed = false;
  let error: string | undefined;
  accepted.on('close', () => { closed = true; });
  accepted.on('error', (err: NodeJS.ErrnoException) => { error = err.code; });
  accepted.end();
  resetSocket(accepted);
  await waitFor(() => closed && clientClosed(), () => `both ends closed (this end ${closed}${error === undefined ? '' : `, error ${error}`}, the peer ${clientClosed()})`);
  assert.equal(error, undefined);
  await new Promise<void>((r) => server.close(() => r()));
  // A handle left open here made the process spin for ever at exit, in its handle cleanup.
  await waitFor(() => tcpHandles().length === 0, () => `no TCP handle left open (open: ${tcpHandles().join(', ')})`);
});
