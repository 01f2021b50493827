/**
 * The Lock and Election services, server-side, with etcd's semantics (the recipes of
 * clientv3/concurrency run on the member): an owner key `<name>/<lease id in hex>` attached to
 * the caller's lease; the owner is the key with the lowest create revision under `<name>/`;
 * a waiter waits for every key created before its own to be deleted. The lock key's create
 * revision is a fencing token: it only grows for a given name.
 */
import type * as grpc from '@grpc/grpc-js';
import { ERR } from '../kv/errors.js';
import type { KeyValue, KvEvent } from '../kv/mvcc.js';
import type { EtcdMember } from '../server/member.js';
import { big, buf, bytes, keyValue, num, type Wire } from './convert.js';
import { toStatus, unary } from './status.js';
import { callIdentity, headerOf, type AuthOptions } from './auth.js';
import type { AuthHeader } from '../kv/auth-store.js';
import { prefixEnd } from '../lib/key-range.js';

/**
 * The caller of a recipe, as etcd's lock and election servers run them with the caller's
 * credentials: READ and WRITE on the whole `<name>/` prefix are needed up front (the recipe
 * reads and writes keys there), and every write carries the caller's identity to apply.
 */
async function recipeCaller(m: EtcdMember, call: Parameters<typeof callIdentity>[1], o: AuthOptions, prefix?: Uint8Array): Promise<AuthHeader> {
  const h = headerOf(await callIdentity(m, call, o));
  if (prefix) {
    m.sm.auth.checkRange(h, prefix, prefixEnd(prefix));
    m.sm.auth.checkDeleteRange(h, prefix, prefixEnd(prefix));
  }
  return h;
}

const concat = (a: Uint8Array, b: string | Uint8Array): Uint8Array => Buffer.concat([a, typeof b === 'string' ? Buffer.from(b) : b]);
const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;

/** Resolves when `key` is deleted after revision `after` (or is already gone); rejects when `signal` aborts. */
function waitDeleted(m: EtcdMember, key: Uint8Array, after: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      off();
      if (err) reject(err);
      else resolve();
    };
    const onCommit = (events: readonly KvEvent[], rev: number) => {
      if (rev > after && events.some((e) => e.type === 'delete' && same(e.kv.key, key))) finish();
    };
    const onRestore = () => {
      if (m.sm.store.range({ key }).kvs.length === 0) finish();
    };
    const onAbort = () => finish(new Error('cancelled'));
    const off = m.sm.listen(onCommit, onRestore);
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();
  });
}

/** Waits until no key under `prefix` was created at or before `maxCreateRevision`. */
async function waitDeletes(m: EtcdMember, prefix: Uint8Array, maxCreateRevision: number, signal: AbortSignal): Promise<void> {
  for (;;) {
    await m.readBarrier();
    const store = m.sm.store;
    const r = store.range({ key: prefix, rangeEnd: prefixEnd(prefix), maxCreateRevision, sortOrder: 'descend', sortTarget: 'create', limit: 1 });
    const last = r.kvs[0];
    if (!last) return;
    await waitDeleted(m, last.key, store.revision, signal);
  }
}

/** Creates (or finds) the caller's key under prefix; returns it and its create revision. */
async function enqueue(m: EtcdMember, prefix: Uint8Array, lease: bigint, value: Uint8Array, auth: AuthHeader): Promise<{ key: Uint8Array; kv: KeyValue; revision: number; created: boolean }> {
  const key = concat(prefix, lease.toString(16));
  const r = await m.propose({
    op: 'txn',
    req: {
      compare: [{ key, result: 'equal', target: 'create', value: 0 }],
      success: [{ put: { key, value, lease } }, { range: { key } }],
      failure: [{ range: { key } }],
    },
  }, auth);
  if (r.value.op !== 'txn') throw new Error('txn answered with another command');
  const res = r.value.result;
  const got = res.responses[res.succeeded ? 1 : 0]!;
  const kv = 'range' in got ? got.range.kvs[0] : undefined;
  if (!kv) throw ERR.sessionExpired();
  return { key, kv, revision: r.revision, created: res.succeeded };
}

/** An AbortSignal that fires when the client goes away. */
function callSignal(call: { on(event: 'cancelled', f: () => void): unknown }): AbortSignal {
  const ac = new AbortController();
  call.on('cancelled', () => ac.abort());
  return ac.signal;
}

export function lockService(m: EtcdMember, o: AuthOptions = {}) {
  const h = (revision?: number): Wire => m.header(revision) as unknown as Wire;
  return {
    Lock: unary(async (req, call) => {
      const name = bytes(req.name);
      if (name.length === 0) throw ERR.emptyKey();
      const lease = big(req.lease);
      if (lease === 0n) throw ERR.leaseNotFound();
      const prefix = concat(name, '/');
      const auth = await recipeCaller(m, call, o, prefix);
      const mine = await enqueue(m, prefix, lease, new Uint8Array(0), auth);
      const signal = callSignal(call);
      try {
        await waitDeletes(m, prefix, mine.kv.createRevision - 1, signal);
      } catch (e) {
        // Gave up waiting (client gone): release the place in the queue, as etcd does.
        await m.propose({ op: 'deleteRange', req: { key: mine.key } }, auth).catch(() => undefined);
        throw e;
      }
      await m.readBarrier();
      const still = m.sm.store.range({ key: mine.key }).kvs[0];
      if (!still || still.createRevision !== mine.kv.createRevision) throw ERR.sessionExpired();
      return { header: h(), key: buf(mine.key) };
    }),
    Unlock: unary(async (req, call) => {
      const key = bytes(req.key);
      if (key.length === 0) throw ERR.recipeEmptyKey();
      const r = await m.propose({ op: 'deleteRange', req: { key } }, await recipeCaller(m, call, o));
      return { header: h(r.revision) };
    }),
  };
}

