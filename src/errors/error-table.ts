import { catalogue, type CatalogueEntry } from './catalogue.js';

/**
 * The Markdown table of ShardGate's own errors, generated from the catalogue
 * so the docs cannot drift from the code (`npm run docs:errors` writes it to
 * docs/ERRORS.md; a unit test fails when that file is stale).
 */
export function renderErrorTable(): string {
  const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const rows = Object.entries(catalogue as Readonly<Record<string, CatalogueEntry>>)
    .sort(([a, x], [b, y]) => x.sqlstate.localeCompare(y.sqlstate) || a.localeCompare(b))
    .map(([id, e]) => `| \`${e.sqlstate}\` | ${e.severity} | \`${id}\` | ${cell(e.message)} | ${cell(e.hint ?? '')} |`);
  return [
    '# ShardGate error catalogue',
    '',
    'Errors ShardGate raises itself (errors from a shard reach the client unchanged, every field',
    'intact). `{name}` stands for a value filled in at run time. Generated from',
    '`src/errors/catalogue.ts` by `npm run docs:errors`; do not edit by hand.',
    '',
    '| SQLSTATE | severity | id | message | hint |',
    '| --- | --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}
