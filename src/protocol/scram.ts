import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { sgError } from '../errors/catalogue.js';
import { saslprep } from './saslprep.js';

/*
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it:
 *   client-first  = gs2-header client-first-bare        gs2-header: "n,,", "y,," or (PLUS) "p=tls-server-end-point,,"
 *   client-first-bare = "n=" user ",r=" client-nonce     PostgreSQL ignores the user here; the startup user counts
 *   server-first  = "r=" client-nonce server-nonce ",s=" base64(salt) ",i=" iterations
 *   client-final  = "c=" base64(gs2-header [cbind-data]) ",r=" nonce ",p=" base64(ClientProof)
 *   cbind-data (tls-server-end-point, RFC 5929) = hash of the server certificate's DER, with the
 *   certificate signature's hash (SHA-256 when that is MD5 or SHA-1)
 *   server-final  = "v=" base64(ServerSignature)
 *   SaltedPassword  = PBKDF2-HMAC-SHA-256(SASLprep(password), salt, iterations, 32)
 *   ClientKey = HMAC(SaltedPassword, "Client Key")   StoredKey = SHA-256(ClientKey)
 *   ServerKey = HMAC(SaltedPassword, "Server Key")
 *   AuthMessage = client-first-bare "," server-first "," client-final-without-proof
 *   ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage)
 *   ServerSignature = HMAC(ServerKey, AuthMessage)
 */

/** Mechanism name in AuthenticationSASL and SASLInitialResponse. */
export const SCRAM_SHA_256 = 'SCRAM-SHA-256';
/** The same with channel binding to the TLS connection (offered only over TLS). */
export const SCRAM_SHA_256_PLUS = 'SCRAM-SHA-256-PLUS';
/** The only channel binding type PostgreSQL implements. */
const CHANNEL_BINDING_TYPE = 'tls-server-end-point';
/** PostgreSQL's default iteration count (scram_iterations). */
export const DEFAULT_SCRAM_ITERATIONS = 4096;
/** Raw nonce bytes before base64, as PostgreSQL and libpq use (SCRAM_RAW_NONCE_LEN). */
const RAW_NONCE_LENGTH = 18;
/** Salt bytes for new verifiers (SCRAM_DEFAULT_SALT_LEN). */
const SALT_LENGTH = 16;
const KEY_LENGTH = 32;

/**
 * What the server stores instead of a password: enough to check a proof and
 * to prove itself, not enough to log in as the user.
 */
