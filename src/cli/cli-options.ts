import { InvalidArgumentError } from 'commander';
import { hostPortOrProblem, type HostPort } from '../common/host-port.ts';

/** Commander argument parser for `HOST:PORT` or `[IPv6]:PORT` (`:PORT` means loopback). */
export function hostPortArg(value: string): HostPort {
  const a = hostPortOrProblem(value);
  if (a.endpoint === undefined) throw new InvalidArgumentError(`"${value}": ${a.problem}`);
  return a.endpoint;
}
