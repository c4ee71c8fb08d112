/** Errors of the state store: a stable code and, for bad input, the offending field. */
import { MeshfedError } from '../../../core/errors.js';

/** Error codes of the state store. */
export const StateErrorCode = Object.freeze({
  /** A command failed validation; `field` names the offending field. Maps to HTTP 400. */
  INVALID: 'MESHFED_ERR_STATE_INVALID',
  /** The command's type or operation is unknown. */
  UNKNOWN_COMMAND: 'MESHFED_ERR_STATE_UNKNOWN_COMMAND',
  /** `apply` was given an index that is not a positive safe integer. */
  BAD_INDEX: 'MESHFED_ERR_STATE_BAD_INDEX',
  /** A snapshot given to `restore` is malformed. */
  BAD_SNAPSHOT: 'MESHFED_ERR_STATE_BAD_SNAPSHOT',
} as const);

/** A command was rejected; nothing was written. `field` is the dotted field path, e.g. `Service.Meta`. */
export class StateValidationError extends MeshfedError {
  /** Dotted path of the offending field. */
  readonly field: string;
  /** What is wrong with the field (the message without `invalid <field>: `). */
  readonly reason: string;

  /** @param field dotted path of the offending field; @param message what is wrong with it */
  constructor(field: string, message: string) {
    super(StateErrorCode.INVALID, `invalid ${field}: ${message}`, { plugin: 'state' });
    this.name = 'StateValidationError';
    this.field = field;
    this.reason = message;
  }
}
