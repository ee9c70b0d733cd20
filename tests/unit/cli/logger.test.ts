import { describe, expect, it } from 'vitest';
import { createLogger, redactUrl } from '../../../src/observe/logger.js';

function capture(): { stream: { write(s: string): void }; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  return {
    stream: { write: (s: string) => void chunks.push(s) },
    lines: () => chunks.join('').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('createLogger', () => {
  it('writes JSON lines and never a password', () => {
    const out = capture();
    const log = createLogger({ destination: out.stream, env: {} });
    log.info({ config: { auth: { users: [{ name: 'app', password: 'secret1' }] } }, password: 'secret2', user: { password: 'secret3' } }, 'hello');
    const text = JSON.stringify(out.lines());
    expect(out.lines()[0]?.msg).toBe('hello');
    expect(text).not.toMatch(/secret\d/);
    expect(text).toContain('"name":"app"');
  });

  it('takes its level from SHARDGATE_LOG_LEVEL and ignores unknown levels', () => {
    expect(createLogger({ destination: capture().stream, env: { SHARDGATE_LOG_LEVEL: 'debug' } }).level).toBe('debug');
    expect(createLogger({ destination: capture().stream, env: { SHARDGATE_LOG_LEVEL: 'loud' } }).level).toBe('info');
    const out = capture();
    createLogger({ destination: out.stream, env: { SHARDGATE_LOG_LEVEL: 'warn' } }).info({}, 'hidden');
    expect(out.lines()).toEqual([]);
  });

  it('strips passwords from URLs meant for people', () => {
    expect(redactUrl('postgres://u:pw@127.0.0.1:5432/app')).toBe('postgres://u:***@127.0.0.1:5432/app');
    expect(redactUrl('postgres://u@127.0.0.1/app')).toBe('postgres://u@127.0.0.1/app');
  });
});
