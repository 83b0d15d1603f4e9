import { VnetError } from '../common/errors.ts';

/** A chunk whose bytes do not hash to the digest it was asked for (refused, never stored). */
export class ChunkIntegrityError extends VnetError {
  readonly digest: string;
  readonly site: string;

  constructor(digest: string, site: string, got: string) {
    super('VNET_ERR_IMAGE_CHUNK_INTEGRITY', `chunk ${digest} from site ${site} hashes to ${got}: refused`);
    this.digest = digest;
    this.site = site;
  }
}

/** No replica that was asked holds an intact copy of the chunk. */
export class ChunkUnavailableError extends VnetError {
  readonly digest: string;

  constructor(digest: string, tried: readonly string[], options?: { cause?: unknown }) {
    super('VNET_ERR_IMAGE_CHUNK_UNAVAILABLE', `chunk ${digest} is not available from any replica (tried: ${tried.length > 0 ? tried.join(', ') : 'none'})`, options);
    this.digest = digest;
  }
}

/** A manifest that fails validation; `field` names what was wrong. */
export class ManifestError extends VnetError {
  readonly field: string;

  constructor(field: string, message: string) {
    super('VNET_ERR_IMAGE_MANIFEST', `image manifest: ${field}: ${message}`);
    this.field = field;
  }
}

/** Bytes on the chunk protocol that are not what it allows; `code` says which rule. */
export class ChunkProtocolError extends VnetError {}

/** A replica that could not be reached or answered wrongly (TLS, identity, connection, protocol). */
export class ChunkPeerError extends VnetError {
  readonly site: string;

  constructor(site: string, message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_IMAGE_PEER', `chunk replica at site ${site}: ${message}`, options);
    this.site = site;
  }
}

/** A version a site's store cannot fit under its capacity (config `images.capacityBytes`): not propagated (retried). */
export class ImageCapacityError extends VnetError {
  readonly site: string;

  constructor(site: string, message: string) {
    super('VNET_ERR_IMAGE_CAPACITY', `site ${site}'s chunk store ${message}`);
    this.site = site;
  }
}
