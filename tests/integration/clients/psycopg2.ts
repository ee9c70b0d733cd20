import { runCommand } from '../../harness/cluster.js';

// Debian's python, where python3-psycopg2 installs; a pyenv python3 on PATH would not see it.
export const PYTHON = '/usr/bin/python3';

/** Throws with the fix when psycopg2 is not importable by PYTHON. */
export async function requirePsycopg2(): Promise<void> {
  const probe = await runCommand(PYTHON, ['-c', 'import psycopg2'], { timeoutMs: 30_000 }).catch((err: Error) => ({ code: -1, stderr: err.message }));
  if (probe.code !== 0) {
    throw new Error(`psycopg2 is not importable by ${PYTHON} (${probe.stderr.trim()}): run \`bash scripts/install-test-deps.sh\``);
  }
}
