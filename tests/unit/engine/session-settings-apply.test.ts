import { describe, expect, it } from 'vitest';
import type { Responder } from './logging-cursor.js';
import { failure, enginePerTest, run } from './engine-fixture.js';

const { setup, engine } = enginePerTest();

/** Answers current_setting() reads like a shard whose DateStyle is whatever was last SET on it. */
function settingsShard(): Responder {
  return ({ sql }) => {
    if (sql.includes("current_setting('datestyle')")) return { rows: [['German, DMY']] };
    if (sql.includes("current_setting('server_version')")) return { rows: [['15.8', 'Etc/UTC']] };
    return undefined;
  };
}

describe('session settings', () => {
  it('applies a SET on every connection the session uses later, before its statement', async () => {
    const connector = await setup();
    const session = engine().session({ user: 'app', database: 'app' });
    expect((await run(session, 'SET search_path TO app, public')).tag).toBe('SET');
    // Checked on the default shard right away.
    expect(connector.statements('s0')).toEqual(["SET search_path TO 'app', 'public'"]);
    await run(session, 'SELECT * FROM accounts WHERE id = 1');
    expect(connector.statements('s1')).toEqual(["SET search_path TO 'app', 'public'", 'SELECT * FROM accounts WHERE id = 1']);
    // Same connection again: already set, nothing re-sent.
    await run(session, 'SELECT * FROM accounts WHERE id = 4');
    expect(connector.statements('s1').filter((s) => s.startsWith('SET'))).toHaveLength(1);
  });

  it('resets on a connection a session with other settings used before', async () => {
    const connector = await setup();
    const first = engine().session({ user: 'app', database: 'app' });
    await run(first, 'SET work_mem = 1024');
    await run(first, 'SELECT * FROM accounts WHERE id = 1');
    const second = engine().session({ user: 'app', database: 'app' });
    connector.clear();
    await run(second, 'SELECT * FROM accounts WHERE id = 1');
    expect(connector.statements('s1')).toEqual(['RESET work_mem', 'SELECT * FROM accounts WHERE id = 1']);
  });

  it('RESET removes the setting from later connections', async () => {
    const connector = await setup();
    const session = engine().session({ user: 'app', database: 'app' });
    await run(session, 'SET work_mem = 1024');
    await run(session, 'SELECT * FROM accounts WHERE id = 1');
    expect((await run(session, 'RESET work_mem')).tag).toBe('RESET');
    connector.clear();
    await run(session, 'SELECT * FROM accounts WHERE id = 1');
    expect(connector.statements('s1')).toEqual(['RESET work_mem', 'SELECT * FROM accounts WHERE id = 1']);
  });

  it('keeps the old value when the shard refuses the new one', async () => {
    const connector = await setup(({ sql }) => (sql.includes("'bogus'") ? { error: { severity: 'ERROR', code: '22023', message: 'invalid value' } } : undefined));
    const session = engine().session({ user: 'app', database: 'app' });
    expect(await failure(session, "SET work_mem = 'bogus'")).toBe('22023');
    connector.clear();
    await run(session, 'SELECT * FROM accounts WHERE id = 1');
    expect(connector.statements('s1')).toEqual(['SELECT * FROM accounts WHERE id = 1']);
  });

  it('reports a changed DateStyle with a parameterStatus event', async () => {
    await setup(settingsShard());
    const session = engine().session({ user: 'app', database: 'app' });
    const out = await run(session, "SET DateStyle = 'German'");
    expect(out.events.filter((e) => e.kind === 'parameterStatus')).toEqual([{ kind: 'parameterStatus', name: 'DateStyle', value: 'German, DMY' }]);
  });

  it('undoes a SET made inside a transaction that rolls back', async () => {
    const connector = await setup();
    const session = engine().session({ user: 'app', database: 'app' });
    await run(session, 'BEGIN');
    await run(session, 'SELECT * FROM accounts WHERE id = 1');
    await run(session, 'SET work_mem = 2048');
    expect(connector.statements('s1').at(-1)).toBe('SET work_mem TO 2048');
    await run(session, 'ROLLBACK');
    connector.clear();
    await run(session, 'SELECT * FROM accounts WHERE id = 1');
    // The shard rolled its SET back, but its record is unknown: it is reset to be sure.
    expect(connector.statements('s1')).toEqual(['RESET work_mem', 'SELECT * FROM accounts WHERE id = 1']);
  });

  it('sends SET LOCAL to shards that join the transaction later', async () => {
    const connector = await setup();
    const session = engine().session({ user: 'app', database: 'app' });
    await run(session, 'BEGIN');
    await run(session, 'SELECT * FROM accounts WHERE id = 1');
    await run(session, "SET LOCAL statement_timeout = '5s'");
    await run(session, 'SELECT * FROM accounts WHERE id = 2');
    await run(session, 'COMMIT');
    expect(connector.statements('s2')).toContain("SET LOCAL statement_timeout TO '5s'");
    connector.clear();
    await run(session, 'SELECT * FROM accounts WHERE id = 2');
    expect(connector.statements('s2')).toEqual(['SELECT * FROM accounts WHERE id = 2']);
  });

  it('applies startup parameters and reports them at start', async () => {
    const connector = await setup(settingsShard());
    const session = engine().session({ user: 'app', database: 'app', parameters: { application_name: 'psql', DateStyle: 'German', options: '-c search_path=app' } });
    const params = await session.initialParameters();
    expect(params.get('application_name')).toBe('psql');
    expect(params.get('DateStyle')).toBe('German, DMY');
    expect(params.get('server_version')).toBe('15.8');
    expect(params.get('session_authorization')).toBe('app');
    expect(connector.statements('s0').some((s) => s.includes("set_config('search_path', 'app', false)"))).toBe(true);
  });
});

describe('shard hint', () => {
  it('routes statements to the hinted shard until RESET and answers SHOW locally', async () => {
    const connector = await setup();
    const session = engine().session({ user: 'app', database: 'app' });
    await run(session, "SET shardgate.shard = 's2'");
    expect((await run(session, 'SHOW shardgate.shard')).rows).toEqual([['s2']]);
    await run(session, 'SELECT * FROM things');
    expect(connector.touched()).toEqual(['s2']);
    await run(session, 'RESET shardgate.shard');
    expect((await run(session, 'SHOW shardgate.shard')).rows).toEqual([['DEFAULT']]);
  });

  it('refuses an unknown shard and an unknown shardgate setting', async () => {
    await setup();
    const session = engine().session({ user: 'app', database: 'app' });
    expect(await failure(session, "SET shardgate.shard = 's9'")).toBe('22023');
    expect(await failure(session, 'SHOW shardgate.nothing')).toBe('42704');
  });
});
