import { pgBinDir } from './cluster.js';

/** Fails early, with a clear message, when the machine lacks what integration tests need. */
export default function setup(): void {
  pgBinDir();
}
