/**
 * The fuzz harness's frame: a surface makes input `i` from (seed, i) alone and sends or applies
 * it; the runner sends inputs with bounded concurrency in batches and, after each batch (and at
 * once when a member process exits), checks the cluster: every member alive, a fresh key put
 * through one member read linearizably on each, equal HashKV at that revision on all, and each
 * member's RSS (peak reported). Any failure stops the run with the seed, the input index and
 * the recent inputs (hex, truncated), and keeps the member logs.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlotillaClient } from '../client/index.js';
import type { FaultCluster } from '../faults/cluster.js';
import { hexPreview } from './mutate.js';

/** One input, made deterministically from (seed, index). */
export interface FuzzInput {
  readonly index: number;
  /** What it is: surface-specific (method, route, kind of mutation). */
  readonly label: string;
  /** The bytes sent (for several messages, their concatenation). */
  readonly bytes: Uint8Array;
}

export interface Surface {
  readonly name: string;
  /** Inputs in flight at once (1 for in-process surfaces). */
  readonly concurrency: number;
  make(index: number): FuzzInput;
  /**
   * Sends or applies the input. Resolves within the surface's own time bounds; a string is a
   * failure the surface detected itself (e.g. a WAL that recovered invented data).
   */
  run(input: FuzzInput): Promise<string | null>;
  /** What the inputs came to (e.g. how many recoveries were clean), for the summary. */
  stats?(): string;
  close(): Promise<void>;
}

/** Inputs between two cluster checks. */
export const BATCH_INPUTS_DEFAULT = 1000;
/** How long a cluster check may take to see a member answer (retried meanwhile: a leader moved by MoveLeader is not a failure). */
export const CHECK_TIMEOUT_MS = 15_000;
/** Recent inputs kept for a failure report. */
const RECENT_KEPT = 8;

export interface SurfaceResult {
  readonly surface: string;
  readonly inputs: number;
  readonly seconds: number;
  readonly failure: string | null;
  /** Peak RSS per member (network surfaces) or of this process (in-process ones), bytes. */
  readonly peakRssBytes: Record<string, number>;
  readonly stats?: string;
}

/** VmRSS of a process from /proc, bytes (0 when unreadable: not Linux, or gone). */
export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function retrying<T>(what: string, f: () => Promise<T>, timeoutMs = CHECK_TIMEOUT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      return await f();
    } catch (e) {
      last = e;
      await sleep(200);
    }
  }
  throw new Error(`${what}: ${(last as Error | undefined)?.message ?? 'timed out'}`);
}

/** The per-batch check of a cluster; returns a failure description or null. */
export async function checkCluster(cluster: FaultCluster, clients: FlotillaClient[], round: number, peak: Record<string, number>): Promise<string | null> {
  for (const m of cluster.members) {
    const p = m.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return `member ${m.name} exited (code ${p?.exitCode}, signal ${p?.signalCode})`;
    peak[m.name] = Math.max(peak[m.name] ?? 0, rssBytes(p.pid!));
  }
  const n = cluster.members.length;
  const key = `fuzz-check/${round}`;
  const value = `v${round}-${Date.now()}`;
  const via = round % n;
  let rev: bigint;
  try {
    // Any client may raise an alarm (Maintenance.Alarm ACTIVATE, as in etcd), and a fuzzed one
    // may have: NOSPACE or CORRUPT refuses the check's put. Disarmed first, as an operator would.
    for (const a of await retrying('alarm list', () => clients[via]!.alarmList())) await retrying(`alarm disarm ${a.alarm}`, () => clients[via]!.alarmDisarm(a.memberId, a.alarm));
    rev = (await retrying(`put through ${cluster.members[via]!.name}`, () => clients[via]!.put(key, value))).header.revision;
  } catch (e) {
    return `cluster check: ${(e as Error).message}`;
  }
  const hashes: string[] = [];
  for (let i = 0; i < n; i++) {
    const name = cluster.members[i]!.name;
    try {
      const got = await retrying(`linearizable read on ${name}`, () => clients[i]!.get(key));
      const v = got.kvs[0]?.valueString();
      if (v !== value) return `cluster check: ${name} read ${JSON.stringify(v)} for ${key} after the put of ${JSON.stringify(value)} was acknowledged`;
      const h = await retrying(`HashKV on ${name}`, () => clients[i]!.hashKv(cluster.members[i]!.client, rev));
      hashes.push(`${name}=${h.hash}`);
    } catch (e) {
      return `cluster check: ${(e as Error).message}`;
    }
  }
  const distinct = new Set(hashes.map((h) => h.split('=')[1]));
  if (distinct.size !== 1) return `cluster check: HashKV differs at revision ${rev}: ${hashes.join(' ')}`;
  return null;
}

