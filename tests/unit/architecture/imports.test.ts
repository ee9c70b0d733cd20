import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, posix, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * DESIGN.md "Layers": imports point downwards only. Highest first; the
 * library sits at the level of server. protocol and sql import nothing else
 * from src but errors, the bottom layer every layer reports through (the
 * contract protocol/messages.ts does); errors imports nothing. src/index.ts
 * (the package's entry) may import anything.
 */
// protocol sits below backend: the backend speaks to shards through the same
// codec (protocol imports nothing else, so this makes no cycle).
// cdc (change data capture) reads shards' logical replication streams: below the
// admin API that will report on it, above the engine it never needs.
// export (export/import of the whole fleet) drives the library to load rows and tx's cut to read
// them: below the CLI, above the library (server level).
// messaging (broker sinks) is used by saga's outbox relay and by cdc; it needs nothing but errors.
const LAYERS = ['cli', 'export', 'saga', 'server', 'admin', 'cdc', 'engine', 'tx', 'planner', 'sql', 'backend', 'protocol', 'config', 'messaging', 'observe', 'errors'] as const;
// bench/ holds the `shardgate bench` command (DESIGN.md "Surfaces" lists it among the CLI's commands).
const SAME_AS: Readonly<Record<string, string>> = { library: 'server', bench: 'cli' };
const SELF_CONTAINED = new Set(['protocol', 'sql', 'errors']);
const FREE = new Set(['index']);

/**
 * Interfaces a higher layer declares for a lower one to implement (dependency
 * inversion, as the contracts say): the engine declares ShardCursor and
 * ShardConnector, "implemented in backend/", in terms of protocol/fields.ts.
 * Only type-only imports of exactly these files are allowed, and only from
 * the named layer.
 */
const DECLARED_FOR: Readonly<Record<string, readonly string[]>> = {
  'engine/shard-cursor.ts': ['backend'],
  'protocol/fields.ts': ['backend'],
};

const SRC = resolve('src');

/** The layer of a file under src/: its first folder, or its name without extension for top-level files. */
export function layerOf(fileUnderSrc: string): string {
  const [first, ...rest] = fileUnderSrc.split('/');
  const name = rest.length === 0 ? first!.replace(/\.(d\.)?[cm]?[tj]s$/, '') : first!;
  return SAME_AS[name] ?? name;
}

function rank(layer: string): number {
  return LAYERS.length - LAYERS.indexOf(layer as (typeof LAYERS)[number]);
}

/** Why importing `target` from `importer` (both relative to src/) breaks the layer rules, or null when it does not. */
export function violation(importer: string, target: string, typeOnly = false): string | null {
  const from = layerOf(importer);
  if (target.startsWith('..')) return `${importer} imports ${target}, outside src/`;
  const to = layerOf(target);
  if (FREE.has(from)) return null;
  if (FREE.has(to)) return `${importer} imports src/${target}, the package entry, which only applications may import`;
  if (!LAYERS.includes(from as never)) return `${importer} is in "${from}", which DESIGN.md's layer order does not name; add it there and to this test`;
  if (!LAYERS.includes(to as never)) return `${importer} imports ${target} in "${to}", which DESIGN.md's layer order does not name`;
  if (from === to) return null;
  if (typeOnly && DECLARED_FOR[target]?.includes(from)) return null;
  if (to === 'errors' && from !== 'errors') return null;
  if (SELF_CONTAINED.has(from)) return `${importer} imports ${target}: ${from}/ imports nothing else from src`;
  if (rank(to) > rank(from)) return `${importer} imports ${target}: ${from} may not import ${to}, which is above it`;
  return null;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.[cm]?tsx?$/.test(name) ? [path] : [];
  });
}

