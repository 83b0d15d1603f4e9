import { VnetError } from '../common/errors.ts';

/** A VM's network namespace that does not exist (no /var/run/netns/NAME). */
export class VmNamespaceNotFoundError extends VnetError {
  readonly netns: string;
  constructor(netns: string, options?: { cause?: unknown }) {
    super('VNET_ERR_VM_NETNS_NOT_FOUND', `network namespace ${netns} does not exist`, options);
    this.netns = netns;
  }
}

/** A namespace that cannot be a VM's: this process's own (pausing it would freeze the daemon). */
export class VmNamespaceRefusedError extends VnetError {
  readonly netns: string;
  constructor(netns: string, why: string) {
    super('VNET_ERR_VM_NETNS_REFUSED', `network namespace ${netns} cannot be a VM's: ${why}`);
    this.netns = netns;
  }
}

/** Freezing or thawing a VM's processes was refused (EPERM/EACCES: not root, no cgroup delegation). */
export class VmFreezePermissionError extends VnetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_VM_FREEZE_PERMISSION', message, options);
  }
}

/** A VM's processes did not all stop (or start) within the bound, or the freezer failed otherwise. */
export class VmFreezeError extends VnetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VNET_ERR_VM_FREEZE', message, options);
  }
}
