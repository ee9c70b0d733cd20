/** What replaces a secret in masked output. */
export const MASK = '***';

// Keys whose values are secrets wherever they appear (auth.users[].password, adminToken, …).
const SECRET_KEY = /password|passwd|secret|token|api[-_]?key|credential|private[-_]?key/i;
// libpq keyword/value connection strings: password='…' or password=…
const CONNINFO_PASSWORD = /\b(password|sslpassword)\s*=\s*('(?:[^'\\]|\\.)*'|[^\s]*)/gi;
// scheme://user:password@host when the text is not a parseable URL.
const USERINFO_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*:)[^@/?#\s]*@/gi;

/** `text` with any password in a URL (userinfo or `password=` query parameter) or conninfo string replaced by MASK. */
export function maskSecretsInText(text: string): string {
  if (text.includes('://')) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      return text.replace(USERINFO_PASSWORD, `$1${MASK}@`).replace(CONNINFO_PASSWORD, `$1=${MASK}`);
    }
    let changed = false;
    if (url.password !== '') {
      url.password = MASK;
      changed = true;
    }
    for (const key of [...url.searchParams.keys()]) {
      if (SECRET_KEY.test(key)) {
        url.searchParams.set(key, MASK);
        changed = true;
      }
    }
    return changed ? url.toString() : text;
  }
  return text.replace(CONNINFO_PASSWORD, `$1=${MASK}`);
}

/**
 * A JSON-ready deep copy of a configuration with every secret masked: values
 * under secret-like keys (password, token, secret, …) become MASK whatever
 * their type, and passwords inside URLs and connection strings are replaced.
 * Maps become objects, Sets arrays, bigints strings; functions and cycles are
 * dropped. Empty and null secrets stay as they are, so "no token configured"
 * remains visible.
 */
export function maskConfig(config: unknown): unknown {
  return maskValue(config, new WeakSet());
}

function maskValue(value: unknown, seen: WeakSet<object>): unknown {
  if (typeof value === 'string') return maskSecretsInText(value);
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'function' || typeof value === 'symbol') return undefined;
  if (value === null || typeof value !== 'object') return value;
  if (seen.has(value)) return undefined;
  seen.add(value);
  try {
    if (value instanceof Date) return value.toISOString();
    if (Array.isArray(value) || value instanceof Set) return [...value].map((v) => maskValue(v, seen) ?? null);
    const entries: [string, unknown][] = value instanceof Map ? [...value.entries()].map(([k, v]) => [String(k), v]) : Object.entries(value);
    const out: Record<string, unknown> = {};
    for (const [key, v] of entries) {
      const masked = SECRET_KEY.test(key) && v !== null && v !== undefined && v !== '' ? MASK : maskValue(v, seen);
      if (masked !== undefined) out[key] = masked;
    }
    return out;
  } finally {
    // Only cycles are dropped: an object shared by two branches is shown in both.
    seen.delete(value);
  }
}
