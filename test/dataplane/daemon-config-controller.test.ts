import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/common/errors.ts';
import { controllerUrls, parseDaemonConfig } from '../../src/dataplane/daemon-config.ts';

const base = { host: 'h1', role: 'hub', listen: { host: '127.0.0.1', port: 7000 }, tls: { dir: '/nonexistent/certs' } };
const A = 'wss://10.0.0.1:7400/control';
const B = 'wss://10.0.0.2:7400/control';

function refused(controller: Record<string, unknown>, part: string): void {
  assert.throws(() => parseDaemonConfig({ ...base, controller }, 'd.yaml'), (err: unknown) => {
    assert.ok(err instanceof ConfigError, String(err));
    assert.ok(err.message.includes(part), `${err.message} lacks ${part}`);
    return true;
  });
}

test('daemon config: controller.url is one control channel, controller.urls the replicas tried in turn', () => {
  const one = parseDaemonConfig({ ...base, controller: { url: A } }, 'd.yaml');
  assert.deepEqual(controllerUrls(one.controller!), [A]);
  const replicas = parseDaemonConfig({ ...base, controller: { urls: [A, B] } }, 'd.yaml');
  assert.deepEqual(controllerUrls(replicas.controller!), [A, B]);
});

test('daemon config: a controller without an address, with both url and urls, or with a bad address in the list is refused, naming it', () => {
  refused({}, 'url or, for replicas, as urls');
  refused({ url: A, urls: [B] }, 'one of the two');
  refused({ urls: [] }, 'urls');
  refused({ urls: [A, 'https://10.0.0.2:7400/control'] }, 'expected wss://HOST:PORT/PATH');
});