export interface ScramVerifier {
  readonly salt: Buffer;
  readonly iterations: number;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

function hmac(key: Buffer, data: string | Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

function saltedPassword(password: string, salt: Buffer, iterations: number): Buffer {
  return pbkdf2Sync(saslprep(password), salt, iterations, KEY_LENGTH, 'sha256');
}

function malformed(reason: string): Error {
  return sgError('protocolViolation', { reason: `malformed SCRAM message: ${reason}` });
}

/** Strict base64: rejects anything that does not re-encode to itself (Buffer.from alone is lenient). */
function fromBase64(value: string, what: string): Buffer {
  const bytes = Buffer.from(value, 'base64');
  if (bytes.toString('base64') !== value) throw malformed(`${what} is not valid base64`);
  return bytes;
}

/** A nonce is printable ASCII except ',' (RFC 5802 "printable"). */
function checkNonce(nonce: string): void {
  if (nonce === '' || !/^[\x21-\x2b\x2d-\x7e]+$/.test(nonce)) throw malformed('invalid nonce');
}

/** Reads the attribute `name=` at the start of `s`; returns its value and the text after its ','. */
function attribute(s: string, name: string): { value: string; rest: string } {
  if (!s.startsWith(`${name}=`)) throw malformed(`expected attribute "${name}"`);
  const comma = s.indexOf(',');
  return comma === -1 ? { value: s.slice(2), rest: '' } : { value: s.slice(2, comma), rest: s.slice(comma + 1) };
}

/**
 * Computes the verifier for a password, once (at configuration load), so
 * logins never handle the plaintext. A random 16-byte salt unless one is given.
 */
export function scramVerifier(password: string, iterations = DEFAULT_SCRAM_ITERATIONS, salt: Buffer = randomBytes(SALT_LENGTH)): ScramVerifier {
  if (!Number.isInteger(iterations) || iterations < 1) throw new RangeError('SCRAM iteration count must be a positive integer');
  const salted = saltedPassword(password, salt, iterations);
  return { salt, iterations, storedKey: sha256(hmac(salted, 'Client Key')), serverKey: hmac(salted, 'Server Key') };
}

/**
 * A verifier no password matches, stable per user name, for running the full
 * exchange with an unknown user so the reply does not reveal which users exist
 * (PostgreSQL's mock authentication). `secret` is per-process random bytes.
 */
export function mockScramVerifier(user: string, secret: Buffer, iterations = DEFAULT_SCRAM_ITERATIONS): ScramVerifier {
  const salt = hmac(secret, `salt:${user}`).subarray(0, SALT_LENGTH);
  return { salt, iterations, storedKey: randomBytes(KEY_LENGTH), serverKey: randomBytes(KEY_LENGTH) };
}

/** The verifier in PostgreSQL's pg_authid text form: `SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey`. */
export function formatScramVerifier(v: ScramVerifier): string {
  return `${SCRAM_SHA_256}$${v.iterations}:${v.salt.toString('base64')}$${v.storedKey.toString('base64')}:${v.serverKey.toString('base64')}`;
}

/** Parses the pg_authid text form; null when `text` is not a SCRAM-SHA-256 verifier (e.g. a plaintext password). */
export function parseScramVerifier(text: string): ScramVerifier | null {
  const m = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/.exec(text);
  if (m === null) return null;
  const iterations = Number(m[1]);
  const salt = Buffer.from(m[2]!, 'base64');
  const storedKey = Buffer.from(m[3]!, 'base64');
  const serverKey = Buffer.from(m[4]!, 'base64');
  if (iterations < 1 || storedKey.length !== KEY_LENGTH || serverKey.length !== KEY_LENGTH) return null;
  return { salt, iterations, storedKey, serverKey };
}

/** Hash of a certificate's signature algorithm, by the DER content of its OID. */
const SIGNATURE_HASHES = new Map<string, string>([
  ['2a864886f70d010104', 'sha256'], // md5WithRSAEncryption: MD5 → SHA-256 (RFC 5929 §4.1)
  ['2a864886f70d010105', 'sha256'], // sha1WithRSAEncryption: SHA-1 → SHA-256
  ['2a864886f70d01010e', 'sha224'],
  ['2a864886f70d01010b', 'sha256'],
  ['2a864886f70d01010c', 'sha384'],
  ['2a864886f70d01010d', 'sha512'],
  ['2a8648ce3d040301', 'sha224'], // ecdsa-with-SHA224
  ['2a8648ce3d040302', 'sha256'],
  ['2a8648ce3d040303', 'sha384'],
  ['2a8648ce3d040304', 'sha512'],
  ['2a8648ce3d0401', 'sha256'], // ecdsa-with-SHA1 → SHA-256
]);

/** One DER element at `at`: its tag, where its content starts and where it ends. */
function derElement(der: Buffer, at: number): { tag: number; start: number; end: number } {
  if (at + 2 > der.length) throw new RangeError('truncated DER');
  const tag = der[at]!;
  let length = der[at + 1]!;
  let start = at + 2;
  if (length & 0x80) {
    const bytes = length & 0x7f;
    if (bytes === 0 || bytes > 4 || start + bytes > der.length) throw new RangeError('unsupported DER length');
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + der[start + i]!;
    start += bytes;
  }
  if (start + length > der.length) throw new RangeError('truncated DER');
  return { tag, start, end: start + length };
}

/**
 * The tls-server-end-point channel binding data of a certificate (RFC 5929):
 * its DER hashed with the hash of its signature algorithm. Null when that
 * algorithm has no single hash (RSASSA-PSS, Ed25519), where PostgreSQL does not
 * offer channel binding either.
 */
export function tlsServerEndPoint(certificateDer: Buffer): Buffer | null {
  try {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE { OID, … }, signature }
    const certificate = derElement(certificateDer, 0);
    const tbs = derElement(certificateDer, certificate.start);
    const algorithm = derElement(certificateDer, tbs.end);
    const oid = derElement(certificateDer, algorithm.start);
    if (certificate.tag !== 0x30 || tbs.tag !== 0x30 || algorithm.tag !== 0x30 || oid.tag !== 0x06) return null;
    const hash = SIGNATURE_HASHES.get(certificateDer.subarray(oid.start, oid.end).toString('hex'));
    return hash === undefined ? null : createHash(hash).update(certificateDer).digest();
  } catch (err) {
    if (err instanceof RangeError) return null;
    throw err;
  }
}

export interface ScramServerOptions {
  /** Server nonce part; random 18 bytes in base64 when omitted (tests replay fixed exchanges with it). */
  readonly serverNonce?: string;
  /**
   * tls-server-end-point data of the certificate this connection presented;
   * given only over TLS. Then SCRAM-SHA-256-PLUS is offered, and a client
   * saying it supports binding but believes the server does not ('y') is a
   * downgrade attack and refused.
   */
  readonly channelBinding?: Buffer | null;
}

/**
 * The server side of one SCRAM-SHA-256(-PLUS) exchange. Malformed client
 * messages (including an authorization identity, which ShardGate does not
 * support, and channel binding it cannot give) throw 08P01; a wrong password
 * yields `{ ok: false }`, for the caller to answer with 28P01. One instance
 * per login.
 */
export class ScramServer {
  readonly #verifier: ScramVerifier;
  readonly #serverNonce: string;
  readonly #channelBinding: Buffer | null;
  #state: 'start' | 'sentFirst' | 'done' = 'start';
  /** What the client's c= must carry: the gs2 header, plus the binding data under PLUS. */
  #cbindInput = Buffer.alloc(0);
  #nonce = '';
  #clientFirstBare = '';
  #serverFirst = '';

