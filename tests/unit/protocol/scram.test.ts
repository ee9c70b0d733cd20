import { describe, expect, it } from 'vitest';
import { codeOf } from './pg-error-code.js';
import {
  formatScramVerifier,
  md5Password,
  mockScramVerifier,
  parseScramVerifier,
  saslprep,
  ScramClient,
  ScramServer,
  scramVerifier,
} from '../../../src/protocol/index.js';

/** RFC 7677 section 3. */
const RFC = {
  clientNonce: 'rOprNGfwEbeRWgbNEkqO',
  serverNonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
  salt: Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'),
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
};

describe('SCRAM-SHA-256', () => {
  const rfcVerifier = scramVerifier('pencil', 4096, RFC.salt);

  it('client reproduces the RFC 7677 test vector', () => {
    const client = new ScramClient('pencil', { clientNonce: RFC.clientNonce, user: 'user' });
    expect(client.clientFirst().toString()).toBe(RFC.clientFirst);
    expect(client.clientFinal(Buffer.from(RFC.serverFirst)).toString()).toBe(RFC.clientFinal);
    expect(() => client.verifyServerFinal(Buffer.from(RFC.serverFinal))).not.toThrow();
  });

  it('server reproduces the RFC 7677 test vector', () => {
    const server = new ScramServer(rfcVerifier, { serverNonce: RFC.serverNonce });
    expect(server.handleClientFirst(Buffer.from(RFC.clientFirst)).toString()).toBe(RFC.serverFirst);
    const result = server.handleClientFinal(Buffer.from(RFC.clientFinal));
    expect(result.ok).toBe(true);
    expect(result.ok && result.serverFinal.toString()).toBe(RFC.serverFinal);
  });

  it('client and server agree end to end with random nonces and salt', () => {
    const server = new ScramServer(scramVerifier('s3cret ünïcode', 4096));
    const client = new ScramClient('s3cret ünïcode');
    const serverFirst = server.handleClientFirst(client.clientFirst());
    const result = server.handleClientFinal(client.clientFinal(serverFirst));
    expect(result.ok).toBe(true);
    if (result.ok) client.verifyServerFinal(result.serverFinal);
  });

  it('a wrong password fails the proof', () => {
    const server = new ScramServer(scramVerifier('right', 4096));
    const client = new ScramClient('wrong');
    const serverFirst = server.handleClientFirst(client.clientFirst());
    expect(server.handleClientFinal(client.clientFinal(serverFirst))).toEqual({ ok: false });
  });

  it('a mock verifier refuses every password', () => {
    const server = new ScramServer(mockScramVerifier('nobody', Buffer.from('secret')));
    const client = new ScramClient('anything');
    const serverFirst = server.handleClientFirst(client.clientFirst());
    expect(server.handleClientFinal(client.clientFinal(serverFirst)).ok).toBe(false);
    expect(mockScramVerifier('nobody', Buffer.from('secret')).salt).toEqual(mockScramVerifier('nobody', Buffer.from('secret')).salt);
  });

  it('a server that does not know the password is detected by the client (28000)', () => {
    const impostor = new ScramServer(scramVerifier('other', 4096));
    const client = new ScramClient('pencil');
    const serverFirst = impostor.handleClientFirst(client.clientFirst());
    impostor.handleClientFinal(client.clientFinal(serverFirst));
    const forged = Buffer.from(`v=${Buffer.alloc(32, 7).toString('base64')}`);
    expect(codeOf(() => client.verifyServerFinal(forged))).toBe('28000');
  });

  it('accepts the "y" channel-binding flag and checks its echo', () => {
    const server = new ScramServer(rfcVerifier, { serverNonce: RFC.serverNonce });
    server.handleClientFirst(Buffer.from('y,,n=,r=abc'));
    // c= must echo "y,," (eSws), not "n,," (biws).
    expect(codeOf(() => server.handleClientFinal(Buffer.from(`c=biws,r=abc${RFC.serverNonce},p=${Buffer.alloc(32).toString('base64')}`)))).toBe('08P01');
  });

  it.each([
    ['channel binding requested', 'p=tls-server-end-point,,n=,r=abc'],
    ['authorization identity', 'n,a=admin,n=,r=abc'],
    ['bad flag', 'x,,n=,r=abc'],
    ['missing nonce', 'n,,n=user'],
    ['empty nonce', 'n,,n=,r='],
    ['mandatory extension', 'n,,m=ext,n=,r=abc'],
    ['no comma after flag', 'n'],
  ])('refuses a client-first-message with %s (08P01)', (_, message) => {
    const server = new ScramServer(rfcVerifier);
    expect(codeOf(() => server.handleClientFirst(Buffer.from(message)))).toBe('08P01');
  });

  it.each([
    ['missing proof', 'c=biws,r=NONCE'],
    ['wrong nonce', 'c=biws,r=abcdef,p=PROOF'],
    ['wrong binding', 'c=eSws,r=NONCE,p=PROOF'],
    ['short proof', 'c=biws,r=NONCE,p=AAAA'],
    ['bad base64 proof', 'c=biws,r=NONCE,p=***'],
    ['no binding attribute', 'r=NONCE,p=PROOF'],
  ])('refuses a client-final-message with %s (08P01)', (_, template) => {
    const server = new ScramServer(rfcVerifier, { serverNonce: 'srv' });
    server.handleClientFirst(Buffer.from('n,,n=,r=cli'));
    const message = template.replace('NONCE', 'clisrv').replace('PROOF', Buffer.alloc(32).toString('base64'));
    expect(codeOf(() => server.handleClientFinal(Buffer.from(message)))).toBe('08P01');
  });

  it('refuses messages out of order', () => {
    const server = new ScramServer(rfcVerifier);
    expect(codeOf(() => server.handleClientFinal(Buffer.from(RFC.clientFinal)))).toBe('08P01');
    const again = new ScramServer(rfcVerifier);
    again.handleClientFirst(Buffer.from(RFC.clientFirst));
    expect(codeOf(() => again.handleClientFirst(Buffer.from(RFC.clientFirst)))).toBe('08P01');
  });

  it('client refuses a server nonce that does not extend its own', () => {
    const client = new ScramClient('pencil', { clientNonce: RFC.clientNonce });
    client.clientFirst();
    expect(codeOf(() => client.clientFinal(Buffer.from('r=otherNonce,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096')))).toBe('08P01');
  });

  it('client refuses a bad iteration count', () => {
    const client = new ScramClient('pencil', { clientNonce: 'abc' });
    client.clientFirst();
    expect(codeOf(() => client.clientFinal(Buffer.from('r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0')))).toBe('08P01');
  });

  it('client reports a server error attribute as 28000', () => {
    const client = new ScramClient('pencil', { clientNonce: 'abc' });
    client.clientFirst();
    client.clientFinal(Buffer.from('r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1'));
    expect(codeOf(() => client.verifyServerFinal(Buffer.from('e=invalid-proof')))).toBe('28000');
  });

  it('verifier text form round-trips and matches the RFC keys', () => {
    const text = formatScramVerifier(rfcVerifier);
    expect(text.startsWith('SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$')).toBe(true);
    expect(parseScramVerifier(text)).toEqual(rfcVerifier);
    expect(parseScramVerifier('plaintext')).toBeNull();
  });

  it('verifier keys match an independent computation (Python hashlib, RFC 5802 definitions)', () => {
    const v = scramVerifier('app', 4096, Buffer.from('c2FsdHNhbHRzYWx0', 'base64'));
    expect(v.storedKey.toString('base64')).toBe('PkWGN5Nl1os92L+ND7J3/ZyMiyC3i4rjqe6E0BYgVsU=');
    expect(v.serverKey.toString('base64')).toBe('GV6wjT4BLZaSUNH2b2EFA65RIGd5K2VV/1SNn+No/C4=');
  });
});

