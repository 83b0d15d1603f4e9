import { Command, InvalidArgumentError } from 'commander';
import { VnetError } from '../common/errors.ts';
import { initCa, issueHostCert } from '../pki/certs.ts';
import { linkKeyFile, writeLinkKey } from '../dataplane/link-auth.ts';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`expected a positive whole number, got "${value}"`);
  return n;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Run one certs action: VnetErrors become one line on stderr and exit code 1. */
async function run(name: string, action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (err) {
    if (err instanceof VnetError) {
      console.error(`vnet certs ${name}: ${err.message}`);
      process.exitCode = 1;
      return;
    }
    throw err;
  }
}

/**
 * `vnet certs`: the deployment CA and the per-host certificates that mutual
 * TLS between daemons needs (layout in src/dataplane/certs.ts):
 *
 *   vnet certs init --dir DIR [--force] [--days N] [--name CN]
 *   vnet certs host --dir DIR --host ID [--ip ADDR]... [--dns NAME]... [--force] [--days N]
 *   vnet certs link-key --dir DIR [--force]      (DIR/link.key: the deployment's key for TCP links without certificates)
 */
export function certsCommand(): Command {
  const certs = new Command('certs').description('create the deployment CA and host certificates for TLS links');

  certs
    .command('init')
    .description('create a CA in DIR (kept if one exists, unless --force)')
    .requiredOption('--dir <dir>', 'certificate directory')
    .option('--force', 'replace an existing CA (host certificates must then be reissued)', false)
    .option('--days <n>', 'validity in days (default 3650)', positiveInt)
    .option('--name <cn>', 'CA common name', 'vnet deployment CA')
    .action(async (opts: { dir: string; force: boolean; days?: number; name: string }) =>
      run('init', async () => {
        const r = await initCa(opts.dir, { force: opts.force, commonName: opts.name, ...(opts.days !== undefined ? { days: opts.days } : {}) });
        if (r.created) console.log(`created CA: ${r.certFile} (key ${r.keyFile}, mode 0600)`);
        else console.log(`CA already exists, kept: ${r.certFile} (use --force to replace it)`);
      }),
    );

  certs
    .command('host')
    .description('issue a key and certificate for host ID, signed by the CA in DIR')
    .requiredOption('--dir <dir>', 'certificate directory (made by `vnet certs init`)')
    .requiredOption('--host <id>', 'host id (the certificate CN and a SAN DNS name)')
    .option('--ip <addr>', 'extra SAN IP address (repeatable)', collect, [])
    .option('--dns <name>', 'extra SAN DNS name (repeatable)', collect, [])
    .option('--force', 'reissue an existing host certificate', false)
    .option('--days <n>', 'validity in days (default 825)', positiveInt)
    .action(async (opts: { dir: string; host: string; ip: string[]; dns: string[]; force: boolean; days?: number }) =>
      run('host', async () => {
        const r = await issueHostCert(opts.dir, opts.host, {
          force: opts.force,
          ips: opts.ip,
          dnsNames: opts.dns,
          ...(opts.days !== undefined ? { days: opts.days } : {}),
        });
        if (r.created) console.log(`issued certificate for ${opts.host}: ${r.certFile} (key ${r.keyFile}, mode 0600)`);
        else console.log(`certificate for ${opts.host} already exists, kept: ${r.certFile} (use --force to reissue)`);
      }),
    );

  certs
    .command('link-key')
    .description('create DIR/link.key, the deployment link key that authenticates plain TCP links of daemons without host certificates')
    .requiredOption('--dir <dir>', 'directory to hold link.key (mode 0600; copy it to every host as tunnel.linkKeyFile)')
    .option('--force', 'replace an existing link key (every host must then get the new one)', false)
    .action(async (opts: { dir: string; force: boolean }) =>
      run('link-key', async () => {
        const file = linkKeyFile(opts.dir);
        if (writeLinkKey(file, opts.force)) console.log(`created link key: ${file} (mode 0600)`);
        else console.log(`link key already exists, kept: ${file} (use --force to replace it)`);
      }),
    );

  return certs;
}
