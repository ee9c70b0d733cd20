import { execFile, execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { asPostgresUser } from '../../src/bench/pg-cluster.js';
import { PgCluster, pgBinDir } from './cluster.js';

/**
 * A network namespace of the suite's own, joined to this one by a veth pair on
 * a /30 subnet of its own: a shard whose PostgreSQL runs inside it is reached
 * through `nsAddress` only, so the suite can cut it off the network while
 * every process keeps running. Needs root and `ip netns`; created and removed
 * by the test that uses it (also at process exit, should the test fail first).
 */
export interface Netns {
  /** `sg-fuzz-<pid>`. */
  readonly name: string;
  /** This side's address on the veth pair. */
  readonly hostAddress: string;
  /** The namespace's address: where a server inside it listens. */
  readonly nsAddress: string;
  /** How the current cut was made, or null while the link carries traffic. */
  readonly cut: CutMode | null;
  /** Cuts the link (see CutMode). Throws if it is cut already. */
  cutOff(mode: CutMode): Promise<void>;
  /** Undoes the cut; nothing happens when the link is not cut. */
  heal(): Promise<void>;
  /** Command line that runs `program` inside the namespace. */
  wrap(program: string, args: readonly string[]): [string, string[]];
  /** Removes the veth pair and the namespace (processes still inside lose their network). */
  destroy(): Promise<void>;
}

/**
 * `down`: this side of the veth pair is set down, so packets to the namespace
 * fail at once here (unreachable: new connections are refused locally, open
 * ones get nothing through). `blackhole`: the namespace's side is set down,
 * so packets vanish in both directions without an error; connections hang as
 * behind a dead switch until the link heals and TCP retransmits.
 */
export type CutMode = 'down' | 'blackhole';

const execFileAsync = promisify(execFile);

/** Runs `ip` (no standard input: it often exits before a write to it could land). */
async function ip(args: readonly string[]): Promise<string> {
  try {
    return (await execFileAsync('ip', args, { timeout: 30_000 })).stdout;
  } catch (err) {
    throw new Error(`ip ${args.join(' ')} failed: ${String((err as { stderr?: unknown }).stderr ?? err).trim()}`);
  }
}

async function inNs(name: string, program: string, args: readonly string[]): Promise<void> {
  await ip(['netns', 'exec', name, program, ...args]);
}

/**
 * Why network namespaces cannot be used here, or undefined when they can:
 * not root, no `ip`, or the kernel refuses a namespace or a veth pair.
 */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'network namespaces need root (CI runs as root)';
  const probe = `sg-probe-${process.pid}`;
  try {
    await ip(['netns', 'add', probe]);
  } catch (err) {
    return `cannot create a network namespace with ip netns: ${String(err)}`;
  }
  try {
    await ip(['link', 'add', `sgp${process.pid}a`, 'type', 'veth', 'peer', 'name', `sgp${process.pid}b`]);
    await ip(['link', 'del', `sgp${process.pid}a`]);
    return undefined;
  } catch (err) {
    return `cannot create a veth pair: ${String(err)}`;
  } finally {
    await ip(['netns', 'del', probe]).catch(() => undefined);
  }
}

/** IPv4 addresses configured on this host, to keep the /30 away from them. */
async function addressesInUse(): Promise<string> {
  return ip(['-4', '-o', 'addr', 'show']);
}

/**
 * Creates `sg-fuzz-<pid>` and a veth pair `sgf<pid>h` (here) / `sgf<pid>n`
 * (inside) on a free 10.251.x.y/30, both up, loopback up inside.
 */
