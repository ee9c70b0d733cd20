/** Average latency and failures of one script line, from `pgbench --report-per-command`. */
export interface CommandLatency {
  /** The script line as pgbench printed it, e.g. `END;` or `\set aid random(1, 100000 * :scale)`. */
  readonly command: string;
  readonly latencyMs: number;
  /** Failed executions of this line; null when pgbench printed no failures column (before PostgreSQL 15). */
  readonly failures: number | null;
}

/** The summary pgbench prints at the end of a run. */
export interface PgbenchSummary {
  readonly transactionType: string | null;
  readonly scale: number | null;
  readonly queryMode: string | null;
  readonly clients: number | null;
  readonly threads: number | null;
  readonly transactions: number;
  readonly failedTransactions: number;
  /** Transactions per second, without the initial connection time. */
  readonly tps: number;
  readonly latencyAverageMs: number | null;
  readonly latencyStddevMs: number | null;
  readonly initialConnectionMs: number | null;
  /** Per script line, in script order; empty without --report-per-command. */
  readonly commands: readonly CommandLatency[];
}

/** Thrown when pgbench's output lacks the lines every successful run prints. */
export class PgbenchOutputError extends Error {
  constructor(message: string, readonly output: string) {
    super(message);
    this.name = 'PgbenchOutputError';
  }
}

function numberAfter(text: string, re: RegExp): number | null {
  const m = re.exec(text);
  return m === null ? null : Number(m[1]);
}

function textAfter(text: string, re: RegExp): string | null {
  const m = re.exec(text);
  return m === null ? null : m[1]!.trim();
}

// Per-command lines: leading spaces, latency in ms, optionally a failures and a
// retries column (PostgreSQL 15+), two spaces, then the script line.
const COMMAND_LINE = /^\s+(\d+(?:\.\d+)?)(?:\s+(\d+))?(?:\s+(\d+))?\s{2}(\S.*)$/;

/**
 * Reads the summary pgbench (PostgreSQL 13–17) prints on stdout. Throws
 * PgbenchOutputError when the transaction count or the tps line is missing,
 * which is what happens when the run aborted.
 */
export function parsePgbenchOutput(output: string): PgbenchSummary {
  const transactions = numberAfter(output, /^number of transactions actually processed: (\d+)/m);
  const tps = numberAfter(output, /^tps = (\d+(?:\.\d+)?) \((?:without|excluding) initial connection/m) ?? numberAfter(output, /^tps = (\d+(?:\.\d+)?)/m);
  if (transactions === null) throw new PgbenchOutputError('pgbench printed no "number of transactions actually processed" line', output);
  if (tps === null) throw new PgbenchOutputError('pgbench printed no "tps =" line', output);

  const commands: CommandLatency[] = [];
  const header = /^statement latencies in milliseconds(?: and failures)?:?$/m.exec(output);
  if (header !== null) {
    const after = output.slice(header.index + header[0].length).split('\n').slice(1);
    for (const line of after) {
      const m = COMMAND_LINE.exec(line);
      if (m === null) break;
      commands.push({ command: m[4]!.trim(), latencyMs: Number(m[1]), failures: m[2] === undefined ? null : Number(m[2]) });
    }
  }

  return {
    transactionType: textAfter(output, /^transaction type: (.+)$/m),
    scale: numberAfter(output, /^scaling factor: (\d+)/m),
    queryMode: textAfter(output, /^query mode: (.+)$/m),
    clients: numberAfter(output, /^number of clients: (\d+)/m),
    threads: numberAfter(output, /^number of threads: (\d+)/m),
    transactions,
    failedTransactions: numberAfter(output, /^number of failed transactions: (\d+)/m) ?? 0,
    tps,
    latencyAverageMs: numberAfter(output, /^latency average = (\d+(?:\.\d+)?) ms/m),
    latencyStddevMs: numberAfter(output, /^latency stddev = (\d+(?:\.\d+)?) ms/m),
    initialConnectionMs: numberAfter(output, /^initial connection time = (\d+(?:\.\d+)?) ms/m),
    commands,
  };
}

/** The latency of the first script line matching `re` (for example /^(END|COMMIT)\b/i), or null. */
export function commandLatency(summary: PgbenchSummary, re: RegExp): number | null {
  return summary.commands.find((c) => re.test(c.command))?.latencyMs ?? null;
}

/**
 * Transaction latencies in milliseconds from pgbench's per-transaction log
 * (`-l`): lines `client_id transaction_no time script_no time_epoch time_us
 * [schedule_lag]`, time in microseconds. Failed and skipped transactions
 * (time written as `failed` or `skipped`) are left out.
 */
export function parsePgbenchLog(text: string): number[] {
  const out: number[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 6) continue;
    const us = Number(fields[2]);
    if (Number.isFinite(us) && /^\d+$/.test(fields[2]!)) out.push(us / 1000);
  }
  return out;
}
