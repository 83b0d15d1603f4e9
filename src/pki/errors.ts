import { VnetError } from '../common/errors.ts';

/** A CA or host certificate that cannot be created, read or used; names the file. */
export class CertificateError extends VnetError {
  readonly file: string | undefined;
  constructor(message: string, file?: string, options?: { cause?: unknown }) {
    super('VNET_ERR_CERT', file === undefined ? message : `${file}: ${message}`, options);
    this.file = file;
  }
}
