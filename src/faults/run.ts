/**
 * The fault harness: a real cluster of member processes, a nemesis injecting faults on a seeded
 * schedule, clients running a register workload and watchers recording what they see; then the
 * checkers. Verdicts: the history is linearizable (written to a file in src/check's format, so
 * anyone can re-check it with `flotilla check`), every watcher saw every event once and in
 * order, every acknowledged write is in the final history, and all members end with equal
 * HashKV.
 */
import { writeFileSync } from 'node:fs';
import { checkLinearizable, describeOp, formatHistory, type HistoryOp } from '../check/index.js';
import { Cmp, FlotillaClient, Op, type Lock, type WatchEvent } from '../client/index.js';
import { rng, type Rng } from '../lib/prng.js';
import { checkAcknowledged, checkHashes, checkWatches, FencedStoreModel, type Verdict, type WatchRecord } from './checks.js';
import { FaultCluster, type Faults, type Member } from './cluster.js';
import { NO_SHAPE, type LinkShape } from './netproxy.js';

export type { Verdict } from './checks.js';

/**
 * Every fault kind. `delay` (latency, jitter, bandwidth) and `reset` (TCP resets) shape real
 * links and need a network lab (--net netns); the others work on loopback too.
 */
export const FAULT_KINDS = ['kill', 'pause', 'partition', 'slowdisk', 'clock', 'delay', 'reset'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];
/** What `--faults all` means on loopback (no links to shape there). */
export const LOOPBACK_FAULT_KINDS: readonly FaultKind[] = ['kill', 'pause', 'partition', 'slowdisk'];
export const LINK_FAULT_KINDS: readonly FaultKind[] = ['delay', 'reset'];

/** What the harness drives: member processes on loopback (FaultCluster) or in a network lab. */
export interface FaultTarget {
  readonly members: Member[];
  readonly endpoints: string[];
  kill(i: number): void;
  restart(i: number): Promise<void>;
  pause(i: number): void;
  resume(i: number): void;
  setFaults(i: number, f: Faults): Promise<void>;
  healAll(): Promise<void>;
  stop(): Promise<void>;
  /** Real links between members (a network lab): shape or reset member i's connections to its peers (all of them when `to` is undefined). */
  readonly links?: {
    shape(i: number, shape: LinkShape, to?: string): Promise<void>;
    reset(i: number, to?: string): Promise<void>;
  };
}

export interface FaultRunOptions {
  /** Seconds of faults and workload. */
  readonly timeSec: number;
  readonly faults: readonly FaultKind[];
  readonly seed: number;
  readonly members?: number;
  readonly clients?: number;
  /** Members answer linearizable reads from the leader's lease (flotilla serve --lease-reads). */
  readonly leaseReads?: boolean;
  /** Where the history goes (JSON lines). */
  readonly historyFile: string;
  /** Starts the cluster (default: member processes on loopback). */
  readonly cluster?: (members: number, serveArgs: readonly string[]) => Promise<FaultTarget>;
  readonly log?: (line: string) => void;
}

export interface FaultRunResult {
  readonly ok: boolean;
  readonly verdicts: Verdict[];
  readonly injected: string[];
  readonly ops: number;
}

/** Operations on one key before the workload moves to the next (keeps each key's search small). */
export const OPS_PER_KEY = 300;
/** Keys written at a time. */
const ACTIVE_KEYS = 3;
const PREFIX = 'reg/';
/** Lock users contending for one lock, and their session TTL (short, so partitions expire it). */
const LOCK_USERS = 2;
const LOCK_TTL_S = 2;
const LOCK_NAME = 'harness-lock';
/** A lock attempt given up after this long (the user tries again). */
const LOCK_WAIT_MS = 5000;

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e: unknown) => (clearTimeout(t), reject(e as Error)),
    );
  });
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const nowNs = () => Number(process.hrtime.bigint());