/** The `leader` field of Proclaim and Resign, as etcd's election server checks it. */
function leaderKey(leader: unknown): { name: Uint8Array; key: Uint8Array; rev: number; lease: bigint } {
  if (leader === null || typeof leader !== 'object') throw ERR.missingLeaderKey();
  const w = leader as Wire;
  const key = bytes(w.key);
  if (key.length === 0) throw ERR.recipeEmptyKey();
  return { name: bytes(w.name), key, rev: num(w.rev, 'rev'), lease: big(w.lease) };
}

export function electionService(m: EtcdMember, o: AuthOptions = {}) {
  const h = (revision?: number): Wire => m.header(revision) as unknown as Wire;
  const firstCreated = (prefix: Uint8Array): KeyValue | undefined =>
    m.sm.store.range({ key: prefix, rangeEnd: prefixEnd(prefix), sortOrder: 'ascend', sortTarget: 'create', limit: 1 }).kvs[0];

  const proclaim = async (l: ReturnType<typeof leaderKey>, value: Uint8Array, auth: AuthHeader): Promise<number> => {
    const r = await m.propose({
      op: 'txn',
      req: { compare: [{ key: l.key, result: 'equal', target: 'create', value: l.rev }], success: [{ put: { key: l.key, value, lease: l.lease } }], failure: [] },
    }, auth);
    if (r.value.op !== 'txn' || !r.value.result.succeeded) throw ERR.electionNotLeader();
    return r.revision;
  };

  return {
    Campaign: unary(async (req, call) => {
      const name = bytes(req.name);
      if (name.length === 0) throw ERR.emptyKey();
      const lease = big(req.lease);
      if (lease === 0n) throw ERR.leaseNotFound();
      const value = bytes(req.value);
      const prefix = concat(name, '/');
      const auth = await recipeCaller(m, call, o, prefix);
      const mine = await enqueue(m, prefix, lease, value, auth);
      const l = { name, key: mine.key, rev: mine.kv.createRevision, lease };
      if (!mine.created && !same(mine.kv.value, value)) await proclaim(l, value, auth);
      try {
        await waitDeletes(m, prefix, l.rev - 1, callSignal(call));
      } catch (e) {
        await m.propose({ op: 'deleteRange', req: { key: mine.key } }, auth).catch(() => undefined);
        throw e;
      }
      return { header: h(), leader: { name: buf(name), key: buf(l.key), rev: String(l.rev), lease: lease.toString() } };
    }),
    Proclaim: unary(async (req, call) => {
      const rev = await proclaim(leaderKey(req.leader), bytes(req.value), await recipeCaller(m, call, o));
      return { header: h(rev) };
    }),
    Leader: unary(async (req, call) => {
      const prefix = concat(bytes(req.name), '/');
      const ai = await callIdentity(m, call, o);
      await m.readBarrier();
      m.sm.auth.checkRange(headerOf(ai), prefix, prefixEnd(prefix));
      const kv = firstCreated(prefix);
      if (!kv) throw ERR.electionNoLeader();
      return { header: h(), kv: keyValue(kv) };
    }),
    Observe: (call: grpc.ServerWritableStream<Wire, Wire>) => {
      const prefix = concat(bytes(call.request?.name), '/');
      let last: KeyValue | undefined;
      let off = () => {};
      const check = () => {
        const kv = firstCreated(prefix);
        if (kv && (!last || !same(kv.key, last.key) || kv.modRevision !== last.modRevision)) {
          last = kv;
          call.write({ header: h(), kv: keyValue(kv) });
        }
      };
      callIdentity(m, call, o).then(async (ai) => {
        await m.readBarrier();
        m.sm.auth.checkRange(headerOf(ai), prefix, prefixEnd(prefix));
      }).then(
        () => {
          if (call.cancelled) return;
          off = m.sm.listen((events) => {
            if (events.some((e) => Buffer.compare(Buffer.from(e.kv.key.subarray(0, prefix.length)), Buffer.from(prefix)) === 0)) check();
          }, check);
          check();
        },
        (e: unknown) => call.emit('error', toStatus(e)),
      );
      call.on('cancelled', () => off());
    },
    Resign: unary(async (req, call) => {
      const l = leaderKey(req.leader);
      const r = await m.propose({
        op: 'txn',
        req: { compare: [{ key: l.key, result: 'equal', target: 'create', value: l.rev }], success: [{ deleteRange: { key: l.key } }], failure: [] },
      }, await recipeCaller(m, call, o));
      return { header: h(r.revision) };
    }),
  };
}
