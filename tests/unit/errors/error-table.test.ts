import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { catalogue } from '../../../src/errors/catalogue.js';
import { renderErrorTable } from '../../../src/errors/error-table.js';

describe('error catalogue documentation', () => {
  it('docs/ERRORS.md is the table generated from the catalogue (run `npm run docs:errors` after changing it)', () => {
    expect(readFileSync('docs/ERRORS.md', 'utf8')).toBe(renderErrorTable());
  });

  it('lists every catalogue entry with its SQLSTATE', () => {
    const table = renderErrorTable();
    for (const [id, entry] of Object.entries(catalogue)) {
      expect(table).toContain(`| \`${entry.sqlstate}\` | ${entry.severity} | \`${id}\` |`);
    }
  });

  it('uses five-character SQLSTATEs and FATAL only for errors that end the session', () => {
    for (const entry of Object.values(catalogue)) {
      expect(entry.sqlstate).toMatch(/^[0-9A-Z]{5}$/);
      if (entry.severity === 'FATAL') expect(entry.sqlstate.slice(0, 2)).toMatch(/^(08|28|3D|0A|53|57)$/);
    }
  });
});
