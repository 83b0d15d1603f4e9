import type { WebSocket } from 'ws';
import { realClock, type Clock } from '../common/clock.ts';
import { componentLogger, type Logger } from '../common/logger.ts';
import { DEFAULT_MAX_CONTROL_MESSAGE_BYTES, NOT_LEADER_CODE, encodeControlMessage, type ControllerMessage } from '../control/control-protocol.ts';
import { ControlListener, DEFAULT_MAX_PENDING_PER_SOURCE, DEFAULT_MAX_PENDING_TOTAL } from './control-listener.ts';
import type { LeaderRecord } from './leader-record.ts';

/**
 * The control channel of a replica that does not lead (docs/ha.md). On the
 * same address and TLS as the leader's, it answers the first message of
 * every connection — a daemon's hello — with the refusal
 *
 *   error {code: VNET_ERR_NOT_LEADER, fatal: true, leader?: the leader's control URL}
 *
 * and closes it. The daemon dials the leader next (or the next replica in
 * its list). Nothing of the hello is used: no state, no authentication; a
 * connection that says nothing is dropped at the listener's deadline. The
 * replica stops this listener before it starts its own controller on the
 * address, and starts it again when its term ends.
 */

export interface FollowerControlComponents {
  logger: Logger;
  clock?: Clock;
  /** The current leader, from the election key; undefined while none leads. */
  leader: () => Promise<LeaderRecord | undefined>;
}

export interface FollowerControlInit {
  host: string;
  port: number;
  tls: { key: string | Buffer; cert: string | Buffer; ca: string | Buffer };
  /** This replica's name, for the refusal's message. */
  replica: string;
  /** A connection's deadline to say hello (default 10 s). */
  helloTimeoutMs?: number;
}

export interface FollowerControl {
  readonly port: number;
  /** Hellos refused since the start. */
  readonly refused: number;
  close(): Promise<void>;
}

export async function startFollowerControl(components: FollowerControlComponents, init: FollowerControlInit): Promise<FollowerControl> {
  const logger = componentLogger(components.logger, 'follower-control');
  let refused = 0;
  const refuse = async (ws: WebSocket): Promise<void> => {
    const leader = await components.leader().catch((err: unknown) => {
      logger.debug({ err }, 'leader not known: etcd not reachable');
      return undefined;
    });
    const message: ControllerMessage = {
      type: 'error', code: NOT_LEADER_CODE, fatal: true,
      message: leader === undefined
        ? `controller replica ${init.replica} does not lead, and no leader is elected now: try another replica`
        : `controller replica ${init.replica} does not lead; ${leader.name} does${leader.control !== undefined ? ` at ${leader.control}` : ''}`,
      ...(leader?.control !== undefined ? { leader: leader.control } : {}),
    };
    refused++;
    if (ws.readyState === ws.OPEN) {
      ws.send(encodeControlMessage(message));
      ws.close(1013, 'not the leader');
    }
  };
  const listener = new ControlListener(
    {
      clock: components.clock ?? realClock,
      logger,
      onDropped: () => undefined,
      onConnection: (ws) => {
        ws.on('error', () => undefined);
        ws.once('message', () => void refuse(ws));
      },
    },
    {
      tls: init.tls, maxPayload: DEFAULT_MAX_CONTROL_MESSAGE_BYTES * 4, deadlineMs: init.helloTimeoutMs ?? 10_000,
      maxPendingPerSource: DEFAULT_MAX_PENDING_PER_SOURCE, maxPendingTotal: DEFAULT_MAX_PENDING_TOTAL,
    },
  );
  const port = await listener.listen(init.host, init.port);
  logger.info({ port }, 'not leading: refusing daemons\' hellos with the leader\'s address');
  return {
    port,
    get refused() { return refused; },
    async close() {
      await listener.closeWebSockets();
      await listener.close();
    },
  };
}
