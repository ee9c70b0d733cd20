import type { z } from 'zod';
import { formatPath, type ConfigIssue } from './config-error.js';

/**
 * Turning zod's issues into lines an operator can act on: one line per
 * problem, located by key path, in the words of CONFIG.md rather than zod's.
 */

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `"${v}"`;
  return String(v);
}

const typeNames: Readonly<Record<string, string>> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  object: 'a mapping',
  record: 'a mapping',
  array: 'a list',
};

/**
 * Per-parse zod error map: messages for the issue kinds that the schema does
 * not word itself. Messages written in schema.ts take precedence over this.
 */
export function configErrorMap(iss: z.core.$ZodRawIssue): string | undefined {
  const raw = iss as unknown as Record<string, unknown>;
  switch (iss.code) {
    case 'invalid_type':
      if (iss.input === undefined) return 'required';
      return `expected ${typeNames[String(raw.expected)] ?? String(raw.expected)}, got ${describeValue(iss.input)}`;
    case 'invalid_value': {
      const values = (raw.values as unknown[] | undefined) ?? [];
      return `expected ${values.map((v) => JSON.stringify(v)).join(' or ')}, got ${describeValue(iss.input)}`;
    }
    case 'too_small':
      if (raw.origin === 'string') return 'expected a non-empty string';
      if (raw.origin === 'array') return `expected at least ${String(raw.minimum)} entries`;
      return `expected at least ${String(raw.minimum)}, got ${describeValue(iss.input)}`;
    case 'too_big':
      return `expected at most ${String(raw.maximum)}, got ${describeValue(iss.input)}`;
    default:
      return undefined;
  }
}

type Issue = z.core.$ZodIssue;

/** The value at `path` inside `root`, or undefined. */
function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = root;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[seg];
  }
  return v;
}

/**
 * Which alternative of the table-rule union the operator meant, judged by the
 * keys present: `broadcast` → a broadcast rule, `algorithm: range` → a range
 * rule, anything else → a hash or mod rule. Reporting that alternative's
 * problems beats zod's "Invalid input" for the whole union.
 */
function tableRuleBranch(value: unknown): number | null {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  const obj = value as Record<string, unknown>;
  if ('broadcast' in obj) return 0;
  if (obj.algorithm === 'range') return 2;
  return 1;
}

function isTableRulePath(path: readonly PropertyKey[]): boolean {
  return path.length === 2 && path[0] === 'tables';
}

/** Flattens zod issues into operator-facing lines (unions resolved, unknown keys one per line). */
export function toConfigIssues(issues: readonly Issue[], root: unknown): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const visit = (issue: Issue, prefix: readonly PropertyKey[]): void => {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'invalid_union') {
      const value = valueAt(root, path);
      const branch = isTableRulePath(path) ? tableRuleBranch(value) : null;
      if (branch === null) {
        out.push({
          path: formatPath(path),
          message: isTableRulePath(path)
            ? `expected a rule such as { key: COLUMN } or { broadcast: true }, got ${describeValue(value)}`
            : `expected ${path[0] === 'shards' ? 'a postgres:// URL or { embedded: FOLDER }' : 'another kind of value'}, got ${describeValue(value)}`,
        });
        return;
      }
      for (const inner of issue.errors[branch] ?? []) visit(inner, path);
      return;
    }
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const keyPath = [...path, key];
        const rule = isTableRulePath(path) ? valueAt(root, path) : undefined;
        if (rule !== undefined && tableRuleBranch(rule) === 0) {
          out.push({ path: formatPath(keyPath), message: 'a broadcast table has no key, algorithm or ranges' });
        } else if (rule !== undefined && key === 'ranges') {
          out.push({ path: formatPath(keyPath), message: 'ranges are only allowed with algorithm: range' });
        } else {
          out.push({ path: formatPath(keyPath), message: 'unknown key' });
        }
      }
      return;
    }
    if (issue.code === 'invalid_value' && isTableRulePath(prefix) && issue.path[0] === 'algorithm' && issue.path.length === 1) {
      out.push({ path: formatPath(path), message: `expected "hash", "mod" or "range", got ${describeValue(valueAt(root, path))}` });
      return;
    }
    out.push({ path: formatPath(path), message: issue.message });
  };
  for (const issue of issues) visit(issue, []);
  // One problem can surface through several zod checks; say it once.
  const seen = new Set<string>();
  return out.filter((i) => {
    const k = `${i.path}\0${i.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
