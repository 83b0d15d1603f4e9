import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRequestTarget } from '../../src/common/request-target.ts';

test('an origin-form target is a path as it is: "//x/y" is not read as a host', () => {
  assert.equal(parseRequestTarget('/api/v1/hosts?x=1')?.pathname, '/api/v1/hosts');
  assert.equal(parseRequestTarget('/api/v1/hosts?x=1')?.searchParams.get('x'), '1');
  assert.equal(parseRequestTarget('//api/v1/hosts')?.pathname, '//api/v1/hosts');
  assert.equal(parseRequestTarget('//')?.pathname, '//');
  assert.equal(parseRequestTarget('//%ff')?.pathname, '//%ff');
  assert.equal(parseRequestTarget('/links/%zz')?.pathname, '/links/%zz');
});

test('absolute-form is parsed as a URL, "*" is the path "*", anything else is undefined (a 400, never a throw)', () => {
  assert.equal(parseRequestTarget('http://controller:7070/api/v1')?.pathname, '/api/v1');
  assert.equal(parseRequestTarget('*')?.pathname, '/*');
  for (const bad of ['', 'api/v1', 'ftp://x/y', 'http://[', 'javascript:alert(1)']) assert.equal(parseRequestTarget(bad), undefined, bad);
});
