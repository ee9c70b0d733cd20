import { describe, expect, it } from 'vitest';
import { parseStartup, SessionSettings, settingsDiff, UNKNOWN_SETTING } from '../../../src/engine/session-settings.js';
import { LoggingConnector } from './logging-cursor.js';
import { shardName } from '../../../src/config/names.js';

describe('parseStartup', () => {
  it('keeps application_name, treats UTF-8 as the default encoding and splits options', () => {
    const s = parseStartup({ user: 'u', database: 'd', application_name: 'psql', client_encoding: 'utf-8', options: '-c search_path=a,b --statement-timeout=5s -cwork_mem=1MB', DateStyle: 'ISO' });
    expect(s.applicationName).toBe('psql');
    expect(s.clientEncoding).toBe('UTF8');
    expect(Object.fromEntries(s.settings)).toEqual({ search_path: 'a,b', statement_timeout: '5s', work_mem: '1MB', datestyle: 'ISO', application_name: 'psql' });
  });

  it('keeps a non-UTF-8 client encoding as a setting', () => {
    expect(parseStartup({ client_encoding: 'LATIN1' }).settings.get('client_encoding')).toBe('LATIN1');
  });

  it('honours backslash-escaped spaces in options', () => {
    expect(parseStartup({ options: '-c application_name=my\\ app' }).applicationName).toBe('my app');
  });
});

describe('settingsDiff', () => {
  it('sets what differs and resets what the connection has beyond the session', () => {
    const wanted = new Map([['a', 'SET a TO 1'], ['b', 'SET b TO 2']]);
    const current = new Map([['a', 'SET a TO 1'], ['b', UNKNOWN_SETTING], ['c', 'SET c TO 3']]);
    expect(settingsDiff(wanted, current)).toBe('SET b TO 2; RESET c');
    expect(settingsDiff(wanted, new Map(wanted))).toBe('');
  });
});

describe('SessionSettings.apply', () => {
  it('sends one statement for the difference and records it on the connection only after it succeeded', async () => {
    let fail = false;
    const connector = new LoggingConnector(['s0'], ({ sql }) => (fail && sql.startsWith('SET') ? { error: { severity: 'ERROR', code: '22023', message: 'bad' } } : undefined));
    const conn = await connector.acquire(shardName('s0'));
    const settings = new SessionSettings(new Map([['search_path', 'a,b']]));
    settings.set('work_mem', "'1MB'");
    await settings.apply(conn);
    expect(connector.log.filter((e) => e.kind === 'exec').map((e) => e.sql)).toEqual([
      "SELECT pg_catalog.set_config('search_path', 'a,b', false); SET work_mem TO '1MB'",
    ]);
    await settings.apply(conn);
    expect(connector.log.filter((e) => e.kind === 'exec')).toHaveLength(1);
    fail = true;
    settings.set('work_mem', "'2MB'");
    await expect(settings.apply(conn)).rejects.toMatchObject({ code: '22023' });
    expect(conn.settings.get('work_mem')).toBe("SET work_mem TO '1MB'");
  });
});
