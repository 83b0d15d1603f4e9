import type { Registry } from 'prom-client';
import type { Clock } from '../../common/clock.ts';
import type { Logger } from '../../common/logger.ts';
import type { ControllerModel } from '../api-model.ts';
import { operatorPageUrl, startApiServer } from './api-server.ts';
import type { ApiServerInit } from './api-server.ts';
import { readTokenFile, writeTokenFile } from './token-file.ts';
import { ensureInitialApiToken, verifyApiToken } from './token-store.ts';
import type { TokenStore } from './token-store.ts';

/**
 * The operator API as a controller process starts it: at first start create
 * the admin token and write it to the token file (mode 0600), then serve.
 * Returns the page URL to print: with `#token=` when the token is known (just
 * created, or still valid in the token file), without it otherwise.
 */

export interface OperatorApiComponents {
  logger: Logger;
  model: ControllerModel;
  tokens: TokenStore;
  registry: Registry;
  clock?: Clock;
  /** Wall-clock ms for the token record (default Date.now). */
  wallClock?: () => number;
}

export interface OperatorApiInit extends ApiServerInit {
  /** Where to write (and look for) the token; default .vnet/api-token. */
  tokenFile: string;
}

export interface OperatorApi {
  url: string;
  port: number;
  /** The page URL, with the token in the fragment when it is known. */
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
    { logger: components.logger, model: components.model, tokens: components.tokens, registry: components.registry, ...(components.clock !== undefined ? { clock: components.clock } : {}) },
    serverInit,
  );
  let known = created?.token;
  if (known === undefined) {
    const fromFile = await readTokenFile(init.tokenFile).catch(() => undefined);
    if (fromFile !== undefined && verifyApiToken(components.tokens, fromFile) !== undefined) known = fromFile;
  }
  return {
    url: server.url,
    port: server.port,
    pageUrl: known !== undefined ? operatorPageUrl(server.url, known) : `${server.url}/`,
    createdToken: created?.token,
    close: () => server.close(),
  };
}