export interface RunSurfaceOptions {
  readonly seed: number;
  readonly runs: number;
  /** First input index (to replay one input: --first I --runs 1). */
  readonly first: number;
  readonly batch: number;
  readonly cluster: FaultCluster | null;
  readonly log: (line: string) => void;
  /** Other options a replay needs (e.g. --exclude ...). */
  readonly replayArgs?: string;
}

/** Runs `runs` inputs of a surface, checking the cluster after every batch. */
export async function runSurface(s: Surface, o: RunSurfaceOptions): Promise<SurfaceResult> {
  const peak: Record<string, number> = {};
  const recent: FuzzInput[] = [];
  const t0 = performance.now();
  let done = 0;
  let failure: string | null = null;
  let exited: string | null = null;
  const onExit: (() => void)[] = [];
  const clients = o.cluster ? o.cluster.members.map((m) => new FlotillaClient({ endpoints: [m.client], requestTimeoutMs: 3000 })) : [];
  if (o.cluster) {
    for (const m of o.cluster.members) {
      const f = () => {
        exited ??= `member ${m.name} exited (code ${m.proc?.exitCode}, signal ${m.proc?.signalCode})`;
      };
      m.proc!.once('exit', f);
      onExit.push(() => m.proc?.off('exit', f));
    }
  }
  const report = (why: string, culprit: FuzzInput | null): string => {
    const lines = [`FAILURE on surface ${s.name}, seed ${o.seed}: ${why}`];
    if (culprit) lines.push(`  input ${culprit.index} (${culprit.label}): ${hexPreview(culprit.bytes)}`);
    lines.push(`  the last ${recent.length} inputs sent (replay one with --surface ${s.name} --seed ${o.seed} --first <index> --runs 1${o.replayArgs ? ` ${o.replayArgs}` : ''}):`);
    for (const x of recent) lines.push(`    #${x.index} ${x.label}: ${hexPreview(x.bytes, 96)}`);
    if (o.cluster) {
      const dir = mkdtempSync(join(tmpdir(), 'flotilla-fuzz-failure-'));
      for (const m of o.cluster.members) writeFileSync(join(dir, `${m.name}.log`), m.log);
      lines.push(`  member logs (their last 20 kB) kept in ${dir}`);
    }
    return lines.join('\n');
  };
  try {
    const end = o.first + o.runs;
    let round = 0;
    for (let batchStart = o.first; batchStart < end && !failure; batchStart += o.batch) {
      const batchEnd = Math.min(end, batchStart + o.batch);
      let next = batchStart;
      const worker = async () => {
        while (next < batchEnd && !failure && !exited) {
          const input = s.make(next++);
          recent.push(input);
          if (recent.length > RECENT_KEPT) recent.shift();
          let r: string | null;
          try {
            r = await s.run(input);
          } catch (e) {
            r = `the harness's own send threw: ${(e as Error).stack ?? String(e)}`;
          }
          done++;
          if (r && !failure) failure = report(r, input);
        }
      };
      await Promise.all(Array.from({ length: s.concurrency }, worker));
      if (failure) break;
      if (exited) {
        failure = report(exited, null);
        break;
      }
      if (o.cluster) {
        const bad = await checkCluster(o.cluster, clients, round++, peak);
        if (bad) {
          failure = report(exited ?? bad, null);
          break;
        }
      } else {
        peak.self = Math.max(peak.self ?? 0, process.memoryUsage().rss);
      }
      const secs = (performance.now() - t0) / 1000;
      o.log(`  ${s.name}: ${done} inputs, ${(done / secs).toFixed(0)}/s, checks passed`);
    }
  } finally {
    for (const f of onExit) f();
    await Promise.all(clients.map((c) => c.close()));
  }
  return { surface: s.name, inputs: done, seconds: (performance.now() - t0) / 1000, failure, peakRssBytes: peak, stats: s.stats?.() };
}
