/**
 * Test-only fault injection, enabled by `flotilla serve --unsafe-fault-injection` and never
 * otherwise: per-link message drops (partitions of any shape, one-way included), slow
 * fsync, a failing disk (writes and/or fsyncs fail with ENOSPC or EIO), and a member clock
 * that is offset (jumps) or runs fast or slow (the clock Raft's ticks and the lessor read). The fault harness (src/faults) drives it over `POST /debug/faults` on the client port.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { realClock, type Clock, type Transport } from '../node/node.js';
import type { Message } from '../raft/messages.js';
import type { MemberChannel } from '../transport/tcp.js';
import { realFs, type FileSystem } from '../storage/fs.js';
import type { InitialMember } from './config.js';

/** The largest fsync delay accepted. */
export const FSYNC_DELAY_MS_MAX = 10_000;

/** The largest clock offset accepted, either way (ms). */
export const CLOCK_OFFSET_MS_MAX = 3_600_000;
/** The slowest and fastest clock rates accepted (1: real time). */
export const CLOCK_RATE_MIN = 0.25;
export const CLOCK_RATE_MAX = 4;

/** The disk errors that can be injected: a full disk, a failing device. */
export const DISK_ERRORS = ['ENOSPC', 'EIO'] as const;
export type DiskErrorCode = (typeof DISK_ERRORS)[number];
/** Which operations an injected disk error hits: writes (write, truncate, create, rename), fsyncs, or both. */
export const DISK_ERROR_OPS = ['write', 'fsync', 'all'] as const;
export type DiskErrorOps = (typeof DISK_ERROR_OPS)[number];

export interface FaultState {
  /** Raft messages to these members are dropped. */
  dropTo: Set<number>;
  /** Raft messages from these members are dropped. */
  dropFrom: Set<number>;
  /** Added to every fdatasync and directory sync. */
  fsyncDelayMs: number;
  /** When set, the operations `diskErrorOn` names fail with this error, as a full or broken disk's would. */
  diskError: DiskErrorCode | null;
  diskErrorOn: DiskErrorOps;
  /** Added to the member's clock: changing it makes the clock jump by the difference. */
  clockOffsetMs: number;
  /** How fast the member's clock runs against real time, from now on (timers scale with it). */
  clockRate: number;
}

export function noFaults(): FaultState {
  return { dropTo: new Set(), dropFrom: new Set(), fsyncDelayMs: 0, diskError: null, diskErrorOn: 'all', clockOffsetMs: 0, clockRate: 1 };
}

/**
 * The member's clock under the fault state: `now()` runs at `clockRate` times real time (a
 * change of rate takes effect from that moment, without a jump) plus `clockOffsetMs`; a timer
 * of `ms` on this clock fires after `ms / clockRate` real ms (the rate when it is set).
 */
export function faultyClock(faults: FaultState, base: Clock = realClock): Clock {
  let anchorReal = base.now();
  let anchorSkewed = anchorReal;
  let rate = 1;
  const skewed = (): number => {
    const real = base.now();
    if (faults.clockRate !== rate) {
      anchorSkewed += (real - anchorReal) * rate;
      anchorReal = real;
      rate = faults.clockRate;
    }
    return anchorSkewed + (real - anchorReal) * rate;
  };
  return {
    now: () => skewed() + faults.clockOffsetMs,
    setTimer: (ms, fn) => (skewed(), base.setTimer(ms / rate, fn)),
  };
}

/**
 * A transport that drops what the fault state says, in both directions: Raft messages and the
 * member channel alike (a partitioned follower can no more forward a write than replicate).
 * A member frame dropped on the way out reports itself sent: the sender cannot know.
 */
export function faultyTransport(inner: Transport & MemberChannel, faults: FaultState): Transport & MemberChannel {
  return {
    send: (messages: readonly Message[]) => inner.send(faults.dropTo.size === 0 ? messages : messages.filter((m) => !faults.dropTo.has(m.to))),
    listen: (receive: (m: Message) => void) => inner.listen((m) => (faults.dropFrom.has(m.from) ? undefined : receive(m))),
    sendMember: (to, body) => (faults.dropTo.has(to) ? true : inner.sendMember(to, body)),
    onMember: (receive) => inner.onMember((from, body) => (faults.dropFrom.has(from) ? undefined : receive(from, body))),
    close: () => inner.close(),
  };
}

/** An error shaped as Node's fs reports a failed system call. */
function systemError(code: DiskErrorCode, syscall: string, path: string): Error {
  const text = code === 'ENOSPC' ? 'no space left on device' : 'i/o error';
  return Object.assign(new Error(`${code}: ${text}, ${syscall} '${path}' (injected)`), { code, errno: code === 'ENOSPC' ? -28 : -5, syscall, path });
}

/**
 * The real file system under the fault state: syncs slowed by `fsyncDelayMs`, and, while
 * `diskError` is set, writes (write, truncate, creating a file, rename) and/or syncs (fdatasync,
 * directory sync) failing with it. Reads, removals and directory creation still work, as on a
 * full disk. A file opened before the fault is hit by it too.
 */
