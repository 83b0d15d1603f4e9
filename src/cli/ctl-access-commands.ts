import { InvalidArgumentError, Option, type Command } from 'commander';
import type {
  ApiTokenView, CreatedApiTokenView, HostIdentityView, JoinTokenInfo, JoinTokenView, RevokedHostView,
} from '../controller/access-model.ts';
import { operatorPageUrl } from '../controller/api/page-url.ts';
import { CtlUsageError } from './errors.ts';
import { formatAge, formatTime, table } from './ctl-format.ts';
import type { CtlActions } from './ctl-io.ts';

/**
 * `vnet ctl` for access: join tokens (create, list, revoke), host
 * credentials (list, revoke: the host's session is closed at once), API
 * tokens (create with a scope, list, revoke) and the web page's address with
 * a token (`web-url`), printed only on request. Listings never show a
 * secret; a create shows its secret once.
 */

const enc = encodeURIComponent;

function parseTtl(value: string): number {
  const n = Number(value);
  if (!/^\d{1,8}$/.test(value) || n < 1) throw new InvalidArgumentError(`expected a whole number of seconds, got "${value}"`);
  return n;
}

export function joinTokensTable(tokens: readonly JoinTokenInfo[], now: number): string {
  if (tokens.length === 0) return '(no join tokens)';
  return table(
    ['ID', 'HOST', 'CREATED', 'EXPIRES', 'USES', 'STATE', 'USED BY'],
    tokens.map((t) => [
      t.id, t.host ?? '(any host)', formatTime(t.createdAt), t.expiresAt === null ? 'never' : formatTime(t.expiresAt),
      t.singleUse ? 'once' : 'many', t.state, t.usedBy === null ? '-' : `${t.usedBy} ${formatAge(t.usedAt, now)}`,
    ]),
  );
}

export function credentialsTable(identities: readonly HostIdentityView[], now: number): string {
  if (identities.length === 0) return '(no host credentials or certificates recorded)';
  return table(
    ['HOST', 'KIND', 'ID', 'SINCE', 'LAST USED', 'STATE'],
    identities.map((c) => [
      c.host, c.kind, c.kind === 'certificate' ? `${c.id.slice(0, 23)}…` : c.id, formatTime(c.since), formatAge(c.lastUsedAt, now),
      c.revokedAt !== null ? `revoked ${formatAge(c.revokedAt, now)}` : c.connected ? 'connected' : 'valid',
    ]),
  );
}

export function apiTokensTable(tokens: readonly ApiTokenView[], now: number): string {
  return table(
    ['ID', 'LABEL', 'SCOPE', 'CREATED', 'STATE'],
    tokens.map((t) => [t.id, t.label, t.scope, formatTime(t.createdAt), t.revokedAt === null ? 'valid' : `revoked ${formatAge(t.revokedAt, now)}`]),
  );
}

function joinTokenSummary(t: JoinTokenView): string {
  return `${t.token}\n(join token ${t.id} for ${t.host ?? 'any host'}, ${t.singleUse ? 'single use' : 'reusable'}, `
    + `${t.expiresAt === null ? 'no expiry' : `expires ${new Date(t.expiresAt).toISOString()}`}; shown once: give it to the daemon as controller.joinToken)`;
}

