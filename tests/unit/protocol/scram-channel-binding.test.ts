import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { codeOf } from './pg-error-code.js';
import { ScramClient, ScramServer, SCRAM_SHA_256, SCRAM_SHA_256_PLUS, scramVerifier, tlsServerEndPoint } from '../../../src/protocol/scram.js';

const dir = mkdtempSync(join(tmpdir(), 'shardgate-scram-cb-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A self-signed certificate made by openssl with the given key and digest options, as DER. */
function certificate(name: string, keyArgs: readonly string[], digest: readonly string[]): Buffer {
  const out = join(dir, `${name}.crt`);
  execFileSync('openssl', ['req', '-x509', ...keyArgs, '-nodes', '-keyout', join(dir, `${name}.key`), '-out', out, '-days', '1', '-subj', `/CN=${name}`, ...digest], { stdio: 'ignore' });
  return new X509Certificate(readFileSync(out)).raw;
}

describe('tls-server-end-point (RFC 5929)', () => {
  it.each([
    ['ECDSA with SHA-256', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'], ['-sha256'], 'sha256'],
    ['ECDSA with SHA-384', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:secp384r1'], ['-sha384'], 'sha384'],
    ['RSA with SHA-512', ['-newkey', 'rsa:2048'], ['-sha512'], 'sha512'],
    ['RSA with SHA-1, hashed with SHA-256', ['-newkey', 'rsa:2048'], ['-sha1'], 'sha256'],
  ])('hashes a certificate signed %s with its signature hash', (name, key, digest, hash) => {
    const der = certificate(name.replace(/\W+/g, '-'), key, digest);
    expect(tlsServerEndPoint(der)).toEqual(createHash(hash).update(der).digest());
  });

  it('has no binding for a signature without one hash (Ed25519) or for bytes that are no certificate', () => {
    expect(tlsServerEndPoint(certificate('ed25519', ['-newkey', 'ed25519'], []))).toBeNull();
    expect(tlsServerEndPoint(Buffer.from([0x30, 0x82, 0xff]))).toBeNull();
  });
});

describe('SCRAM-SHA-256-PLUS', () => {
  const verifier = scramVerifier('pencil', 4096);
  const binding = createHash('sha256').update('the server certificate').digest();

  it('is offered first over TLS, and a bound exchange succeeds', () => {
    const server = new ScramServer(verifier, { channelBinding: binding });
    expect(server.mechanisms).toEqual([SCRAM_SHA_256_PLUS, SCRAM_SHA_256]);
    const client = new ScramClient('pencil', { channelBinding: binding });
    expect(client.mechanism).toBe(SCRAM_SHA_256_PLUS);
    const first = client.clientFirst();
    expect(first.toString().startsWith('p=tls-server-end-point,,')).toBe(true);
    const result = server.handleClientFinal(client.clientFinal(server.handleClientFirst(first, client.mechanism)));
    expect(result.ok).toBe(true);
    if (result.ok) client.verifyServerFinal(result.serverFinal);
  });

  it('fails when the client saw another certificate (a relay in the middle)', () => {
    const server = new ScramServer(verifier, { channelBinding: binding });
    const client = new ScramClient('pencil', { channelBinding: createHash('sha256').update('the relay certificate').digest() });
    const serverFirst = server.handleClientFirst(client.clientFirst(), SCRAM_SHA_256_PLUS);
    expect(codeOf(() => server.handleClientFinal(client.clientFinal(serverFirst)))).toBe('08P01');
  });

  it('refuses a client that supports binding but saw no offer (downgrade), and mismatched flags', () => {
    const server = () => new ScramServer(verifier, { channelBinding: binding });
    expect(codeOf(() => server().handleClientFirst(Buffer.from('y,,n=,r=abc'), SCRAM_SHA_256))).toBe('08P01');
    expect(codeOf(() => server().handleClientFirst(Buffer.from('n,,n=,r=abc'), SCRAM_SHA_256_PLUS))).toBe('08P01');
    expect(codeOf(() => server().handleClientFirst(Buffer.from('p=tls-server-end-point,,n=,r=abc'), SCRAM_SHA_256))).toBe('08P01');
    expect(codeOf(() => server().handleClientFirst(Buffer.from('p=tls-unique,,n=,r=abc'), SCRAM_SHA_256_PLUS))).toBe('08P01');
    // Without TLS nothing is offered but plain SCRAM, and a 'y' client is then right to go on unbound.
    const plain = new ScramServer(verifier);
    expect(plain.mechanisms).toEqual([SCRAM_SHA_256]);
    expect(codeOf(() => new ScramServer(verifier).handleClientFirst(Buffer.from('n,,n=,r=abc'), SCRAM_SHA_256_PLUS))).toBe('08P01');
    expect(() => plain.handleClientFirst(Buffer.from('y,,n=,r=abc'), SCRAM_SHA_256)).not.toThrow();
  });

  it('still serves an unbound client over TLS', () => {
    const server = new ScramServer(verifier, { channelBinding: binding });
    const client = new ScramClient('pencil');
    const result = server.handleClientFinal(client.clientFinal(server.handleClientFirst(client.clientFirst(), SCRAM_SHA_256)));
    expect(result.ok).toBe(true);
  });
});
