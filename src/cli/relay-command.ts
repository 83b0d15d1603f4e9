import { Command, InvalidArgumentError } from 'commander';
import { startDelayRelay, type RelayEndpoint } from '../common/delay-relay.ts';
import { VnetError } from '../common/errors.ts';
import { createRootLogger } from '../common/logger.ts';
import { hostPortArg } from './cli-options.ts';
import { formatHostPort } from '../common/host-port.ts';

const parseEndpoint: (v: string) => RelayEndpoint = hostPortArg;

/** `15ms`, `15`, `0.5ms`, `1s` → milliseconds. */
function parseDelay(v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|us)?$/.exec(v.trim());
  if (m === null) throw new InvalidArgumentError(`expected a delay like 15ms, 0.5ms or 1s, got "${v}"`);
  const n = Number(m[1]);
  return m[2] === 's' ? n * 1000 : m[2] === 'us' ? n / 1000 : n;
}

/** `100mbit`, `1gbit`, `500kbit`, `100` (Mbit/s) → Mbit/s. */
function parseBandwidth(v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(kbit|mbit|gbit)?$/i.exec(v.trim());
  if (m === null || Number(m[1]) <= 0) throw new InvalidArgumentError(`expected a rate like 100mbit, 1gbit or 500kbit, got "${v}"`);
  const unit = (m[2] ?? 'mbit').toLowerCase();
  return Number(m[1]) * (unit === 'kbit' ? 1e-3 : unit === 'gbit' ? 1e3 : 1);
}

/** `65536`, `64KiB`, `4MiB` → bytes. */
function parseBytes(v: string): number {
  const m = /^(\d+)\s*(k|KiB|m|MiB)?$/i.exec(v.trim());
  if (m === null) throw new InvalidArgumentError(`expected a size like 65536, 64KiB or 4MiB, got "${v}"`);
  return Number(m[1]) * (m[2] === undefined ? 1 : /^k/i.test(m[2]) ? 1024 : 1024 * 1024);
}

/** `vnet relay`: a TCP relay that adds WAN delay (and a bandwidth cap) in both directions, until SIGINT/SIGTERM. */
export function relayCommand(): Command {
  return new Command('relay')
    .description('relay TCP connections to a target with an added one-way delay and an optional bandwidth cap (userspace WAN emulation)')
    .requiredOption('--listen <host:port>', 'accept connections here', parseEndpoint)
    .requiredOption('--target <host:port>', 'connect each accepted connection to this address', parseEndpoint)
    .requiredOption('--delay <time>', 'one-way delay in each direction (15ms, 0.5ms, 1s)', parseDelay)
    .option('--bandwidth <rate>', 'cap per direction, shared by all connections (100mbit, 1gbit)', parseBandwidth)
    .option('--burst <bytes>', 'bytes the cap passes at line rate after idle', parseBytes)
    .option('--max-queued <bytes>', 'bound of each connection direction\'s queue (default 4MiB)', parseBytes)
    .action(async (o: { listen: RelayEndpoint; target: RelayEndpoint; delay: number; bandwidth?: number; burst?: number; maxQueued?: number }) => {
      const ac = new AbortController();
      const stop = (): void => ac.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        const relay = await startDelayRelay(
          { logger: createRootLogger() },
          {
            listen: o.listen,
            target: o.target,
            delayMs: o.delay,
            signal: ac.signal,
            ...(o.bandwidth !== undefined ? { bandwidthMbit: o.bandwidth } : {}),
            ...(o.burst !== undefined ? { burstBytes: o.burst } : {}),
            ...(o.maxQueued !== undefined ? { maxQueuedBytes: o.maxQueued } : {}),
          },
        );
        console.error(`vnet relay: ${formatHostPort({ host: o.listen.host, port: relay.port })} → ${formatHostPort(o.target)}, delay ${o.delay} ms each way${o.bandwidth !== undefined ? `, ${o.bandwidth} Mbit/s` : ''}`);
        await new Promise<void>((resolve) => ac.signal.addEventListener('abort', () => resolve(), { once: true }));
        await relay.close();
        const s = relay.stats;
        console.error(`vnet relay: ${s.accepted} connections, ${s.bytesUp} bytes up, ${s.bytesDown} bytes down, ${s.connectFailures} target failures`);
      } catch (err) {
        console.error(`vnet relay: ${err instanceof VnetError ? `${err.code}: ` : ''}${err instanceof Error ? err.message : String(err)}`);
        process.exitCode = 1;
      } finally {
        process.removeListener('SIGINT', stop);
        process.removeListener('SIGTERM', stop);
      }
    });
}