export function addAccessCommands(ctl: Command, { io, run, print }: CtlActions): void {
  const joinToken = ctl.command('join-token').description('join tokens for a daemon\'s first contact: create, list, revoke');
  joinToken
    .command('create')
    .description('create a join token (shown once): one host, one use, one hour unless asked otherwise')
    .option('--host <id>', 'the host that may use it')
    .option('--any-host', 'any host of the deployment may use it (explicitly)')
    .option('--ttl <seconds>', 'lifetime in seconds (default: the controller\'s, one hour)', parseTtl)
    .option('--multi-use', 'may be used by more than one join (explicitly)')
    .action(
      run(async (c, g, opts: { host?: string; anyHost?: boolean; ttl?: number; multiUse?: boolean }) => {
        if ((opts.host === undefined) === (opts.anyHost !== true)) throw new CtlUsageError('name the host the token is for (--host ID), or pass --any-host');
        const t = await c.post<JoinTokenView>('/api/v1/join-tokens', {
          ...(opts.host !== undefined ? { host: opts.host } : { anyHost: true }),
          ...(opts.ttl !== undefined ? { ttlSeconds: opts.ttl } : {}),
          ...(opts.multiUse === true ? { singleUse: false } : {}),
        });
        print(g, t, () => joinTokenSummary(t));
      }),
    );
  joinToken
    .command('list')
    .description('list join tokens: id, host, created, expires, used and by whom (never the secret)')
    .action(
      run(async (c, g) => {
        const { joinTokens } = await c.get<{ joinTokens: JoinTokenInfo[] }>('/api/v1/join-tokens');
        print(g, joinTokens, () => joinTokensTable(joinTokens, io.now()));
      }),
    );
  joinToken
    .command('revoke')
    .argument('<id>', 'token id (from `join-token list`)')
    .description('revoke a join token: it admits no daemon from now on')
    .action(
      run(async (c, g, id: string) => {
        const r = await c.delete<{ revoked: JoinTokenInfo }>(`/api/v1/join-tokens/${enc(id)}`);
        print(g, r.revoked, () => `revoked join token ${r.revoked.id}${r.revoked.host !== null ? ` (for ${r.revoked.host})` : ''}`);
      }),
    );

  const credentials = ctl.command('credentials').description('what hosts authenticate with (issued credentials, certificates): list, revoke');
  credentials
    .command('list')
    .description('list host credentials and the certificates hosts connected with')
    .action(
      run(async (c, g) => {
        const { credentials: list } = await c.get<{ credentials: HostIdentityView[] }>('/api/v1/credentials');
        print(g, list, () => credentialsTable(list, io.now()));
      }),
    );
  credentials
    .command('revoke')
    .argument('<host>', 'host id')
    .description('revoke a host\'s credential and certificates and close its control session now (it may then join with a new token)')
    .action(
      run(async (c, g, host: string) => {
        const { revoked: r } = await c.delete<{ revoked: RevokedHostView }>(`/api/v1/credentials/${enc(host)}`);
        print(g, r, () => `revoked ${[r.credential ? 'the credential' : '', r.certificates > 0 ? `${r.certificates} certificate(s)` : ''].filter((x) => x !== '').join(' and ')} of ${r.host}`
          + `${r.sessionClosed ? '; its control session was closed' : ''}`);
      }),
    );

  const tokens = ctl.command('tokens').description('API tokens: list, create with a scope, revoke');
  tokens
    .command('list')
    .description('list API tokens: id, label, scope, created, revoked (never the secret)')
    .action(
      run(async (c, g) => {
        const { tokens: list } = await c.get<{ tokens: ApiTokenView[] }>('/api/v1/tokens');
        print(g, list, () => apiTokensTable(list, io.now()));
      }),
    );
  tokens
    .command('create')
    .argument('<label>', 'who or what it is for (audits name it operator:LABEL)')
    .addOption(new Option('--scope <scope>', 'read: dashboards and the web page; operator: changes too').choices(['read', 'operator']).default('read'))
    .description('create an API token (shown once)')
    .action(
      run(async (c, g, label: string, opts: { scope: string }) => {
        const t = await c.post<CreatedApiTokenView>('/api/v1/tokens', { label, scope: opts.scope });
        print(g, t, () => `${t.token}\n(API token ${t.id} "${t.label}", scope ${t.scope}; shown once)`);
      }),
    );
  tokens
    .command('revoke')
    .argument('<id>', 'token id (from `tokens list`)')
    .description('revoke an API token: refused at once, its open event streams closed')
    .action(
      run(async (c, g, id: string) => {
        const r = await c.delete<{ revoked: ApiTokenView }>(`/api/v1/tokens/${enc(id)}`);
        print(g, r.revoked, () => `revoked API token ${r.revoked.id} "${r.revoked.label}"`);
      }),
    );

  ctl
    .command('web-url')
    .description('print the web page\'s address with a token (a secret: for your browser, not for logs)')
    .option('--read-only', 'with a new read-scoped token labelled "web page" instead of this one')
    .action(
      run(async (c, g, opts: { readOnly?: boolean }) => {
        if (opts.readOnly === true) {
          const t = await c.post<CreatedApiTokenView>('/api/v1/tokens', { label: 'web page', scope: 'read' });
          print(g, { url: operatorPageUrl(c.baseUrl, t.token), tokenId: t.id }, () => operatorPageUrl(c.baseUrl, t.token));
          return;
        }
        // Check the token first, so that the address printed works.
        const who = await c.get<{ tokenId: string }>('/api/v1/whoami');
        print(g, { url: c.webPageUrl(), tokenId: who.tokenId }, () => c.webPageUrl());
      }),
    );
}
