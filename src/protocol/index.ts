/**
 * PostgreSQL wire protocol v3: framing (MessageReader), one module per
 * message family for encoding and decoding, and the SCRAM-SHA-256 / MD5
 * password math. No I/O anywhere in this folder.
 */
export type * from './messages.js';
export type * from './fields.js';
export * from './message-reader.js';
export * from './message-run.js';
export * from './buffer-writer.js';
export * from './body-reader.js';
export type * from './message-types.js';
export * from './startup-message.js';
export * from './frontend-message.js';
export * from './backend-message.js';
export * from './authentication.js';
export * from './query.js';
export * from './parse.js';
export * from './parameter-description.js';
export * from './bind.js';
export * from './describe.js';
export * from './execute.js';
export * from './close.js';
export * from './row-description.js';
export * from './data-row.js';
export * from './command-complete.js';
export * from './error-response.js';
export * from './copy.js';
export * from './parameter-status.js';
export * from './backend-key-data.js';
export * from './ready-for-query.js';
export * from './notification-response.js';
export * from './negotiate-protocol-version.js';
export * from './scram.js';
export * from './md5-password.js';
export * from './saslprep.js';