  constructor(verifier: ScramVerifier, opts: ScramServerOptions = {}) {
    this.#verifier = verifier;
    this.#serverNonce = opts.serverNonce ?? randomBytes(RAW_NONCE_LENGTH).toString('base64');
    checkNonce(this.#serverNonce);
    this.#channelBinding = opts.channelBinding ?? null;
  }

  /** The mechanisms to offer in AuthenticationSASL, preferred first. */
  get mechanisms(): readonly string[] {
    return this.#channelBinding === null ? [SCRAM_SHA_256] : [SCRAM_SHA_256_PLUS, SCRAM_SHA_256];
  }

  /**
   * Takes client-first-message (SASLInitialResponse data) and the mechanism
   * the client chose; returns server-first-message (AuthenticationSASLContinue data).
   */
  handleClientFirst(data: Buffer, mechanism: string = SCRAM_SHA_256): Buffer {
    if (this.#state !== 'start') throw malformed('unexpected client-first-message');
    this.#state = 'done'; // until it succeeds, nothing further is accepted
    if (!this.mechanisms.includes(mechanism)) throw sgError('protocolViolation', { reason: `SASL mechanism ${mechanism} was not offered` });
    const plus = mechanism === SCRAM_SHA_256_PLUS;
    const msg = data.toString('utf8');
    const flagEnd = msg.indexOf(',');
    if (flagEnd === -1) throw malformed('invalid channel binding flag');
    const flag = msg.slice(0, flagEnd);
    // gs2-cbind-flag: 'n' client does not support channel binding, 'y' it does but thinks we do
    // not, 'p=type' it binds. The flag must agree with the mechanism chosen.
    if (flag === `p=${CHANNEL_BINDING_TYPE}`) {
      if (!plus) throw malformed('channel binding requested without SCRAM-SHA-256-PLUS');
    } else if (flag.startsWith('p=')) {
      throw sgError('protocolViolation', { reason: `SCRAM channel binding type ${flag.slice(2)} is not supported; use tls-server-end-point` });
    } else if (flag === 'n' || flag === 'y') {
      if (plus) throw malformed('SCRAM-SHA-256-PLUS chosen without channel binding');
      // We offered PLUS: a client that supports binding yet thinks we do not saw a tampered offer.
      if (flag === 'y' && this.#channelBinding !== null) throw malformed('the client supports channel binding, but the server offer it saw did not (downgrade refused)');
    } else {
      throw malformed('invalid channel binding flag');
    }
    const rest = msg.slice(flagEnd + 1);
    if (rest.startsWith('a=')) throw sgError('protocolViolation', { reason: 'SCRAM authorization identity is not supported' });
    if (!rest.startsWith(',')) throw malformed('expected "," after the channel binding flag');
    const gs2Header = Buffer.from(msg.slice(0, flagEnd + 2), 'utf8');
    this.#cbindInput = plus ? Buffer.concat([gs2Header, this.#channelBinding!]) : gs2Header;
    const bare = rest.slice(1);
    if (bare.startsWith('m=')) throw malformed('mandatory extensions are not supported');
    const user = attribute(bare, 'n');
    const nonce = attribute(user.rest, 'r');
    checkNonce(nonce.value);
    // Anything after the nonce is an optional extension, which RFC 5802 says to ignore.
    this.#clientFirstBare = bare;
    this.#nonce = nonce.value + this.#serverNonce;
    const v = this.#verifier;
    this.#serverFirst = `r=${this.#nonce},s=${v.salt.toString('base64')},i=${v.iterations}`;
    this.#state = 'sentFirst';
    return Buffer.from(this.#serverFirst, 'utf8');
  }

  /**
   * Takes client-final-message (SASLResponse data). `ok: true` carries
   * server-final-message (AuthenticationSASLFinal data).
   */
  handleClientFinal(data: Buffer): { ok: true; serverFinal: Buffer } | { ok: false } {
    if (this.#state !== 'sentFirst') throw malformed('unexpected client-final-message');
    this.#state = 'done';
    const msg = data.toString('utf8');
    const proofAt = msg.lastIndexOf(',p=');
    if (proofAt === -1) throw malformed('missing proof');
    const withoutProof = msg.slice(0, proofAt);
    const binding = attribute(withoutProof, 'c');
    // cbind-input: the gs2 header ("biws" for "n,,"), followed under PLUS by the certificate hash.
    if (!fromBase64(binding.value, 'channel binding').equals(this.#cbindInput)) throw malformed('channel binding data does not match');
    const nonce = attribute(binding.rest, 'r');
    if (nonce.value !== this.#nonce) throw malformed('nonce does not match');
    const proof = fromBase64(msg.slice(proofAt + 3), 'proof');
    if (proof.length !== KEY_LENGTH) throw malformed('proof has the wrong length');

    const authMessage = `${this.#clientFirstBare},${this.#serverFirst},${withoutProof}`;
    const v = this.#verifier;
    const clientSignature = hmac(v.storedKey, authMessage);
    const clientKey = Buffer.alloc(KEY_LENGTH);
    for (let i = 0; i < KEY_LENGTH; i++) clientKey[i] = proof[i]! ^ clientSignature[i]!;
    // Constant time: the comparison must not reveal how much of StoredKey an attacker guessed.
    if (!timingSafeEqual(sha256(clientKey), v.storedKey)) return { ok: false };
    const signature = hmac(v.serverKey, authMessage);
    return { ok: true, serverFinal: Buffer.from(`v=${signature.toString('base64')}`, 'utf8') };
  }
}

/** Options for tests that replay fixed exchanges. */
export interface ScramClientOptions {
  /** Client nonce; random 18 bytes in base64 when omitted. */
  readonly clientNonce?: string;
  /** User name sent in client-first-message; PostgreSQL ignores it, so libpq sends "" (the default). */
  readonly user?: string;
  /**
   * tls-server-end-point data of the server's certificate, when the server
   * offered SCRAM-SHA-256-PLUS over TLS: the exchange is then bound to it.
   */
  readonly channelBinding?: Buffer | null;
}

/** Salted passwords by (password, salt, iterations): pooled connections to one shard reuse one PBKDF2 run. */
const saltedCache = new Map<string, Buffer>();
const SALTED_CACHE_SIZE = 64;

function cachedSaltedPassword(password: string, salt: Buffer, iterations: number): Buffer {
  const key = `${sha256(Buffer.from(password, 'utf8')).toString('base64')}:${salt.toString('base64')}:${iterations}`;
  let salted = saltedCache.get(key);
  if (salted === undefined) {
    salted = saltedPassword(password, salt, iterations);
    if (saltedCache.size >= SALTED_CACHE_SIZE) saltedCache.delete(saltedCache.keys().next().value!);
    saltedCache.set(key, salted);
  }
  return salted;
}

/**
 * The client side of SCRAM-SHA-256, for logging in to a shard: with channel
 * binding (SCRAM-SHA-256-PLUS, gs2 header "p=tls-server-end-point,,") when
 * given the server certificate's binding data, else without ("n,,").
 * Malformed server messages throw 08P01; a server that cannot prove it knows
 * the password throws 28000.
 */
export class ScramClient {
  readonly #password: string;
  readonly #clientNonce: string;
  readonly #clientFirstBare: string;
  readonly #gs2Header: string;
  readonly #cbindInput: Buffer;
  #state: 'start' | 'sentFirst' | 'sentFinal' | 'done' = 'start';
  #expectedSignature: Buffer | null = null;

  constructor(password: string, opts: ScramClientOptions = {}) {
    this.#password = password;
    this.#clientNonce = opts.clientNonce ?? randomBytes(RAW_NONCE_LENGTH).toString('base64');
    checkNonce(this.#clientNonce);
    // saslname escaping (RFC 5802): ',' and '=' are written as =2C and =3D.
    const user = (opts.user ?? '').replace(/=/g, '=3D').replace(/,/g, '=2C');
    this.#clientFirstBare = `n=${user},r=${this.#clientNonce}`;
    const binding = opts.channelBinding ?? null;
    this.#gs2Header = binding === null ? 'n,,' : `p=${CHANNEL_BINDING_TYPE},,`;
    this.#cbindInput = binding === null ? Buffer.from(this.#gs2Header) : Buffer.concat([Buffer.from(this.#gs2Header), binding]);
  }

  /** The mechanism to name in SASLInitialResponse. */
  get mechanism(): string {
    return this.#gs2Header === 'n,,' ? SCRAM_SHA_256 : SCRAM_SHA_256_PLUS;
  }

  /** client-first-message: the data of SASLInitialResponse. */
  clientFirst(): Buffer {
    if (this.#state !== 'start') throw new Error('ScramClient.clientFirst called twice');
    this.#state = 'sentFirst';
    return Buffer.from(`${this.#gs2Header}${this.#clientFirstBare}`, 'utf8');
  }

  /** client-final-message (SASLResponse data) from server-first-message (AuthenticationSASLContinue data). */
  clientFinal(serverFirst: Buffer): Buffer {
    if (this.#state !== 'sentFirst') throw new Error('ScramClient.clientFinal called out of order');
    this.#state = 'sentFinal';
    const text = serverFirst.toString('utf8');
    if (text.startsWith('m=')) throw malformed('mandatory extensions are not supported');
    const nonce = attribute(text, 'r');
    const salt = attribute(nonce.rest, 's');
    const iter = attribute(salt.rest, 'i');
    if (!nonce.value.startsWith(this.#clientNonce) || nonce.value.length === this.#clientNonce.length) throw malformed('server nonce does not extend the client nonce');
    checkNonce(nonce.value);
    if (!/^[1-9]\d{0,9}$/.test(iter.value)) throw malformed('invalid iteration count');
    const saltBytes = fromBase64(salt.value, 'salt');
    const salted = cachedSaltedPassword(this.#password, saltBytes, Number(iter.value));

    const withoutProof = `c=${this.#cbindInput.toString('base64')},r=${nonce.value}`; // "biws" = base64("n,,")
    const authMessage = `${this.#clientFirstBare},${text},${withoutProof}`;
    const clientKey = hmac(salted, 'Client Key');
    const clientSignature = hmac(sha256(clientKey), authMessage);
    const proof = Buffer.alloc(KEY_LENGTH);
    for (let i = 0; i < KEY_LENGTH; i++) proof[i] = clientKey[i]! ^ clientSignature[i]!;
    this.#expectedSignature = hmac(hmac(salted, 'Server Key'), authMessage);
    return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`, 'utf8');
  }

  /** Checks server-final-message (AuthenticationSASLFinal data); throws unless the server proved it knows the password. */
  verifyServerFinal(serverFinal: Buffer): void {
    if (this.#state !== 'sentFinal' || this.#expectedSignature === null) throw new Error('ScramClient.verifyServerFinal called out of order');
    this.#state = 'done';
    const text = serverFinal.toString('utf8');
    if (text.startsWith('e=')) throw sgError('invalidAuthorization', { reason: `SCRAM authentication failed on the server: ${text.slice(2)}` });
    const signature = fromBase64(attribute(text, 'v').value, 'server signature');
    if (signature.length !== KEY_LENGTH || !timingSafeEqual(signature, this.#expectedSignature)) {
      throw sgError('invalidAuthorization', { reason: 'SCRAM server signature does not match: the server does not know the password' });
    }
  }
}
