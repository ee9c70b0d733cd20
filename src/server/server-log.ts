/**
 * What the server logs through: the subset of a pino logger it uses, so a
 * pino instance can be passed as is. Messages never contain passwords.
 */
export interface ServerLog {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Discards everything. */
export const silentLog: ServerLog = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