export async function createNetns(): Promise<Netns> {
  const name = `sg-fuzz-${process.pid}`;
  const host = `sgf${process.pid}h`;
  const peer = `sgf${process.pid}n`;
  const inUse = await addressesInUse();
  // The subnet is derived from the pid, so parallel runs on one machine do not collide; a /30
  // holds exactly the two ends of the pair.
  let base = (process.pid * 4) % 65_536;
  while (inUse.includes(`10.251.${base >> 8}.${(base & 255) + 1}/`) || inUse.includes(`10.251.${base >> 8}.${(base & 255) + 2}/`)) {
    base = (base + 4) % 65_536;
  }
  const hostAddress = `10.251.${base >> 8}.${(base & 255) + 1}`;
  const nsAddress = `10.251.${base >> 8}.${(base & 255) + 2}`;
  const subnet = `10.251.${base >> 8}.${base & 255}/30`;

  const removeNow = (): void => {
    // Deleting one end of a veth pair deletes both.
    for (const args of [['link', 'del', host], ['netns', 'del', name], ['route', 'del', 'unreachable', subnet, 'metric', '4242']]) {
      try {
        execFileSync('ip', args, { stdio: 'ignore' });
      } catch {
        // Already gone.
      }
    }
  };
  // A test that fails before destroy() must not leave the namespace behind.
  process.once('exit', removeNow);

  try {
    await ip(['netns', 'add', name]);
    await ip(['link', 'add', host, 'type', 'veth', 'peer', 'name', peer]);
    await ip(['link', 'set', peer, 'netns', name]);
    await ip(['addr', 'add', `${hostAddress}/30`, 'dev', host]);
    await ip(['link', 'set', host, 'up']);
    await inNs(name, 'ip', ['addr', 'add', `${nsAddress}/30`, 'dev', peer]);
    await inNs(name, 'ip', ['link', 'set', peer, 'up']);
    await inNs(name, 'ip', ['link', 'set', 'lo', 'up']);
    // While the pair is down its connected route is gone: this route, below it in priority, keeps
    // packets for the namespace from leaving by the default route (they fail here, unreachable).
    await ip(['route', 'add', 'unreachable', subnet, 'metric', '4242']);
  } catch (err) {
    removeNow();
    process.removeListener('exit', removeNow);
    throw err;
  }

  let cut: CutMode | null = null;
  return {
    name,
    hostAddress,
    nsAddress,
    get cut() {
      return cut;
    },
    async cutOff(mode) {
      if (cut !== null) throw new Error(`${name} is cut already (${cut})`);
      cut = mode;
      // down: this side is set down; its route goes and the unreachable one answers at once.
      // blackhole: the far side is set down; this side loses carrier but keeps its route, so the
      // kernel sends into a dead link and nothing comes back (no netem needed).
      if (mode === 'down') await ip(['link', 'set', host, 'down']);
      else await inNs(name, 'ip', ['link', 'set', peer, 'down']);
    },
    async heal() {
      if (cut === 'down') await ip(['link', 'set', host, 'up']);
      else if (cut === 'blackhole') await inNs(name, 'ip', ['link', 'set', peer, 'up']);
      cut = null;
    },
    wrap(program, args) {
      return ['ip', ['netns', 'exec', name, program, ...args]];
    },
    async destroy() {
      removeNow();
      process.removeListener('exit', removeNow);
    },
  };
}

/**
 * A test cluster whose postmaster can be moved into a network namespace:
 * created on loopback like any other (databases included), then `moveInto`
 * restarts it inside the namespace listening on its address only. From then
 * on `url()` points there and `start()` (after kill9) starts it there again.
 */
export class NetnsPgCluster extends PgCluster {
  #netns: Netns | undefined;

  /** Stops the server, makes it listen on the namespace's address, and starts it inside the namespace. */
  async moveInto(netns: Netns): Promise<void> {
    await this.stop('fast');
    const confPath = join(this.dataDir, 'postgresql.conf');
    // A later line wins in postgresql.conf.
    await writeFile(confPath, `${await readFile(confPath, 'utf8')}\nlisten_addresses = '${netns.nsAddress}'\n`);
    // Clients come from this side of the veth pair; trust them as the loopback ones are.
    const hbaPath = join(this.dataDir, 'pg_hba.conf');
    await writeFile(hbaPath, `${await readFile(hbaPath, 'utf8')}\nhost all all ${netns.hostAddress}/32 trust\n`);
    this.#netns = netns;
    await this.start();
  }

  override url(database = 'postgres'): string {
    return this.#netns === undefined ? super.url(database) : `postgres://postgres@${this.#netns.nsAddress}:${this.port}/${database}`;
  }

  override async start(): Promise<void> {
    if (this.#netns === undefined) return super.start();
    const log = join(this.root, 'server.log');
    const [program, args] = asPostgresUser(join(pgBinDir(), 'pg_ctl'), ['-D', this.dataDir, '-l', log, '-w', '-t', '60', 'start']);
    const [cmd, argv] = this.#netns.wrap(program, args);
    try {
      await execFileAsync(cmd, argv, { timeout: 120_000 });
    } catch (err) {
      const tail = (await readFile(log, 'utf8').catch(() => '')).split('\n').slice(-15).join('\n');
      throw new Error(`PostgreSQL on ${this.#netns.nsAddress}:${this.port} (netns ${this.#netns.name}) did not start: ${String(err)}\n${tail}`);
    }
  }
}
