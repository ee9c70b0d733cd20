/**
 * The fields of a PostgreSQL ErrorResponse or NoticeResponse, keyed by their
 * protocol field names. Errors from a shard travel to the client with every
 * field intact; ShardGate's own errors fill the same shape.
 */
export interface ErrorFields {
  readonly severity: string; // 'S' localized severity: ERROR, FATAL, PANIC, WARNING, NOTICE, …
  readonly code: string; // 'C' SQLSTATE
  readonly message: string; // 'M'
  readonly detail?: string; // 'D'
  readonly hint?: string; // 'H'
  readonly position?: string; // 'P' 1-based character offset into the client's query string
  readonly internalPosition?: string; // 'p'
  readonly internalQuery?: string; // 'q'
  readonly where?: string; // 'W'
  readonly schema?: string; // 's'
  readonly table?: string; // 't'
  readonly column?: string; // 'c'
  readonly dataType?: string; // 'd'
  readonly constraint?: string; // 'n'
  readonly file?: string; // 'F'
  readonly line?: string; // 'L'
  readonly routine?: string; // 'R'
}

/**
 * An error that carries PostgreSQL error fields. Thrown by shards (fields
 * exactly as the shard sent them, plus the shard's name) and by ShardGate
 * itself (built from the catalogue in `catalogue.ts`).
 */
export class PgError extends Error {
  readonly fields: ErrorFields;
  /** Name of the shard that raised it, when it came from a shard. */
  readonly shard: string | undefined;

  constructor(fields: ErrorFields, shard?: string) {
    super(fields.message);
    this.name = 'PgError';
    this.fields = fields;
    this.shard = shard;
  }

  get code(): string {
    return this.fields.code;
  }

  get severity(): string {
    return this.fields.severity;
  }

  /** True when the session must end after this error is sent. */
  get fatal(): boolean {
    return this.fields.severity === 'FATAL' || this.fields.severity === 'PANIC';
  }

  /** A copy with other fields replaced (for example a position shifted into the client's text). */
  with(fields: Partial<ErrorFields>): PgError {
    return new PgError({ ...this.fields, ...fields }, this.shard);
  }
}

/** Whether an error can be retried by the client as a whole transaction, decided by SQLSTATE alone. */
export function isRetryable(code: string): boolean {
  return code === '40001' || code === '40P01' || code.startsWith('08');
}
