/**
 * A frame as it moves through a daemon: the Ethernet bytes plus, when the
 * frame came from a TAP device opened with IFF_VNET_HDR, the 10-byte
 * virtio-net header that describes checksum and segmentation offload (a GSO
 * "super-frame" of up to 64 KiB that the receiving kernel segments).
 *
 * `data` is the Ethernet frame: destination MAC, source MAC, EtherType, payload
 * (no FCS). It may be a view into a larger buffer; holders that keep a frame
 * past the call that handed it to them must copy it.
 */
export interface Frame {
  readonly data: Buffer;
  /** virtio_net_hdr (flags, gso_type, hdr_len, gso_size, csum_start, csum_offset), or undefined: a plain frame. */
  readonly offload: Buffer | undefined;
}

/** Smallest frame we accept: two MACs and an EtherType. */
export const MIN_FRAME_BYTES = 14;

/** Largest Ethernet frame for a 1500-byte MTU with a VLAN tag. */
export const MAX_PLAIN_FRAME_BYTES = 1522;

/** Largest frame carried at all: a 64 KiB GSO super-frame plus its Ethernet header. */
export const MAX_FRAME_BYTES = 65_535 + 14 + 4;

export const VIRTIO_NET_HDR_BYTES = 10;

export function plainFrame(data: Buffer): Frame {
  return { data, offload: undefined };
}