export async function runFaults(o: FaultRunOptions): Promise<FaultRunResult> {
  const log = o.log ?? (() => {});
  const r = rng(o.seed);
  const nemesisRng = r.fork();
  const t0 = Date.now();
  const stamp = () => `${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s`;
  const injected: string[] = [];
  const note = (s: string) => {
    injected.push(`${stamp()} ${s}`);
    log(`${stamp()} ${s}`);
  };
  const n = o.members ?? 3;
  log(`starting ${n} members (fault injection on), seed ${o.seed}, faults ${o.faults.join(',') || 'none'}, ${o.timeSec} s${o.leaseReads ? ', lease reads' : ''}`);
  if (!o.cluster && o.faults.some((k) => LINK_FAULT_KINDS.includes(k))) throw new Error(`fault kinds ${LINK_FAULT_KINDS.join(', ')} need real links (--net netns)`);
  const cluster: FaultTarget = await (o.cluster ?? ((k, a) => FaultCluster.start(k, a)))(n, o.leaseReads ? ['--lease-reads'] : []);
  const clients: FlotillaClient[] = [];
  const history: HistoryOp[] = [];
  const watches: WatchRecord[] = [];
  try {
    const admin = new FlotillaClient({ endpoints: cluster.endpoints, requestTimeoutMs: 2000 });
    clients.push(admin);
    const startRev = (await admin.get(PREFIX, { prefix: true })).header.revision + 1n;

    // Watchers, one starting on each member.
    const watchers = cluster.endpoints.map((_, i) => {
      const c = new FlotillaClient({ endpoints: [...cluster.endpoints.slice(i), ...cluster.endpoints.slice(0, i)], requestTimeoutMs: 2000 });
      clients.push(c);
      const rec: WatchRecord = { member: cluster.members[i]!.name, events: [] };
      watches.push(rec);
      return c.watch(PREFIX, { prefix: true, startRevision: startRev }, (evs: WatchEvent[]) => {
        for (const e of evs) rec.events.push({ rev: e.kv.modRevision, type: e.type, key: e.kv.keyString(), value: e.kv.valueString() });
      });
    });
    await Promise.all(watchers.map((w) => w.ready));

    // The workload.
    let opCount = 0;
    let stop = false;
    const worker = async (proc: number, wr: Rng) => {
      const c = new FlotillaClient({ endpoints: [...cluster.endpoints].sort(() => wr.next() - 0.5), requestTimeoutMs: 2000 });
      clients.push(c);
      let seq = 0;
      /** The value this process last read or wrote, per key (what its CAS expects). */
      const known = new Map<string, string | null>();
      while (!stop) {
        const base = Math.floor(opCount / OPS_PER_KEY);
        const key = `${PREFIX}${base + wr.int(0, ACTIVE_KEYS)}`;
        opCount++;
        const kind = wr.next();
        const call = nowNs();
        if (kind < 0.4) {
          try {
            const res = await c.get(key);
            const output = res.kvs[0]?.valueString() ?? null;
            known.set(key, output);
            history.push({ process: proc, op: 'read', key, ok: true, output, call, return: nowNs() });
          } catch {
            history.push({ process: proc, op: 'read', key, ok: false, call, return: nowNs() });
          }
        } else if (kind < 0.8) {
          const value = `${proc}.${seq++}`;
          try {
            await c.put(key, value);
            known.set(key, value);
            history.push({ process: proc, op: 'write', key, value, ok: true, call, return: nowNs() });
          } catch {
            history.push({ process: proc, op: 'write', key, value, ok: null, call, return: null });
          }
        } else {
          const value = `${proc}.${seq++}`;
          // Expect what this process last read or wrote on the key, or null.
          const expected = known.get(key) ?? null;
          try {
            const t = await c.txn({ compare: [expected === null ? Cmp.version(key, '=', 0) : Cmp.value(key, '=', expected)], success: [Op.put(key, value)] });
            history.push({ process: proc, op: 'cas', key, expected, value, ok: true, output: t.succeeded, call, return: nowNs() });
          } catch {
            history.push({ process: proc, op: 'cas', key, expected, value, ok: null, call, return: null });
          }
        }
        await sleep(wr.int(2, 15));
      }
    };
    const workers = Array.from({ length: o.clients ?? 4 }, (_, i) => worker(i, r.fork()));

    // Lock users: take the lock, write to a fenced store with the fencing token, release.
    const store = new FencedStoreModel();
    const lockUser = async (id: number, lr: Rng) => {
      const c = new FlotillaClient({ endpoints: [...cluster.endpoints].sort(() => lr.next() - 0.5), requestTimeoutMs: 2000 });
      clients.push(c);
      let n = 0;
      while (!stop) {
        let lock: Lock;
        try {
          lock = await withTimeout(c.lock(LOCK_NAME, { ttl: LOCK_TTL_S }), LOCK_WAIT_MS);
        } catch {
          await sleep(lr.int(50, 200));
          continue;
        }
        store.acquired(id, lock.fencingToken);
        for (let k = 0; k < 2 && !stop; k++) {
          store.write(id, lock.fencingToken, `${id}.${n++}`);
          await sleep(lr.int(20, 150));
        }
        await c.unlock(lock.key).catch(() => undefined);
      }
    };
    const lockUsers = Array.from({ length: LOCK_USERS }, (_, i) => lockUser(100 + i, r.fork()));

    // The nemesis: one fault at a time, on a seeded schedule.
    const leaderIndex = async (): Promise<number> => {
      for (let i = 0; i < cluster.members.length; i++) {
        const m = cluster.members[i]!;
        if (!m.proc || m.paused) continue;
        try {
          const s = await admin.status(m.client);
          if (s.leader !== 0n && s.leader === s.header.memberId) return i;
        } catch {
          // unreachable member
        }
      }
      return nemesisRng.int(0, cluster.members.length);
    };
    const target = async () => (nemesisRng.chance(0.5) ? await leaderIndex() : nemesisRng.int(0, cluster.members.length));
    const names = cluster.members.map((m) => m.name);
    const deadline = Date.now() + o.timeSec * 1000;
    // Kinds come round in a shuffled order each cycle, so every kind asked for is injected.
    let cycle: FaultKind[] = [];
    while (Date.now() < deadline && o.faults.length > 0) {
      await sleep(nemesisRng.int(500, 1500));
      if (cycle.length === 0) cycle = [...o.faults].sort(() => nemesisRng.next() - 0.5);
      const kind = cycle.shift()!;
      const hold = nemesisRng.int(1000, 4000);
      if (kind === 'kill') {
        const i = await target();
        note(`kill ${names[i]} (SIGKILL)`);
        cluster.kill(i);
        await sleep(hold);
        note(`restart ${names[i]} with its data`);
        await cluster.restart(i).catch((e: Error) => note(`restart ${names[i]} failed: ${e.message}`));
      } else if (kind === 'pause') {
        const i = await target();
        note(`pause ${names[i]} (SIGSTOP) for ${hold} ms`);
        cluster.pause(i);
        await sleep(hold);
        cluster.resume(i);
        note(`resume ${names[i]} (SIGCONT)`);
      } else if (kind === 'partition') {
        const shapes = n >= 5 ? ['isolate-leader', 'minority', 'one-way', 'ring'] : ['isolate-leader', 'minority', 'one-way'];
        const shape = nemesisRng.pick(shapes);
        const drops: string[][] = names.map(() => []);
        if (shape === 'isolate-leader' || shape === 'minority') {
          const li = shape === 'isolate-leader' ? await leaderIndex() : nemesisRng.int(0, n);
          const minority = new Set([li]);
          while (minority.size < Math.floor((n - 1) / 2) && shape === 'minority') minority.add(nemesisRng.int(0, n));
          for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) if (minority.has(a) !== minority.has(b)) drops[a]!.push(names[b]!);
          note(`partition ${shape}: {${[...minority].map((i) => names[i]).join(',')}} | {${names.filter((_, i) => !minority.has(i)).join(',')}} for ${hold} ms`);
        } else if (shape === 'one-way') {
          const a = await leaderIndex();
          const b = (a + 1 + nemesisRng.int(0, n - 1)) % n;
          drops[a]!.push(names[b]!);
          note(`partition one-way: ${names[a]} -> ${names[b]} dropped for ${hold} ms`);
        } else {
          for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) if (a !== b && Math.abs(a - b) !== 1 && Math.abs(a - b) !== n - 1) drops[a]!.push(names[b]!);
          note(`partition ring: each member talks only to its neighbours, for ${hold} ms`);
        }
        await Promise.all(drops.map((d, i) => cluster.setFaults(i, { dropTo: d, dropFrom: names.filter((_, j) => drops[j]!.includes(names[i]!)) }).catch(() => undefined)));
        await sleep(hold);
        await Promise.all(names.map((_, i) => cluster.setFaults(i, { dropTo: [], dropFrom: [] }).catch(() => undefined)));
        note('partition healed');
      } else if (kind === 'clock') {
        const i = await target();
        const jump = nemesisRng.chance(0.5);
        const f = jump ? { clockOffsetMs: nemesisRng.int(-2000, 2000), clockRate: 1 } : { clockOffsetMs: 0, clockRate: nemesisRng.pick([0.5, 0.75, 1.25, 1.5, 2]) };
        note(`clock on ${names[i]}: ${jump ? `jumps ${f.clockOffsetMs > 0 ? '+' : ''}${f.clockOffsetMs} ms` : `runs at ${f.clockRate}x`} for ${hold} ms`);
        await cluster.setFaults(i, f).catch(() => undefined);
        await sleep(hold);
        await cluster.setFaults(i, { clockOffsetMs: 0, clockRate: 1 }).catch(() => undefined);
        note(`clock on ${names[i]} back to normal`);
      } else if (kind === 'delay') {
        // Latency on every link, or on one member's links only (a slow host), sometimes with a bandwidth cap.
        const all = nemesisRng.chance(0.5);
        const i = all ? -1 : await target();
        const shape: LinkShape = { delayMs: nemesisRng.pick([5, 20, 50, 100]), jitterMs: nemesisRng.pick([0, 10, 40]), bandwidthBytesPerS: nemesisRng.chance(0.3) ? nemesisRng.pick([64, 256, 1024]) * 1024 : 0 };
        const what = `${shape.delayMs} ms +0..${shape.jitterMs} ms jitter${shape.bandwidthBytesPerS ? `, ${shape.bandwidthBytesPerS / 1024} KiB/s` : ''}`;
        note(`delay ${all ? 'on every link' : `on ${names[i]}'s links to its peers`}: ${what} for ${hold} ms`);
        const ms = all ? names.map((_, j) => j) : [i];
        await Promise.all(ms.map((j) => cluster.links!.shape(j, shape).catch(() => undefined)));
        await sleep(hold);
        await Promise.all(ms.map((j) => cluster.links!.shape(j, NO_SHAPE).catch(() => undefined)));
        note('links back to normal');
      } else if (kind === 'reset') {
        const i = await target();
        note(`reset ${names[i]}'s connections to its peers (TCP RST), twice over ${hold} ms`);
        await cluster.links!.reset(i).catch(() => undefined);
        await sleep(hold / 2);
        await cluster.links!.reset(i).catch(() => undefined);
        await sleep(hold / 2);
      } else {
        const i = await target();
        const delay = nemesisRng.int(50, 300);
        note(`slow disk on ${names[i]}: +${delay} ms per fsync for ${hold} ms`);
        await cluster.setFaults(i, { fsyncDelayMs: delay }).catch(() => undefined);
        await sleep(hold);
        await cluster.setFaults(i, { fsyncDelayMs: 0 }).catch(() => undefined);
        note(`disk on ${names[i]} back to normal`);
      }
    }
    if (o.faults.length === 0) await sleep(o.timeSec * 1000);
    note('faults stop; healing everything');
    await cluster.healAll();
    await sleep(1000);
    stop = true;
    await Promise.all([...workers, ...lockUsers]);
    log(`${stamp()} workload stopped: ${history.length} operations`);

    // ---- Checks
    const verdicts: Verdict[] = [];
    writeFileSync(o.historyFile, formatHistory(history));
    const lin = checkLinearizable(history);
    verdicts.push({
      name: 'linearizable',
      ok: lin.ok && lin.timedOutKeys.length === 0,
      detail: lin.ok
        ? `${lin.opsChecked} ops on ${lin.keysChecked} keys${lin.timedOutKeys.length ? `; search budget exhausted on ${lin.timedOutKeys.join(', ')}` : ''} (history: ${o.historyFile})`
        : `key ${lin.failure!.key}: ${lin.failure!.message}\n${lin.failure!.ops.map((h) => `    ${describeOp(h)}`).join('\n')}`,
    });

    // The final state: every member at the same revision, then the reference history.
    const final = await admin.get(PREFIX, { prefix: true });
    const finalRev = final.header.revision;
    const refClient = new FlotillaClient({ endpoints: cluster.endpoints, requestTimeoutMs: 5000 });
    clients.push(refClient);
    const reference: WatchRecord = { member: 'reference', events: [] };
    const ref = refClient.watch(PREFIX, { prefix: true, startRevision: startRev }, (evs) => {
      for (const e of evs) reference.events.push({ rev: e.kv.modRevision, type: e.type, key: e.kv.keyString(), value: e.kv.valueString() });
    });
    const caughtUp = async (rec: WatchRecord) => {
      for (let i = 0; i < 200 && (rec.events.at(-1)?.rev ?? 0n) < finalRev; i++) await sleep(50);
    };
    await caughtUp(reference);
    await ref.cancel();
    for (const w of watches) await caughtUp(w);
    verdicts.push(checkWatches(watches, reference));
    verdicts.push(checkAcknowledged(history, reference));
    verdicts.push(store.verdict());

    // Equal HashKV on every member at the final revision.
    const hashes: { member: string; hash: string | null }[] = [];
    for (const m of cluster.members) {
      let h: string | null = null;
      for (let i = 0; i < 100 && h === null; i++) {
        try {
          h = String((await admin.hashKv(m.client, finalRev)).hash);
        } catch {
          await sleep(100);
        }
      }
      hashes.push({ member: m.name, hash: h });
    }
    verdicts.push(checkHashes(finalRev, hashes));

    await Promise.all(watchers.map((w) => w.cancel()));
    return { ok: verdicts.every((v) => v.ok), verdicts, injected, ops: history.length };
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await cluster.stop();
  }
}
