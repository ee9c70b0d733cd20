/** Publishing to message brokers, shared by the outbox relay (saga/) and change data capture (cdc/). */
export type * from './message-sink.js';
export * from './broker-sinks.js';
export * from './reconnecting-sink.js';
