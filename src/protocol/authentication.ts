import { BodyReader } from './body-reader.js';
import type { BufferWriter } from './buffer-writer.js';
import type { Backend, Frontend } from './message-types.js';

/*
 * Authentication (B): Byte1('R') Int32 len Int32 kind [kind-specific data].
 * PasswordMessage, SASLInitialResponse, SASLResponse (F) all use Byte1('p');
 * only the authentication step in progress tells them apart.
 */

/** 'R' Authentication* (B). */
export const AUTHENTICATION = 0x52;
/** 'p' PasswordMessage / SASLInitialResponse / SASLResponse (F). */
export const PASSWORD_MESSAGE = 0x70;

/** Authentication kinds (Int32 after the length word). */
export const AUTH_OK = 0; // no further data
export const AUTH_CLEARTEXT_PASSWORD = 3; // no further data
export const AUTH_MD5_PASSWORD = 5; // Byte4 salt
export const AUTH_SASL = 10; // String mechanism names, ended by an empty String
export const AUTH_SASL_CONTINUE = 11; // Byte[n] SASL data (server-first-message for SCRAM)
export const AUTH_SASL_FINAL = 12; // Byte[n] SASL outcome data (server-final-message for SCRAM)

const KIND_NAMES: Readonly<Record<number, string>> = {
  2: 'KerberosV5',
  6: 'SCMCredential',
  7: 'GSS',
  8: 'GSSContinue',
  9: 'SSPI',
};

type AuthenticationMessage = Backend<
  | 'AuthenticationOk'
  | 'AuthenticationCleartextPassword'
  | 'AuthenticationMD5Password'
  | 'AuthenticationSASL'
  | 'AuthenticationSASLContinue'
  | 'AuthenticationSASLFinal'
>;

/** Decodes an Authentication* (B) body. Methods ShardGate cannot answer (GSS, SSPI, …) throw 08P01 naming them. */
export function decodeAuthentication(body: Buffer): AuthenticationMessage {
  const r = new BodyReader(body, 'Authentication');
  const kind = r.int32();
  switch (kind) {
    case AUTH_OK:
      r.end();
      return { type: 'AuthenticationOk' };
    case AUTH_CLEARTEXT_PASSWORD:
      r.end();
      return { type: 'AuthenticationCleartextPassword' };
    case AUTH_MD5_PASSWORD: {
      const salt = Buffer.from(r.bytes(4));
      r.end();
      return { type: 'AuthenticationMD5Password', salt };
    }
    case AUTH_SASL: {
      const mechanisms: string[] = [];
      for (let m = r.cstring(); m !== ''; m = r.cstring()) mechanisms.push(m);
      r.end();
      return { type: 'AuthenticationSASL', mechanisms };
    }
    case AUTH_SASL_CONTINUE:
      return { type: 'AuthenticationSASLContinue', data: r.rest() };
    case AUTH_SASL_FINAL:
      return { type: 'AuthenticationSASLFinal', data: r.rest() };
    default:
      throw r.fail(`unsupported authentication method ${KIND_NAMES[kind] ?? kind}`);
  }
}

/** Appends an Authentication* (B) message. */
export function writeAuthentication(w: BufferWriter, msg: AuthenticationMessage): void {
  const start = w.beginMessage(AUTHENTICATION);
  switch (msg.type) {
    case 'AuthenticationOk':
      w.int32(AUTH_OK);
      break;
    case 'AuthenticationCleartextPassword':
      w.int32(AUTH_CLEARTEXT_PASSWORD);
      break;
    case 'AuthenticationMD5Password':
      if (msg.salt.length !== 4) throw new RangeError('AuthenticationMD5Password salt must be 4 bytes');
      w.int32(AUTH_MD5_PASSWORD).bytes(msg.salt);
      break;
    case 'AuthenticationSASL':
      w.int32(AUTH_SASL);
      for (const m of msg.mechanisms) w.cstring(m);
      w.byte(0);
      break;
    case 'AuthenticationSASLContinue':
      w.int32(AUTH_SASL_CONTINUE).bytes(msg.data);
      break;
    case 'AuthenticationSASLFinal':
      w.int32(AUTH_SASL_FINAL).bytes(msg.data);
      break;
  }
  w.endMessage(start);
}

/** Which message a 'p' (F) is; the caller knows from the authentication step in progress. */
export type PasswordKind = 'password' | 'saslInitial' | 'sasl';

type PasswordFamily = Frontend<'PasswordMessage' | 'SASLInitialResponse' | 'SASLResponse'>;

/** Decodes a 'p' (F) body as the message `kind` says. */
export function decodePasswordMessage(body: Buffer, kind: PasswordKind): PasswordFamily {
  switch (kind) {
    case 'password': {
      // String password.
      const r = new BodyReader(body, 'PasswordMessage');
      const password = r.cstring();
      r.end();
      return { type: 'PasswordMessage', password };
    }
    case 'saslInitial': {
      // String mechanism, Int32 length of the data (-1: none), Byte[n] data.
      const r = new BodyReader(body, 'SASLInitialResponse');
      const mechanism = r.cstring();
      const len = r.int32();
      if (len < -1) throw r.fail(`negative data length ${len}`);
      const data = len === -1 ? null : r.bytes(len);
      r.end();
      return { type: 'SASLInitialResponse', mechanism, data };
    }
    case 'sasl':
      // Byte[n] data: the whole body.
      return { type: 'SASLResponse', data: body };
  }
}

/** Appends a 'p' (F) message of any of its three meanings. */
export function writePasswordMessage(w: BufferWriter, msg: PasswordFamily): void {
  const start = w.beginMessage(PASSWORD_MESSAGE);
  switch (msg.type) {
    case 'PasswordMessage':
      w.cstring(msg.password);
      break;
    case 'SASLInitialResponse':
      w.cstring(msg.mechanism);
      if (msg.data === null) w.int32(-1);
      else w.int32(msg.data.length).bytes(msg.data);
      break;
    case 'SASLResponse':
      w.bytes(msg.data);
      break;
  }
  w.endMessage(start);
}
