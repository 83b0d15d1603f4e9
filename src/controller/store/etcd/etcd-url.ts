import { ConfigError } from '../../../common/errors.ts';
import { formatHostPort, parseHostPort } from '../../../common/host-port.ts';

/** Where an etcd-backed store lives: `etcd://h1:2379,h2:2379,h3:2379[/prefix]`. */
export interface EtcdStoreAddress {
  /** Client URLs (`http://h1:2379`). */
  endpoints: string[];
  /** Key prefix of this deployment's state (default `/vnet`). */
  prefix: string;
}

const PREFIX = /^(\/[A-Za-z0-9._-]+)+$/;

/** Parse `--store`; a clear ConfigError naming what is wrong otherwise. `tls`: the endpoints are https:// (a CA was given). */
export function parseEtcdStoreUrl(text: string, tls = false): EtcdStoreAddress {
  const bad = (why: string): ConfigError => new ConfigError(`--store ${JSON.stringify(text)}: ${why} (expected etcd://HOST:PORT[,HOST:PORT...][/prefix])`, { key: 'store' });
  if (!text.startsWith('etcd://')) throw bad('only etcd:// stores are given with --store (SQLite is --db)');
  const rest = text.slice('etcd://'.length);
  const slash = rest.indexOf('/');
  const hosts = slash < 0 ? rest : rest.slice(0, slash);
  const prefix = slash < 0 ? '/vnet' : rest.slice(slash);
  if (!PREFIX.test(prefix)) throw bad(`key prefix ${JSON.stringify(prefix)} is not /word[/word...]`);
  if (hosts === '') throw bad('no etcd endpoint');
  const endpoints = hosts.split(',').map((h) => {
    const hp = parseHostPort(h);
    if (hp === undefined || hp.port === 0) throw bad(`${JSON.stringify(h)} is not HOST:PORT`);
    return `${tls ? 'https' : 'http'}://${formatHostPort(hp)}`;
  });
  return { endpoints, prefix };
}
