/**
 * The virtio-net header a TAP device opened with IFF_VNET_HDR puts before
 * each frame (struct virtio_net_hdr, linux/virtio_net.h): 10 bytes, in the
 * host's byte order, which on every platform vnet runs on is little-endian.
 *
 *   0  flags        u8   NEEDS_CSUM (1): L4 checksum is partial; DATA_VALID (2)
 *   1  gso_type     u8   NONE 0, TCPV4 1, UDP 3 (UFO), TCPV6 4, UDP_L4 5; | ECN 0x80
 *   2  hdr_len      u16  length of the headers (a hint)
 *   4  gso_size     u16  payload bytes per segment (the MSS)
 *   6  csum_start   u16  where checksumming starts (the L4 header)
 *   8  csum_offset  u16  where, after csum_start, the checksum goes
 */
import { VIRTIO_NET_HDR_BYTES } from '../common/frame.ts';
import { OffloadError } from './errors.ts';

export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_F_DATA_VALID = 2;

export const VIRTIO_NET_HDR_GSO_NONE = 0;
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
export const VIRTIO_NET_HDR_GSO_UDP = 3;
export const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
export const VIRTIO_NET_HDR_GSO_UDP_L4 = 5;
export const VIRTIO_NET_HDR_GSO_ECN = 0x80;

export interface VirtioNetHdr {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

/** Decodes the first 10 bytes; throws OffloadError if there are fewer. */
export function decodeVirtioNetHdr(buf: Uint8Array): VirtioNetHdr {
  if (buf.length < VIRTIO_NET_HDR_BYTES) {
    throw new OffloadError(`virtio_net_hdr of ${buf.length} bytes; need ${VIRTIO_NET_HDR_BYTES}`);
  }
  return {
    flags: buf[0]!,
    gsoType: buf[1]!,
    hdrLen: buf[2]! | (buf[3]! << 8),
    gsoSize: buf[4]! | (buf[5]! << 8),
    csumStart: buf[6]! | (buf[7]! << 8),
    csumOffset: buf[8]! | (buf[9]! << 8),
  };
}

export function encodeVirtioNetHdr(h: VirtioNetHdr): Buffer {
  const b = Buffer.alloc(VIRTIO_NET_HDR_BYTES);
  b[0] = h.flags & 0xff;
  b[1] = h.gsoType & 0xff;
  b.writeUInt16LE(h.hdrLen & 0xffff, 2);
  b.writeUInt16LE(h.gsoSize & 0xffff, 4);
  b.writeUInt16LE(h.csumStart & 0xffff, 6);
  b.writeUInt16LE(h.csumOffset & 0xffff, 8);
  return b;
}

/** Whether a header asks for segmentation: the frame is a GSO super-frame, which may exceed the MTU. */
export function isGsoHeader(hdr: Uint8Array | undefined): boolean {
  return hdr !== undefined && hdr.length >= 2 && (hdr[1]! & ~VIRTIO_NET_HDR_GSO_ECN) !== VIRTIO_NET_HDR_GSO_NONE;
}

/**
 * Whether a header asks for work before the frame can go to a port that takes
 * only plain frames: a partial checksum or segmentation. A header that is all
 * zeros, or only says DATA_VALID, needs none.
 */
export function offloadNeedsWork(hdr: Uint8Array | undefined): boolean {
  if (hdr === undefined || hdr.length < 2) return false;
  return (hdr[0]! & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0 || (hdr[1]! & ~VIRTIO_NET_HDR_GSO_ECN) !== VIRTIO_NET_HDR_GSO_NONE;
}
