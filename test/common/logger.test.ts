import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { componentLogger, type Logger } from '../../src/common/logger.ts';

/** Log lines as raw text, so that a repeated key is visible (JSON.parse would keep one). */
function capture(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter((l) => l !== ''));
      done();
    },
  });
  const logger: Logger = pino({ level: 'info', base: { pid: 1 } }, sink);
  return { logger, lines };
}

const keyCount = (line: string, key: string): number => line.split(`"${key}":`).length - 1;

test('a component logger made from another names each key once: the inner component, the outer bindings kept', () => {
  const { logger, lines } = capture();
  const transport = componentLogger(logger, 'transport', { host: 'h1' });
  const link = componentLogger(transport, 'link', { peer: 'h2' });
  const again = componentLogger(link, 'link-writer', { peer: 'h3' });
  link.info('up');
  again.info('wrote');
  transport.info('listening');
  assert.equal(lines.length, 3);
  for (const line of lines) {
    for (const key of ['component', 'host', 'peer', 'pid']) assert.ok(keyCount(line, key) <= 1, `${key} repeated in ${line}`);
  }
  const [up, wrote, listening] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual([up!.component, up!.host, up!.peer], ['link', 'h1', 'h2']);
  assert.deepEqual([wrote!.component, wrote!.host, wrote!.peer], ['link-writer', 'h1', 'h3']);
  assert.deepEqual([listening!.component, listening!.host], ['transport', 'h1']);
});
