import { readFileSync } from 'node:fs';

/** /proc reports CPU times in USER_HZ, which Linux fixes at 100 ticks per second. */
const TICKS_PER_SECOND = 100;

/**
 * CPU time (user + system) a process has used so far, in milliseconds, from
 * /proc/<pid>/stat; null when the process is gone or /proc is unavailable.
 * The resolution is 10 ms: measure over runs of seconds.
 */
export function processCpuMs(pid: number): number | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) may hold spaces and parentheses: the fields after it start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
  return ((utime + stime) * 1000) / TICKS_PER_SECOND;
}

/** The first child of a process (the server a `runuser` wrapper started), or null. */
export function firstChildPid(pid: number): number | null {
  try {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter((s) => s !== '');
    return children.length > 0 ? Number(children[0]) : null;
  } catch {
    return null;
  }
}
