import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseEtcdStoreUrl } from '../../../src/controller/store/etcd/etcd-url.ts';

test('etcd:// store addresses: endpoints become client URLs, the prefix defaults to /vnet', () => {
  assert.deepEqual(parseEtcdStoreUrl('etcd://h1:2379,h2:2379,[::1]:2379'), { endpoints: ['http://h1:2379', 'http://h2:2379', 'http://[::1]:2379'], prefix: '/vnet' });
  assert.deepEqual(parseEtcdStoreUrl('etcd://127.0.0.1:2379/prod/vnet'), { endpoints: ['http://127.0.0.1:2379'], prefix: '/prod/vnet' });
});

test('a bad --store is a ConfigError naming what is wrong', () => {
  for (const [text, why] of [
    ['sqlite:///x.db', /only etcd:\/\//],
    ['etcd://', /no etcd endpoint/],
    ['etcd://h1', /"h1" is not HOST:PORT/],
    ['etcd://h1:2379,,h2:2379', /"" is not HOST:PORT/],
    ['etcd://h1:99999', /is not HOST:PORT/],
    ['etcd://h1:2379/', /key prefix "\/"/],
    ['etcd://h1:2379/a b', /key prefix/],
  ] as const) {
    assert.throws(() => parseEtcdStoreUrl(text), (err: Error & { code?: string }) => err.code === 'VNET_ERR_CONFIG' && why.test(err.message), text);
  }
});
