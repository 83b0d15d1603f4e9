import { macFromBytes, macToBytes } from './addresses.ts';
import { Reader, Writer } from './wire.ts';

/** ofp_port (OpenFlow 1.3 §7.2.1), 64 bytes: in PORT_STATUS and the port-description multipart (1.3 dropped it from FEATURES_REPLY). */
export interface PortDesc {
  portNo: number;
  hwAddr: string;
  name: string;
  /** OFPPC_* bits (port-down 1, no-recv 4, no-fwd 32, no-packet-in 64). */
  config: number;
  /** OFPPS_* bits (link-down 1, blocked 2, live 4). */
  state: number;
  curr: number;
  advertised: number;
  supported: number;
  peer: number;
  /** kbps */
  currSpeed: number;
  maxSpeed: number;
}

export const OFP_PORT_BYTES = 64;
export const OFP_MAX_PORT_NAME_LEN = 16;

export function writePort(w: Writer, p: PortDesc): void {
  w.u32(p.portNo, 'port_no').zeros(4).bytes(macToBytes(p.hwAddr, 'port hw_addr')).zeros(2);
  w.string(p.name, OFP_MAX_PORT_NAME_LEN, 'port name');
  w.u32(p.config, 'port config').u32(p.state, 'port state').u32(p.curr, 'port curr').u32(p.advertised, 'port advertised');
  w.u32(p.supported, 'port supported').u32(p.peer, 'port peer').u32(p.currSpeed, 'port curr_speed').u32(p.maxSpeed, 'port max_speed');
}

export function readPort(r: Reader): PortDesc {
  const portNo = r.u32('port_no');
  r.skip(4, 'pad');
  const hwAddr = macFromBytes(r.bytes(6, 'hw_addr'));
  r.skip(2, 'pad');
  return {
    portNo,
    hwAddr,
    name: r.string(OFP_MAX_PORT_NAME_LEN, 'port name'),
    config: r.u32('config'),
    state: r.u32('state'),
    curr: r.u32('curr'),
    advertised: r.u32('advertised'),
    supported: r.u32('supported'),
    peer: r.u32('peer'),
    currSpeed: r.u32('curr_speed'),
    maxSpeed: r.u32('max_speed'),
  };
}
