import type { Node } from 'libpg-query';
import { constText, uncast } from '../sql/ast.js';
import { literalSlot } from '../sql/statement-shape.js';

/**
 * A value compared with a sharding key: a constant from the text, a client
 * parameter (0-based index), or a literal of a statement shape (`slot`:
 * index of the literal in the shape, whose text the shape's router receives
 * in place of the parameters, see `Planner`). A slot is read like a
 * parameter but is a constant everywhere else: `key = ANY('{…}')` is not an
 * array parameter.
 */
export type ValueRef =
  | { readonly kind: 'literal'; readonly text: string | null }
  | { readonly kind: 'param'; readonly index: number }
  | { readonly kind: 'slot'; readonly index: number };

/**
 * What a statement's conditions say about one table's sharding key, as a
 * tree evaluated per call with the parameter values. 'any' means no
 * restriction (every shard).
 */
export type KeyCond =
  | { readonly kind: 'any' }
  | { readonly kind: 'in'; readonly values: readonly ValueRef[] }
  /** key = ANY($n): the parameter holds an array literal. */
  | { readonly kind: 'array'; readonly index: number }
  | { readonly kind: 'range'; readonly lo: BoundRef | null; readonly hi: BoundRef | null }
  | { readonly kind: 'and' | 'or'; readonly args: readonly KeyCond[] };

export interface BoundRef {
  readonly value: ValueRef;
  readonly inclusive: boolean;
}

export const ANY: KeyCond = { kind: 'any' };

/** AND of conditions: unrestricted parts drop out. */
export function andCond(args: readonly KeyCond[]): KeyCond {
  const kept = args.filter((a) => a.kind !== 'any');
  if (kept.length === 0) return ANY;
  if (kept.length === 1) return kept[0] as KeyCond;
  return { kind: 'and', args: kept };
}

/** OR of conditions: one unrestricted part makes the whole unrestricted. */
export function orCond(args: readonly KeyCond[]): KeyCond {
  if (args.length === 0 || args.some((a) => a.kind === 'any')) return ANY;
  if (args.length === 1) return args[0] as KeyCond;
  return { kind: 'or', args };
}

/** A constant or parameter (casts removed), or null for any other expression. A constant bound to a shape's literal is a slot. */
export function valueRef(node: Node): ValueRef | null {
  const n = uncast(node);
  if ('A_Const' in n) {
    const slot = literalSlot(n.A_Const);
    return slot === undefined ? { kind: 'literal', text: constText(n.A_Const).text } : { kind: 'slot', index: slot };
  }
  if ('ParamRef' in n) return { kind: 'param', index: (n.ParamRef.number ?? 1) - 1 };
  return null;
}

/** True when a condition reads a client parameter (the route then changes per call). */
export function condUsesParams(cond: KeyCond): boolean {
  switch (cond.kind) {
    case 'any':
      return false;
    case 'in':
      return cond.values.some((v) => v.kind === 'param');
    case 'array':
      return true;
    case 'range':
      return cond.lo?.value.kind === 'param' || cond.hi?.value.kind === 'param';
    default:
      return cond.args.some(condUsesParams);
  }
}

/**
 * Elements of a one-dimensional PostgreSQL array literal ('{1,2,"a b"}'),
 * NULL elements dropped; null when the text is not such a literal.
 */
export function parseArrayLiteral(text: string): string[] | null {
  const s = text.trim();
  if (!s.startsWith('{') || !s.endsWith('}')) return null;
  const out: string[] = [];
  let i = 1;
  const end = s.length - 1;
  if (s.slice(1, end).trim() === '') return out;
  while (i <= end) {
    while (s[i] === ' ') i++;
    let item = '';
    let quoted = false;
    if (s[i] === '"') {
      quoted = true;
      i++;
      while (i < end && s[i] !== '"') {
        if (s[i] === '\\') i++;
        item += s[i] ?? '';
        i++;
      }
      if (s[i] !== '"') return null;
      i++;
    } else {
      while (i < end && s[i] !== ',') {
        if (s[i] === '{' || s[i] === '"' || s[i] === '\\') return null;
        item += s[i];
        i++;
      }
      item = item.trim();
    }
    while (s[i] === ' ') i++;
    if (quoted || item.toUpperCase() !== 'NULL') out.push(item);
    if (i >= end) break;
    if (s[i] !== ',') return null;
    i++;
  }
  return out;
}
