export * from './pg-error.js';
export * from './catalogue.js';