export function faultyFs(faults: FaultState, base: FileSystem = realFs): FileSystem {
  const delay = () => (faults.fsyncDelayMs > 0 ? new Promise<void>((r) => setTimeout(r, faults.fsyncDelayMs)) : Promise.resolve());
  const check = (kind: 'write' | 'fsync', syscall: string, path: string) => {
    const code = faults.diskError;
    if (code !== null && (faults.diskErrorOn === 'all' || faults.diskErrorOn === kind)) throw systemError(code, syscall, path);
  };
  return {
    // Each method by name: `base` may be a class instance (MemFs), whose methods a spread would miss.
    mkdirp: (dir) => base.mkdirp(dir),
    readdir: (dir) => base.readdir(dir),
    readFile: (path) => base.readFile(path),
    remove: (path) => base.remove(path),
    open: async (path, create) => {
      if (create) check('write', 'open', path);
      const f = await base.open(path, create);
      return {
        write: async (data, position) => (check('write', 'write', path), f.write(data, position)),
        truncate: async (n) => (check('write', 'ftruncate', path), f.truncate(n)),
        datasync: async () => (await delay(), check('fsync', 'fdatasync', path), f.datasync()),
        close: () => f.close(),
      };
    },
    rename: async (from, to) => (check('write', 'rename', from), base.rename(from, to)),
    syncDir: async (dir) => (await delay(), check('fsync', 'fsync', dir), base.syncDir(dir)),
  };
}

/**
 * `GET|POST /debug/faults` with `{dropTo?: names[], dropFrom?: names[], fsyncDelayMs?: n,
 * diskError?: 'ENOSPC' | 'EIO' | null, diskErrorOn?: 'write' | 'fsync' | 'all',
 * clockOffsetMs?: n, clockRate?: x}`. Returns true
 * if it handled the request.
 */
export function faultRoute(
  faults: FaultState,
  membersOrNow: readonly InitialMember[] | (() => readonly Pick<InitialMember, 'name' | 'raftId'>[]),
): (req: IncomingMessage, res: ServerResponse) => boolean {
  // The members by name as they are at each request (membership changes at runtime).
  const members = () => (typeof membersOrNow === 'function' ? membersOrNow() : membersOrNow);
  let byName = new Map<string, number>();
  let nameOf = new Map<number, string>();
  const refresh = () => {
    byName = new Map(members().map((m) => [m.name, m.raftId]));
    nameOf = new Map(members().map((m) => [m.raftId, m.name]));
  };
  const show = () => JSON.stringify({ dropTo: [...faults.dropTo].map((i) => nameOf.get(i)), dropFrom: [...faults.dropFrom].map((i) => nameOf.get(i)), fsyncDelayMs: faults.fsyncDelayMs, diskError: faults.diskError, diskErrorOn: faults.diskErrorOn, clockOffsetMs: faults.clockOffsetMs, clockRate: faults.clockRate });
  return (req, res) => {
    if ((req.url ?? '').split('?')[0] !== '/debug/faults') return false;
    refresh();
    const reply = (code: number, body: string) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(body);
    };
    if (req.method === 'GET') {
      reply(200, show());
      return true;
    }
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      try {
        const o = JSON.parse(body || '{}') as { dropTo?: unknown; dropFrom?: unknown; fsyncDelayMs?: unknown; diskError?: unknown; diskErrorOn?: unknown; clockOffsetMs?: unknown; clockRate?: unknown };
        const ids = (v: unknown, field: string): Set<number> => {
          if (!Array.isArray(v)) throw new Error(`${field} must be a list of member names`);
          return new Set(
            v.map((n) => {
              const id = byName.get(String(n));
              if (id === undefined) throw new Error(`${field}: no member named ${JSON.stringify(n)}`);
              return id;
            }),
          );
        };
        const next = { ...faults };
        if (o.dropTo !== undefined) next.dropTo = ids(o.dropTo, 'dropTo');
        if (o.dropFrom !== undefined) next.dropFrom = ids(o.dropFrom, 'dropFrom');
        if (o.fsyncDelayMs !== undefined) {
          const d = Number(o.fsyncDelayMs);
          if (!Number.isInteger(d) || d < 0 || d > FSYNC_DELAY_MS_MAX) throw new Error(`fsyncDelayMs must be an integer in [0, ${FSYNC_DELAY_MS_MAX}]`);
          next.fsyncDelayMs = d;
        }
        if (o.diskError !== undefined) {
          if (o.diskError !== null && !DISK_ERRORS.includes(o.diskError as DiskErrorCode)) throw new Error(`diskError must be one of ${DISK_ERRORS.join(', ')} or null`);
          next.diskError = o.diskError as DiskErrorCode | null;
        }
        if (o.diskErrorOn !== undefined) {
          if (!DISK_ERROR_OPS.includes(o.diskErrorOn as DiskErrorOps)) throw new Error(`diskErrorOn must be one of ${DISK_ERROR_OPS.join(', ')}`);
          next.diskErrorOn = o.diskErrorOn as DiskErrorOps;
        }
        if (o.clockOffsetMs !== undefined) {
          const d = o.clockOffsetMs;
          if (typeof d !== 'number' || !Number.isFinite(d) || Math.abs(d) > CLOCK_OFFSET_MS_MAX) throw new Error(`clockOffsetMs must be a number in [-${CLOCK_OFFSET_MS_MAX}, ${CLOCK_OFFSET_MS_MAX}]`);
          next.clockOffsetMs = d;
        }
        if (o.clockRate !== undefined) {
          const x = o.clockRate;
          if (typeof x !== 'number' || !Number.isFinite(x) || x < CLOCK_RATE_MIN || x > CLOCK_RATE_MAX) throw new Error(`clockRate must be a number in [${CLOCK_RATE_MIN}, ${CLOCK_RATE_MAX}]`);
          next.clockRate = x;
        }
        Object.assign(faults, next);
        reply(200, show());
      } catch (e) {
        reply(400, JSON.stringify({ error: (e as Error).message }));
      }
    });
    return true;
  };
}
