/** One problem in a configuration, located by its key path (`tables.orders.key`). */
export interface ConfigIssue {
  readonly path: string;
  readonly message: string;
}

/**
 * A configuration that cannot be used. Carries every problem found, not just
 * the first, so an operator fixes the file in one round; `message` lists them
 * one per line as `path: message`.
 */
export class ConfigError extends Error {
  readonly issues: ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    super(issues.map((i) => `${i.path}: ${i.message}`).join('\n') || 'invalid configuration');
    this.name = 'ConfigError';
    this.issues = [...issues];
  }
}

/**
 * Formats a key path as an operator would write it: `tables.orders.key`,
 * `auth.users[1].name`, `tables["a.b"]`. The empty path is the whole document.
 */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'string' && /^[A-Za-z_][A-Za-z0-9_$]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out === '' ? '(document)' : out;
}
