import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { shardName } from '../../../src/config/names.js';
import { PgError } from '../../../src/errors/pg-error.js';
import type { Plan } from '../../../src/planner/plan.js';
import { initParser, Planner } from '../../../src/planner/planner.js';
import { configs } from './configs.js';

/**
 * Golden plans: each JSON file in golden/ holds { query, params, config?, hintShard?, plan }.
 * A mismatch writes the actual plan next to a copy of the case in a temporary folder;
 * `UPDATE_GOLDEN=1 npx vitest run tests/unit/planner` rewrites the files instead.
 */

interface GoldenCase {
  readonly query: string;
  readonly params?: readonly (string | null)[];
  readonly config?: string;
  readonly hintShard?: string;
  /** Column order of tables as the catalog would give it (RouteContext.columnsOf); absent: unknown. */
  readonly tableColumns?: Readonly<Record<string, readonly string[]>>;
  /** Indexes of parameters whose text value is unknown (binary of an unknown type): passed as undefined. */
  readonly unknownParams?: readonly number[];
  readonly plan: unknown;
}

const dir = join(dirname(fileURLToPath(import.meta.url)), 'golden');
const update = process.env.UPDATE_GOLDEN === '1';
const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
const planners = new Map<string, Planner>();

/** A plan as plain JSON: PgErrors keep the fields a client sees. */
export function serializePlan(plan: Plan): unknown {
  return JSON.parse(JSON.stringify(plan, (_key, value: unknown) => (value instanceof PgError ? { ...value.fields } : value)));
}

beforeAll(async () => {
  await initParser();
});

describe('golden plans', () => {
  it('has enough cases', () => {
    expect(files.length).toBeGreaterThanOrEqual(80);
  });

  for (const file of files) {
    it(file.replace(/\.json$/, ''), () => {
      const path = join(dir, file);
      const c = JSON.parse(readFileSync(path, 'utf8')) as GoldenCase;
      const name = c.config ?? 'main';
      const config = configs[name];
      if (config === undefined) throw new Error(`unknown config ${name}`);
      let planner = planners.get(name);
      if (planner === undefined) {
        planner = new Planner(config);
        planners.set(name, planner);
      }
      const columns = c.tableColumns;
      const ctx = {
        hintShard: c.hintShard === undefined ? null : shardName(c.hintShard),
        ...(columns === undefined ? {} : { columnsOf: (table: string) => columns[table] }),
      };
      const params: (string | null | undefined)[] = [...(c.params ?? [])];
      for (const i of c.unknownParams ?? []) params[i] = undefined;
      const actual = serializePlan(planner.plan(c.query, params, ctx));
      if (update) {
        writeFileSync(path, `${JSON.stringify({ ...c, plan: actual }, null, 2)}\n`);
        return;
      }
      if (JSON.stringify(actual) !== JSON.stringify(c.plan)) {
        const out = join(tmpdir(), 'shardgate-golden');
        mkdirSync(out, { recursive: true });
        writeFileSync(join(out, file), `${JSON.stringify({ ...c, plan: actual }, null, 2)}\n`);
        expect(
          actual,
          `plan of ${file} changed; actual plan written to ${join(out, file)}. ` +
            'If the change is intended, accept it with: UPDATE_GOLDEN=1 npx vitest run tests/unit/planner',
        ).toEqual(c.plan);
      }
      // The cached path must give the same plan as the first analysis.
      expect(serializePlan(planner.plan(c.query, params, ctx))).toEqual(actual);
    });
  }
});
