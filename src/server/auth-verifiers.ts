import { randomBytes } from 'node:crypto';
import type { ShardGateConfig } from '../config/types.js';
import { mockScramVerifier, scramVerifier } from '../protocol/scram.js';
import type { ScramVerifier } from '../protocol/scram.js';

/**
 * SCRAM-SHA-256 verifiers for the configured users, computed once when the
 * server is built so that no plaintext password is kept or compared per
 * connection. An unknown user gets a mock verifier that no password matches,
 * with a salt stable per name: the exchange looks the same to the client and
 * fails with the same 28P01, so a client cannot learn which user names exist.
 */
export class AuthVerifiers {
  readonly #byUser = new Map<string, ScramVerifier>();
  /** Per-process secret the mock verifiers' salts derive from. */
  readonly #mockSecret = randomBytes(32);
  /** Configured user names; empty means "any name" (only meaningful with trust). */
  readonly users: ReadonlySet<string>;

  constructor(config: ShardGateConfig) {
    for (const user of config.auth.users) this.#byUser.set(user.name, scramVerifier(user.password));
    this.users = new Set(this.#byUser.keys());
  }

  /** The verifier to run the exchange with, and whether the user exists. */
  lookup(user: string): { verifier: ScramVerifier; known: boolean } {
    const verifier = this.#byUser.get(user);
    return verifier === undefined ? { verifier: mockScramVerifier(user, this.#mockSecret), known: false } : { verifier, known: true };
  }
}

/** True for 127.0.0.0/8, ::1 and their IPv4-mapped IPv6 forms. */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address;
  if (/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4)) return true;
  return address === '::1' || address === '0:0:0:0:0:0:0:1';
}
