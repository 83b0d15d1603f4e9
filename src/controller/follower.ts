import type { Logger } from '../common/logger.ts';
import type { Deployment } from './deployment-file.ts';
import { startFollowerApi, type FollowerApi } from './follower-api.ts';
import { startFollowerControl, type FollowerControl } from './follower-control.ts';
import type { LeaderRecord } from './leader-record.ts';
import type { ControllerStore } from './store/store.ts';
import type { ReplicaStatusView } from './replica-status.ts';

/**
 * What a controller replica serves while it does not lead (docs/ha.md), on
 * the addresses its controller takes when it leads: the control channel's
 * not-the-leader refusal (follower-control.ts) and the operator API's reads
 * with changes redirected to the leader (follower-api.ts).
 */

export interface FollowerInit {
  deployment: Readonly<Deployment>;
  control: { host: string; port: number };
  api: { host: string; port: number };
  tls: { key: string | Buffer; cert: string | Buffer; ca: string | Buffer };
  replica: string;
}

export interface Follower {
  readonly control: FollowerControl;
  readonly api: FollowerApi;
  close(): Promise<void>;
}

export async function startFollower(
  components: { logger: Logger; store: ControllerStore; leader: () => Promise<LeaderRecord | undefined>; status: () => Promise<ReplicaStatusView> },
  init: FollowerInit,
): Promise<Follower> {
  const { logger, store, leader, status } = components;
  const control = await startFollowerControl({ logger, leader }, { ...init.control, tls: init.tls, replica: init.replica });
  let api: FollowerApi;
  try {
    api = await startFollowerApi({ logger, store, leader, status }, { deployment: init.deployment, ...init.api, replica: init.replica });
  } catch (err) {
    await control.close();
    throw err;
  }
  return {
    control,
    api,
    async close() {
      await api.close();
      await control.close();
    },
  };
}
