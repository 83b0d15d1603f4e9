import { InvalidArgumentError } from 'commander';
import { parseHostPort, type HostPort } from '../common/host-port.ts';

/** Commander argument parser for `HOST:PORT` (`:PORT` means loopback). */
export function hostPortArg(value: string): HostPort {
  const a = parseHostPort(value);
  if (a === undefined) throw new InvalidArgumentError(`expected HOST:PORT, got "${value}"`);
  return a;
}
