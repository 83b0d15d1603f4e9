import { VnetError } from '../../common/errors.ts';

/**
 * Errors of the controller's Open vSwitch hosts (docs/openflow.md, "Open
 * vSwitch hosts"). Each is logged with its code and the host; none stops the
 * controller: the agent retries (OVSDB), waits for the switch to connect
 * again (OpenFlow), or nacks the push it could not apply.
 */

/** A switch finished its OpenFlow handshake with a datapath id no OVS host of the deployment has. */
export class UnknownSwitchError extends VnetError {
  constructor(datapathId: string, remote: string) {
    super('VNET_ERR_OVS_UNKNOWN_SWITCH', `switch ${datapathId} from ${remote} is not a bridge of this deployment (an OVS host's datapath id is set by the controller): closed`);
  }
}

/** The bridge could not be set up or read through OVSDB. */
export class BridgeSetupError extends VnetError {
  constructor(host: string, what: string, options?: { cause?: unknown }) {
    super('VNET_ERR_OVS_BRIDGE', `OVS host ${host}: ${what}`, options);
  }
}

/** The switch refused flows, or the connection went while they were being installed. */
export class FlowInstallError extends VnetError {
  constructor(host: string, what: string, options?: { cause?: unknown }) {
    super('VNET_ERR_OVS_FLOWS', `OVS host ${host}: ${what}`, options);
  }
}

/** The switch did not answer a statistics read in time: that update period has no traffic report from the host. */
export class StatsTimeoutError extends VnetError {
  constructor(host: string, what: string) {
    super('VNET_ERR_OVS_STATS', `OVS host ${host}: ${what}`);
  }
}

/** The OpenFlow listener could not bind its address (in use, not local): the controller does not start. */
export class OpenflowListenError extends VnetError {
  constructor(where: string, options?: { cause?: unknown }) {
    super('VNET_ERR_OVS_LISTEN', `OpenFlow listener ${where} (controller.openflow in the deployment file): ${(options?.cause as Error | undefined)?.message ?? 'cannot listen'}`, options);
  }
}
