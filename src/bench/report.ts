import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { BenchOptions } from './bench-options.js';
import { renderSection, type ResultTable } from './result-table.js';
import { renderTargets, type Target } from './targets.js';

const execFileAsync = promisify(execFile);

/** The machine a run happened on. */
export interface MachineInfo {
  readonly cores: number;
  readonly cpuModel: string;
  readonly memoryGb: number;
  readonly kernel: string;
  readonly node: string;
  readonly postgres: string | null;
  readonly pgbench: string | null;
  readonly pgbouncer: string | null;
}

async function firstLine(cmd: string, args: readonly string[]): Promise<string | null> {
  try {
    const { stdout } = await execFileAsync(cmd, args, { timeout: 10_000 });
    return stdout.split('\n')[0]!.trim();
  } catch {
    return null;
  }
}

/** Cores, memory, kernel and program versions; `postgres` is the server version the clusters report. */
export async function machineInfo(postgres: string | null, pgbouncerPath: string): Promise<MachineInfo> {
  return {
    cores: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGb: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    kernel: release(),
    node: process.version,
    postgres,
    pgbench: await firstLine('pgbench', ['--version']),
    pgbouncer: await firstLine(pgbouncerPath, ['--version']),
  };
}

/** Everything one run produced; this is the JSON file's content. */
export interface BenchReport {
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly mode: 'quick' | 'full';
  readonly options: Omit<BenchOptions, 'sections'> & { readonly sections: readonly string[] };
  readonly machine: MachineInfo;
  readonly tables: readonly ResultTable[];
  readonly targets: readonly Target[];
  /** Sections or sides that could not run, and why. */
  readonly problems: readonly string[];
}

/** The report as JSON (options' section set written as a list). */
export function reportJson(report: BenchReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

/** The machine as one Markdown line. */
export function renderMachine(m: MachineInfo): string {
  return [
    `${m.cores} cores (${m.cpuModel})`,
    `${m.memoryGb} GB memory`,
    `Linux ${m.kernel}`,
    `Node.js ${m.node}`,
    `PostgreSQL ${m.postgres ?? 'unknown'}`,
    ...(m.pgbouncer === null ? [] : [m.pgbouncer]),
  ].join(' · ');
}

/** The whole report as Markdown: machine, targets, then one section per comparison. */
export function renderReport(report: BenchReport): string {
  const parts = [
    `# ShardGate benchmark, ${report.startedAt} (${report.mode} run)`,
    '',
    `Machine: ${renderMachine(report.machine)}`,
    '',
    '## Targets',
    '',
    renderTargets(report.targets),
    '',
    '## Results',
  ];
  for (const t of report.tables) parts.push('', renderSection(t));
  if (report.problems.length > 0) parts.push('', '## Problems', '', ...report.problems.map((p) => `- ${p}`));
  return `${parts.join('\n')}\n`;
}

/** A file-name-safe timestamp, e.g. 2026-05-01T12-30-05Z. */
export function fileTimestamp(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
}

/** Writes `<outDir>/<timestamp>.md` and `.json`; resolves with both paths. */
export async function writeReport(report: BenchReport, outDir: string): Promise<{ markdown: string; json: string }> {
  await mkdir(outDir, { recursive: true });
  const base = join(outDir, fileTimestamp(new Date(report.startedAt)));
  await writeFile(`${base}.md`, renderReport(report));
  await writeFile(`${base}.json`, reportJson(report));
  return { markdown: `${base}.md`, json: `${base}.json` };
}