describe('SASLprep', () => {
  it('leaves ASCII untouched', () => {
    expect(saslprep('pencil\x01').toString('latin1')).toBe('pencil\x01');
  });
  it('maps non-ASCII spaces to space and removes soft hyphens', () => {
    expect(saslprep('a\u00a0b\u00adc').toString()).toBe('a bc');
  });
  it('matches the examples of RFC 4013 section 3', () => {
    expect(saslprep('I\u00adX').toString()).toBe('IX');
    expect(saslprep('user').toString()).toBe('user');
    expect(saslprep('USER').toString()).toBe('USER');
    expect(saslprep('\u00aa').toString()).toBe('a');
  });
  it('normalizes with NFKC', () => {
    expect(saslprep('\u2168').toString()).toBe('IX'); // ROMAN NUMERAL NINE
  });
  it('falls back to raw bytes on prohibited characters', () => {
    expect(saslprep('\u00e9\u0007')).toEqual(Buffer.from('\u00e9\u0007', 'utf8'));
  });
});

describe('md5Password', () => {
  it('hashes as libpq does', () => {
    // Computed independently: 'md5' + md5(md5('secretalice').hex + bytes 01 02 03 04).hex, with Python hashlib.
    expect(md5Password('alice', 'secret', Buffer.from([1, 2, 3, 4]))).toBe('md598a0412b9c31436fc53776e863350083');
  });
});