/** Every module a file refers to: imports, re-exports, dynamic import() and import('x').T types, each marked type-only or not. */
export function moduleRefs(fileName: string, text: string): { spec: string; typeOnly: boolean }[] {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const refs: { spec: string; typeOnly: boolean }[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      const bindings = clause?.namedBindings;
      const allNamedTypeOnly =
        clause !== undefined && clause.name === undefined && bindings !== undefined && ts.isNamedImports(bindings) &&
        bindings.elements.length > 0 && bindings.elements.every((e) => e.isTypeOnly);
      refs.push({ spec: node.moduleSpecifier.text, typeOnly: clause?.isTypeOnly === true || allNamedTypeOnly });
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      refs.push({ spec: node.moduleSpecifier.text, typeOnly: node.isTypeOnly });
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const arg = node.arguments[0];
      if (arg && ts.isStringLiteralLike(arg)) refs.push({ spec: arg.text, typeOnly: false });
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      refs.push({ spec: node.argument.literal.text, typeOnly: true });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return refs;
}

function toSrcPath(file: string, spec: string): string | null {
  if (!spec.startsWith('.')) return null;
  const abs = resolve(dirname(file), spec).replace(/\.js$/, '.ts');
  return relative(SRC, abs).split(/[\\/]/).join(posix.sep);
}

describe('import direction (DESIGN.md "Layers")', () => {
  it('finds no import that points upwards', () => {
    const problems: string[] = [];
    const files = sourceFiles(SRC);
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      const importer = relative(SRC, file).split(/[\\/]/).join(posix.sep);
      for (const { spec, typeOnly } of moduleRefs(file, readFileSync(file, 'utf8'))) {
        const target = toSrcPath(file, spec);
        if (target === null) continue;
        const problem = violation(importer, target, typeOnly);
        if (problem !== null && !problems.includes(problem)) problems.push(problem);
      }
    }
    expect(problems).toEqual([]);
  });

  it('sees type-only, re-export and dynamic imports', () => {
    const text = [
      "import type { A } from './a.js';",
      "export { B } from './b.js';",
      "const c = await import('./c.js');",
      "import {\n  D,\n} from './d.js';",
      "import { type E } from './e.js';",
      "import { type F, G } from './f.js';",
      "export type { H } from './h.js';",
      "let i: import('./i.js').I;",
      "import './j.js';",
    ].join('\n');
    expect(moduleRefs('x.ts', text)).toEqual([
      { spec: './a.js', typeOnly: true },
      { spec: './b.js', typeOnly: false },
      { spec: './c.js', typeOnly: false },
      { spec: './d.js', typeOnly: false },
      { spec: './e.js', typeOnly: true },
      { spec: './f.js', typeOnly: false },
      { spec: './h.js', typeOnly: true },
      { spec: './i.js', typeOnly: true },
      { spec: './j.js', typeOnly: false },
    ]);
  });

  it('flags upward, sideways-from-self-contained and unknown-layer imports', () => {
    expect(violation('config/load.ts', 'engine/engine.ts')).toMatch(/above it/);
    expect(violation('backend/pool.ts', 'tx/manager.ts')).toMatch(/above it/);
    expect(violation('protocol/bind.ts', 'config/names.ts')).toMatch(/imports nothing else/);
    expect(violation('protocol/bind.ts', 'sql/parse.ts')).toMatch(/imports nothing else/);
    expect(violation('backend/pool.ts', 'engine/shard-cursor.ts')).toMatch(/above it/);
    expect(violation('backend/pool.ts', 'engine/engine.ts', true)).toMatch(/above it/);
    expect(violation('config/x.ts', 'engine/shard-cursor.ts', true)).toMatch(/above it/);
    expect(violation('backend/pool.ts', 'protocol/index.ts')).toBeNull();
    expect(violation('protocol/bind.ts', 'backend/pool.ts')).toMatch(/imports nothing else/);
    expect(violation('sql/parse.ts', 'config/names.ts')).toMatch(/imports nothing else/);
    expect(violation('errors/catalogue.ts', 'observe/logger.ts')).toMatch(/imports nothing else/);
    expect(violation('engine/x.ts', 'library.ts')).toMatch(/above it/);
    expect(violation('engine/x.ts', 'index.ts')).toMatch(/package entry/);
    expect(violation('gadgets/x.ts', 'errors/pg-error.ts')).toMatch(/does not name/);
    expect(violation('cli/x.ts', '../tests/harness/cluster.ts')).toMatch(/outside src/);
    expect(violation('engine/x.ts', 'cdc/lsn.ts')).toMatch(/above it/);
    expect(violation('backend/x.ts', 'cdc/lsn.ts')).toMatch(/above it/);
  });

  it('allows downward, same-layer and entry imports', () => {
    expect(violation('cli/main.ts', 'server/proxy-server.ts')).toBeNull();
    expect(violation('library.ts', 'engine/engine.ts')).toBeNull();
    expect(violation('server/x.ts', 'library/y.ts')).toBeNull();
    expect(violation('bench/tpcb.ts', 'server/proxy-server.ts')).toBeNull();
    expect(violation('cdc/wal-reader.ts', 'protocol/body-reader.ts')).toBeNull();
    expect(violation('cdc/x.ts', 'backend/pool.ts')).toBeNull();
    expect(violation('admin/x.ts', 'cdc/lsn.ts')).toBeNull();
    expect(violation('server/x.ts', 'bench/tpcb.ts')).toMatch(/above it/);
    expect(violation('engine/session-api.ts', 'protocol/fields.ts')).toBeNull();
    expect(violation('protocol/bind.ts', 'protocol/fields.ts')).toBeNull();
    expect(violation('index.ts', 'cli/main.ts')).toBeNull();
    expect(violation('observe/logger.ts', 'errors/pg-error.ts')).toBeNull();
    expect(violation('protocol/messages.ts', 'errors/pg-error.ts', true)).toBeNull();
    expect(violation('backend/pool.ts', 'engine/shard-cursor.ts', true)).toBeNull();
    expect(violation('backend/pool.ts', 'protocol/fields.ts', true)).toBeNull();
  });
});
