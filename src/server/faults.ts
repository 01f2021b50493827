/**
 * Test-only fault injection, enabled by `flotilla serve --unsafe-fault-injection` and never
 * otherwise: per-link message drops (partitions of any shape, one-way included) and slow
 * fsync. The fault harness (src/faults) drives it over `POST /debug/faults` on the client port.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Transport } from '../node/node.js';
import type { Message } from '../raft/messages.js';
import type { MemberChannel } from '../transport/tcp.js';
import { realFs, type FileSystem } from '../storage/fs.js';
import type { InitialMember } from './config.js';

/** The largest fsync delay accepted. */
export const FSYNC_DELAY_MS_MAX = 10_000;

export interface FaultState {
  /** Raft messages to these members are dropped. */
  dropTo: Set<number>;
  /** Raft messages from these members are dropped. */
  dropFrom: Set<number>;
  /** Added to every fdatasync and directory sync. */
  fsyncDelayMs: number;
}

export function noFaults(): FaultState {
  return { dropTo: new Set(), dropFrom: new Set(), fsyncDelayMs: 0 };
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

/** The real file system with syncs slowed down by the fault state's delay. */
export function slowSyncFs(faults: FaultState, base: FileSystem = realFs): FileSystem {
  const delay = () => (faults.fsyncDelayMs > 0 ? new Promise<void>((r) => setTimeout(r, faults.fsyncDelayMs)) : Promise.resolve());
  return {
    ...base,
    open: async (path, create) => {
      const f = await base.open(path, create);
      return { ...f, datasync: async () => (await delay(), f.datasync()) };
    },
    syncDir: async (dir) => (await delay(), base.syncDir(dir)),
  };
}

/** `GET|POST /debug/faults` with `{dropTo?: names[], dropFrom?: names[], fsyncDelayMs?: n}`. Returns true if it handled the request. */
export function faultRoute(faults: FaultState, members: readonly InitialMember[]): (req: IncomingMessage, res: ServerResponse) => boolean {
  const byName = new Map(members.map((m) => [m.name, m.raftId]));
  const nameOf = new Map(members.map((m) => [m.raftId, m.name]));
  const show = () => JSON.stringify({ dropTo: [...faults.dropTo].map((i) => nameOf.get(i)), dropFrom: [...faults.dropFrom].map((i) => nameOf.get(i)), fsyncDelayMs: faults.fsyncDelayMs });
  return (req, res) => {
    if ((req.url ?? '').split('?')[0] !== '/debug/faults') return false;
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
        const o = JSON.parse(body || '{}') as { dropTo?: unknown; dropFrom?: unknown; fsyncDelayMs?: unknown };
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
        Object.assign(faults, next);
        reply(200, show());
      } catch (e) {
        reply(400, JSON.stringify({ error: (e as Error).message }));
      }
    });
    return true;
  };
}
