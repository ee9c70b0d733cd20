import { createHash } from 'node:crypto';

function md5Hex(data: Buffer | string): string {
  return createHash('md5').update(data).digest('hex');
}

/**
 * The PasswordMessage answer to AuthenticationMD5Password (B), for shards
 * still configured with md5: "md5" + md5hex(md5hex(password + user) + salt),
 * where salt is the 4 raw bytes the server sent.
 */
export function md5Password(user: string, password: string, salt: Buffer): string {
  return `md5${md5Hex(Buffer.concat([Buffer.from(md5Hex(password + user), 'utf8'), salt]))}`;
}
