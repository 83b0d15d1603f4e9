import type { Registry } from 'prom-client';
import type { Clock } from '../../common/clock.ts';
import type { Logger } from '../../common/logger.ts';
import type { AccessCommands } from '../access-model.ts';
import type { ControllerModel } from '../api-model.ts';
import { startApiServer } from './api-server.ts';
import { operatorPageUrl } from './page-url.ts';
import type { ApiServerInit } from './api-server.ts';
import { readTokenFile, writeTokenFile } from './token-file.ts';
import { ensureInitialApiToken, verifyApiToken } from './token-store.ts';
import type { TokenStore } from './token-store.ts';
import type { ReplicaStatusView } from '../replica-status.ts';
import type { ImagePublisher } from '../image-publisher.ts';
import type { ImageCatalog } from '../image-catalog.ts';

/**
 * The operator API as a controller process starts it: at first start create
 * the admin token and write it to the token file (mode 0600), then serve.
 * The token is a secret: it is never logged. The page URL carries it (in
 * `#token=`) only at the start that created it, so that a controller that
 * restarts under a service manager does not print it again; `vnet ctl
 * web-url` prints it on request, and `pageUrlFromTokenFile` for the demo.
 */

export interface OperatorApiComponents {
  logger: Logger;
  model: ControllerModel;
  tokens: TokenStore;
  access?: AccessCommands | undefined;
  images?: ImageCatalog | undefined;
  imagePublisher?: ImagePublisher | undefined;
  registry: Registry;
  clock?: Clock;
  /** Wall-clock ms for the token record (default Date.now). */
  wallClock?: () => number;
  /** When the store's writes are durable: changes are answered then (api-server.ts). */
  committed?: () => Promise<void> | undefined;
  status?: (() => Promise<ReplicaStatusView>) | undefined;
}

export interface OperatorApiInit extends ApiServerInit {
  /** Where to write (and look for) the token; default .vnet/api-token. */
  tokenFile: string;
}

export interface OperatorApi {
  url: string;
  port: number;
  /** The page URL; with the token in the fragment only when this start created the token. */
  pageUrl: string;
  /** The token text if it was created by this start (show it once), else undefined. */
  createdToken: string | undefined;
  close(): Promise<void>;
}

export async function startOperatorApi(components: OperatorApiComponents, init: OperatorApiInit): Promise<OperatorApi> {
  const now = (components.wallClock ?? Date.now)();
  const created = ensureInitialApiToken(components.tokens, now);
  if (created !== undefined) {
    await writeTokenFile(init.tokenFile, created.token);
    components.logger.info({ tokenFile: init.tokenFile, tokenId: created.record.id }, 'created the first operator API token');
  }
  const { tokenFile: _tokenFile, ...serverInit } = init;
  const server = await startApiServer(
    {
      logger: components.logger, model: components.model, tokens: components.tokens, access: components.access, images: components.images, imagePublisher: components.imagePublisher, registry: components.registry,
      ...(components.clock !== undefined ? { clock: components.clock } : {}),
      ...(components.wallClock !== undefined ? { wallClock: components.wallClock } : {}),
      ...(components.committed !== undefined ? { committed: components.committed } : {}),
      status: components.status,
    },
    serverInit,
  );
  return {
    url: server.url,
    port: server.port,
    pageUrl: created !== undefined ? operatorPageUrl(server.url, created.token) : `${server.url}/`,
    createdToken: created?.token,
    close: () => server.close(),
  };
}

/** The page URL with the token of the token file when that token is valid (for an interactive console: the demo); the bare URL otherwise. */
export async function pageUrlFromTokenFile(apiUrl: string, tokenFile: string, tokens: TokenStore): Promise<string> {
  const fromFile = await readTokenFile(tokenFile).catch(() => undefined);
  return fromFile !== undefined && verifyApiToken(tokens, fromFile) !== undefined ? operatorPageUrl(apiUrl, fromFile) : `${apiUrl.replace(/\/+$/, '')}/`;
}
