import { benchUsage, parseBenchArgs } from './bench-options.js';
import { renderReport, writeReport } from './report.js';
import { runBench } from './run-bench.js';

/**
 * `npm run bench -- [--quick] [--only …] [--out DIR]`: runs the comparisons,
 * prints the Markdown report on stdout (progress on stderr) and writes
 * `<out>/<timestamp>.md` and `.json`. Exit status 1 on a bad argument or
 * when nothing could be measured.
 */
async function main(argv: readonly string[]): Promise<number> {
  let opts;
  try {
    opts = parseBenchArgs(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 1;
  }
  if (opts === 'help') {
    process.stdout.write(`${benchUsage()}\n`);
    return 0;
  }
  const t0 = performance.now();
  const log = (line: string): void => {
    process.stderr.write(`[bench ${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
  };
  log(`${opts.quick ? 'quick' : 'full'} run: ${[...opts.sections].join(', ')}`);
  const report = await runBench(opts, log);
  const files = await writeReport(report, opts.outDir);
  process.stdout.write(renderReport(report));
  log(`wrote ${files.markdown} and ${files.json}`);
  return report.tables.length === 0 ? 1 : 0;
}

// SIGINT/SIGTERM end the run through process exit, which kills the proxies and PgBouncer we started;
// the PostgreSQL clusters are left in their temporary folders then.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
