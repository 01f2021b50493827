/**
 * The etcd v3 gRPC services of one member: KV, Watch, Lease, Cluster, Maintenance (members'
 * own traffic is on the peer port: src/server/peer-calls.ts). Handlers take and return wire
 * objects (see convert.ts); the same handler objects serve the JSON gateway. Errors carry
 * etcd's gRPC code and exact text.
 */
import * as grpc from '@grpc/grpc-js';
import { ERR, KvError, type ErrorCode } from '../kv/errors.js';
import { etcdAlarmEntry, etcdSnapshotSteps, type EtcdSnapshotFile } from '../kv/etcd-snapshot.js';
import type { WatchOut } from '../kv/watch.js';
import { normalisePeerUrls } from '../kv/membership.js';
import { MEMBER_ERR, type EtcdMember, type MemberInfo } from '../server/member.js';
import { LEASE_TTL_MAX } from '../server/lessor.js';
import { costPut, costTxn, QUOTA_LEASE_OVERHEAD_BYTES } from '../server/quota.js';
import { Deadline, waitUntil } from '../server/wait.js';
import type { AlarmMember, AlarmType } from '../kv/commands.js';
import { big, bigU64, buf, bytes, checkPutRequest, checkTxnRequest, deleteRangeRequest, event, keyValue, num, putRequest, rangeRequest, rangeResponse, txnReadOnly, txnRequest, txnResponse, type Wire } from './convert.js';
import { GRPC_CODE_NAMES, toStatus, unary } from './status.js';
import { MIN_REVISION_METADATA } from './proto.js';
import { lockService, electionService } from './recipes.js';
import { authService, callIdentity, checkAdmin, headerOf, serialized, type AuthOptions } from './auth.js';
import { AUTH_ERR, type AuthStore } from '../kv/auth-store.js';
import { MvccStore, type TxnRequest } from '../kv/mvcc.js';
import type { BackendReadView } from '../kv/backend.js';

/** The version this server reports: the etcd API level it implements. */
export const ETCD_API_VERSION = '3.4.23';
export const CLUSTER_VERSION = '3.4.0';
/** Election timeouts without a leader before watch streams that asked (hasleader) are ended, as etcd. */
export const NO_LEADER_WATCH_CANCEL_ELECTIONS = 3;
/** Bytes per Snapshot stream message (etcd's snapshotSendBufferSize). */
export const SNAPSHOT_CHUNK_BYTES = 32 * 1024;
/** Longest a Snapshot stream lays out or makes its file's pages before letting the event loop run. */
export const SNAPSHOT_SLICE_MS = 10;

export type Handlers = Record<string, Record<string, grpc.UntypedHandleCall>>;

export interface ServiceOptions extends AuthOptions {
  /** The size in bytes of a request as received (for the request size limit). */
  readonly requestBytes: (req: Wire, method: 'Put' | 'DeleteRange' | 'Txn') => number;
}

/** The auth store's errors as etcd 3.4's maintenance server returns them, unconverted: gRPC code Unknown with auth's own text. */
const RAW_AUTH_TEXTS: Partial<Record<ErrorCode, string>> = {
  permissionDenied: 'auth: permission denied',
  userEmpty: 'auth: user name is empty',
  userNotFound: 'auth: user not found',
  invalidAuthToken: 'auth: invalid auth token',
};

function rawAuthError(e: unknown): unknown {
  const raw = e instanceof KvError ? RAW_AUTH_TEXTS[e.code] : undefined;
  return raw ? new KvError('plain', raw) : e;
}

/** The refusals a watch create reports as they are (etcd's isWatchPermitted); any other is `permission denied`. */
const WATCH_REFUSALS_AS_IS: ReadonlySet<ErrorCode> = new Set(['invalidAuthToken', 'authOldRevision', 'userEmpty']);

/** etcd's checkTxnAuth for a read-only txn served by this member: READ on every compare and range. */
function checkTxnRead(a: AuthStore, h: Parameters<AuthStore['checkRange']>[0], t: TxnRequest): void {
  for (const c of t.compare) a.checkRange(h, c.key, c.rangeEnd ?? new Uint8Array(0));
  for (const op of [...t.success, ...t.failure]) {
    if ('range' in op) a.checkRange(h, op.range.key, op.range.rangeEnd ?? new Uint8Array(0));
    else if ('txn' in op) checkTxnRead(a, h, op.txn);
  }
}

export function buildHandlers(m: EtcdMember, o: ServiceOptions): Handlers {
  const limit = (req: Wire, method: 'Put' | 'DeleteRange' | 'Txn') => {
    if (o.requestBytes(req, method) > m.config.maxRequestBytes) throw ERR.requestTooLarge();
  };
  const h = (revision?: number): Wire => m.header(revision) as unknown as Wire;
  const who = (call: Parameters<typeof callIdentity>[1]) => callIdentity(m, call, o);
  /** The identity a write carries into the log (checked at apply on every member). */
  const writer = async (call: Parameters<typeof callIdentity>[1]) => headerOf(await who(call));
  /** Root only (etcd's authMaintenanceServer and membership changes). */
  const adminOnly = <F,>(f: F, rawAuthErrors = false): F =>
    ((call: Parameters<typeof callIdentity>[1] & { emit(ev: string, e: unknown): boolean }, cb?: (e: unknown) => void) => {
      const fail = (e0: unknown): void => {
        const e = rawAuthErrors ? rawAuthError(e0) : e0;
        void (cb ? cb(toStatus(e)) : call.emit('error', toStatus(e)));
      };
      who(call).then((ai) => {
        try {
          checkAdmin(m, ai);
          (f as unknown as (c: unknown, cb?: unknown) => void)(call, cb);
        } catch (e) {
          fail(e);
        }
      }, fail);
    }) as unknown as F;

  const KV = {
    Range: unary(async (req, call) => {
      const r = rangeRequest(req);
      if (!req.serializable) await m.readBarrier();
      else {
        // A session read: wait until this member has applied what the client has already seen.
        const min = call.metadata?.get?.(MIN_REVISION_METADATA)?.[0];
        if (min !== undefined) await m.waitRevision(num(String(min), MIN_REVISION_METADATA));
      }
      // The identity after the barrier, as etcd's doSerialize (checked against the state read).
      const ai = await who(call);
      return serialized(
        m,
        ai,
        (hd) => m.sm.auth.checkRange(hd, r.key, r.rangeEnd ?? new Uint8Array(0)),
        () => rangeResponse(m.sm.store.range(r), h()),
      );
    }),
    Put: unary(async (req, call) => {
      limit(req, 'Put');
      const p = putRequest(req);
      // etcd's quotaKVServer wraps the KV server: the quota is checked first.
      await m.checkQuota(costPut(p));
      checkPutRequest(p);
      const r = await m.propose({ op: 'put', req: p }, await writer(call));
      const v = r.value as { prevKv?: Parameters<typeof keyValue>[0] };
      return { header: h(r.revision), prev_kv: v.prevKv ? keyValue(v.prevKv) : null };
    }),
    DeleteRange: unary(async (req, call) => {
      limit(req, 'DeleteRange');
      const d = deleteRangeRequest(req);
      if (d.key.length === 0) throw ERR.emptyKey();
      const r = await m.propose({ op: 'deleteRange', req: d }, await writer(call));
      const v = r.value as { deleted: number; prevKvs: Parameters<typeof keyValue>[0][] };
      return { header: h(r.revision), deleted: String(v.deleted), prev_kvs: v.prevKvs.map(keyValue) };
    }),
    Txn: unary(async (req, call) => {
      limit(req, 'Txn');
      const t = txnRequest(req);
      await m.checkQuota(costTxn(t));
      checkTxnRequest(t, m.config.maxTxnOps);
      if (txnReadOnly(t)) {
        await m.readBarrier();
        const ai = await who(call);
        return serialized(
          m,
          ai,
          (hd) => checkTxnRead(m.sm.auth, hd, t),
          () => txnResponse(m.sm.store.txn(t), h()),
        );
      }
      const r = await m.propose({ op: 'txn', req: t }, await writer(call));
      if (r.value.op !== 'txn') throw new Error('txn answered with another command');
      return txnResponse(r.value.result, h(r.revision));
    }),
    Compact: unary(async (req, call) => {
      const revision = num(req.revision, 'revision');
      // Below every compact revision there is (0 or more): what applying it would answer.
      if (revision < 0) throw ERR.compacted();
      const r = await m.propose({ op: 'compact', revision }, await writer(call));
      return { header: h(r.revision) };
    }),
  };

  const Watch = {
    Watch: (call: grpc.ServerDuplexStream<Wire, Wire>) => {
      const toWire = (out: WatchOut): Wire => ({
        header: h(out.revision),
        watch_id: String(out.watchId),
        created: out.created ?? false,
        canceled: out.canceled ?? false,
        compact_revision: String(out.compactRevision ?? 0),
        cancel_reason: out.cancelReason ?? '',
        fragment: false,
        events: (out.events ?? []).map(event),
      });
      const stream = m.hub.open({ send: (out) => call.write(toWire(out)) });
      call.on('drain', () => stream.drained());
      // `hasleader: true` (etcdctl and Go clients send it): a member cut off from the leader
      // ends the stream with `etcdserver: no leader`, so the client moves to another member
      // instead of waiting on one that hears nothing.
      const md = call.metadata?.get?.('hasleader') ?? [];
      let noLeaderSince = 0;
      const monitor: NodeJS.Timeout | undefined = md.includes('true')
        ? setInterval(() => {
            if (m.node.leader !== 0) return void (noLeaderSince = 0);
            noLeaderSince ||= Date.now();
            if (Date.now() - noLeaderSince >= NO_LEADER_WATCH_CANCEL_ELECTIONS * m.config.electionMs) {
              clearInterval(monitor);
              stream.close();
              call.emit('error', toStatus(ERR.noLeader()));
            }
          }, m.config.electionMs / 2)
        : undefined;
      monitor?.unref();
      // In order, one at a time: a create's permission check waits for the token's check.
      let chain = Promise.resolve();
      call.on('data', (req: Wire) => {
        chain = chain.then(() => onRequest(req));
      });
      const onRequest = async (req: Wire): Promise<void> => {
        try {
          if (req.request_union === 'create_request') {
            const c = req.create_request as Wire;
            const filters = Array.isArray(c.filters) ? (c.filters as string[]) : [];
            // etcd's isWatchPermitted: READ on the watched range at create, else a created and
            // cancelled response with watch id -1 and the reason.
            const refusal = await who(call).then(
              (ai) => {
                const key = bytes(c.key);
                let end = bytes(c.range_end);
                // An empty key watches everything (key "\0" with range end "\0").
                if (key.length === 0 && end.length === 0) end = new Uint8Array([0]);
                m.sm.auth.checkRange(headerOf(ai), key.length === 0 ? new Uint8Array([0]) : key, end);
                return null;
              },
              (e: unknown) => e,
            ).catch((e: unknown) => e);
            if (refusal !== null) {
              // etcd puts the gRPC error's text there: "rpc error: code = PermissionDenied desc = ...".
              const e = refusal instanceof KvError && WATCH_REFUSALS_AS_IS.has(refusal.code) ? refusal : AUTH_ERR.permissionDenied();
              const reason = `rpc error: code = ${GRPC_CODE_NAMES[toStatus(e).code]} desc = ${e.message}`;
              call.write({ header: h(), watch_id: '-1', created: true, canceled: true, compact_revision: '0', cancel_reason: reason, fragment: false, events: [] });
              return;
            }
            stream.create({
              key: bytes(c.key),
              rangeEnd: bytes(c.range_end),
              startRevision: num(c.start_revision, 'start_revision'),
              prevKv: Boolean(c.prev_kv),
              noPut: filters.includes('NOPUT'),
              noDelete: filters.includes('NODELETE'),
              progressNotify: Boolean(c.progress_notify),
              watchId: num(c.watch_id, 'watch_id'),
            });
          } else if (req.request_union === 'cancel_request') {
            stream.cancel(num((req.cancel_request as Wire).watch_id, 'watch_id'));
          } else if (req.request_union === 'progress_request') {
            stream.requestProgress();
          }
        } catch (e) {
          call.emit('error', toStatus(e));
        }
      };
      const done = () => {
        if (monitor) clearInterval(monitor);
        stream.close();
      };
      call.on('end', () => {
        done();
        call.end();
      });
      call.on('cancelled', done);
      call.on('error', done);
    },
  };

  const Lease = {
    LeaseGrant: unary(async (req) => {
      await m.checkQuota(QUOTA_LEASE_OVERHEAD_BYTES);
      let ttl = num(req.TTL, 'TTL');
      if (ttl > LEASE_TTL_MAX) throw ERR.leaseTtlTooLarge();
      ttl = Math.max(ttl, m.lessor.minTtl);
      const requested = big(req.ID);
      if (requested < 0n) throw new KvError('badRequest', 'etcdserver: lease ID must be positive');
      const id = requested === 0n ? m.newLeaseId() : requested;
      const r = await m.propose({ op: 'leaseGrant', id, ttl });
      return { header: h(r.revision), ID: id.toString(), TTL: String(ttl), error: '' };
    }),
    LeaseRevoke: unary(async (req, call) => {
      const id = big(req.ID);
      // Lease ids are positive (0 is "no lease"): no such lease can exist.
      if (id <= 0n) throw ERR.leaseNotFound();
      // Checked at apply: WRITE on every key attached to the lease.
      const r = await m.propose({ op: 'leaseRevoke', id }, await writer(call));
      return { header: h(r.revision) };
    }),
    LeaseKeepAlive: (call: grpc.ServerDuplexStream<Wire, Wire>) => {
      let chain = Promise.resolve();
      call.on('data', (req: Wire) => {
        // In order, one at a time: answers come back in the order asked.
        chain = chain.then(async () => {
          try {
            const id = big(req.ID);
            const ttl = await m.leaseRenew(id);
            call.write({ header: h(), ID: id.toString(), TTL: String(ttl) });
          } catch (e) {
            call.emit('error', toStatus(e));
          }
        });
      });
      call.on('end', () => void chain.then(() => call.end()));
    },
    LeaseTimeToLive: unary(async (req) => {
      const id = big(req.ID);
      // The granted TTL and the keys are read here: first this member catches up with every
      // write acknowledged before (a lagging follower would answer without a lease granted or
      // keys attached a moment ago); the time left is the leader's.
      await m.readBarrier();
      const remaining = await m.leaseRemaining(id);
      const l = m.sm.store.lease(id);
      if (remaining < 0 || !l) return { header: h(), ID: id.toString(), TTL: '-1', grantedTTL: '0', keys: [] };
      return { header: h(), ID: id.toString(), TTL: String(remaining), grantedTTL: String(l.ttl), keys: req.keys ? l.keys.map(buf) : [] };
    }),
    LeaseLeases: unary(async () => {
      await m.readBarrier();
      return { header: h(), leases: m.sm.store.leaseIds().map((id) => ({ ID: id.toString() })) };
    }),
  };

  const oneMember = (x: MemberInfo) => ({ ID: x.id.toString(), name: x.name, peerURLs: [...x.peerUrls], clientURLs: [...x.clientUrls], isLearner: x.isLearner });
  const memberWire = () => m.members().map(oneMember);
  // etcd's types.NewURLs: at least one, each scheme://host:port (http or https), or ErrGRPCMemberBadURLs.
  const peerUrls = (v: unknown): string[] => {
    const urls = Array.isArray(v) ? normalisePeerUrls(v) : null;
    if (!urls) throw MEMBER_ERR.badUrls();
    return urls;
  };
  const Cluster = {
    // etcd's cluster responses carry no revision.
    MemberList: unary(async () => ({ header: h(0), members: memberWire() })),
    // Membership changes need root when auth is on (etcd's checkMembershipOperationPermission).
    MemberAdd: adminOnly(unary(async (req) => {
      const r = await m.changeMembership({ op: 'add', peerUrls: peerUrls(req.peerURLs), isLearner: req.isLearner === true });
      return { header: h(0), ...(r.member ? { member: oneMember(r.member) } : {}), members: memberWire() };
    })),
    MemberRemove: adminOnly(unary(async (req) => {
      await m.changeMembership({ op: 'remove', id: bigU64(req.ID) });
      return { header: h(0), members: memberWire() };
    })),
    MemberUpdate: adminOnly(unary(async (req) => {
      await m.changeMembership({ op: 'update', id: bigU64(req.ID), peerUrls: peerUrls(req.peerURLs) });
      return { header: h(0), members: memberWire() };
    })),
    MemberPromote: adminOnly(unary(async (req) => {
      await m.changeMembership({ op: 'promote', id: bigU64(req.ID) });
      return { header: h(0), members: memberWire() };
    })),
  };

  const Maintenance = {
    Status: unary(async () => {
      const s = m.node.status();
      // As etcd: the backend's file (the size the quota compares), and the part of it in use.
      const size = m.sm.store.dbSizeBytes();
      return {
        header: h(),
        version: ETCD_API_VERSION,
        dbSize: String(size),
        leader: m.leaderId.toString(),
        raftIndex: String(s.commit),
        raftTerm: String(s.term),
        raftAppliedIndex: String(m.node.appliedIndex),
        // etcd lists each active alarm as its AlarmMember's text (etcdctl endpoint status: ERRORS).
        errors: [...(m.node.failure ? [m.node.failure.message] : []), ...m.sm.alarms().map(alarmText)],
        dbSizeInUse: String(m.sm.store.dbSizeInUseBytes()),
        isLearner: !s.confState.voters.includes(m.raftId),
      };
    }),
    Alarm: unary(async (req) => {
      const action = String(req.action ?? 'GET');
      const type = String(req.alarm ?? 'NONE');
      if (type !== 'NONE' && type !== 'NOSPACE' && type !== 'CORRUPT') throw new KvError('badRequest', `etcdserver: unknown alarm type ${type}`);
      if (action === 'GET') {
        // etcd reads the alarms through the log; a read barrier gives the same linearizable answer.
        await m.readBarrier();
        return { header: h(), alarms: m.sm.alarms(type === 'NONE' ? undefined : type).map(alarmWire) };
      }
      if (action !== 'ACTIVATE' && action !== 'DEACTIVATE') throw new KvError('badRequest', `etcdserver: unknown alarm action ${action}`);
      const memberId = bigU64(req.memberID);
      if (memberId < 0n) throw new KvError('badRequest', `etcdserver: member ID ${memberId} is out of range`);
      // NONE names no alarm: nothing to raise or clear.
      if (type === 'NONE') return { header: h(), alarms: [] };
      const r = await m.propose({ op: 'alarm', action: action === 'ACTIVATE' ? 'activate' : 'deactivate', member: { memberId, alarm: type } });
      if (r.value.op !== 'alarm') throw new Error('alarm answered with another command');
      return { header: h(r.revision), alarms: r.value.alarms.map(alarmWire) };
    }),
    // Root only when auth is on: Defragment, Hash, HashKV, Snapshot (etcd's authMaintenanceServer,
    // which answers with auth's own errors: code Unknown, `auth: permission denied`) and MoveLeader
    // (as etcd 3.5 checks it; 3.4 does not).
    Defragment: adminOnly(unary(async () => {
      await m.defragment();
      return { header: h() };
    }), true),
    Hash: adminOnly(unary(async () => ({ header: h(), hash: m.sm.store.hashKv(0).hash })), true),
    HashKV: adminOnly(unary(async (req) => {
      const r = m.sm.store.hashKv(num(req.revision, 'revision'));
      return { header: h(), hash: r.hash, compact_revision: String(r.compactRevision) };
    }), true),
    Snapshot: adminOnly((call: grpc.ServerWritableStream<Wire, Wire>) => {
      // etcd's format: the store as a bbolt file in etcd 3.4's schema, then the SHA-256 of
      // the file (etcdctl snapshot save / status / restore read it). The store is read from
      // one read view of the backend, opened now (one consistent state, whatever is applied
      // while the stream runs; a defragmentation or an installed snapshot meanwhile replaces
      // the database, and the view goes on reading the one it was opened on); the file's
      // pages are made from it as the stream drains. The view is closed however the stream
      // ends — sent, failed or cancelled — or LMDB could never reuse the pages it sees.
      // Cancelled while its identity was checked: the 'cancelled' event has gone by.
      if (call.cancelled) return;
      const header = h();
      let view: BackendReadView | null = null;
      const closeView = (): void => {
        view?.close();
        view = null;
      };
      let steps: ReturnType<typeof etcdSnapshotSteps>;
      try {
        view = m.sm.snapshotView(m.sm.appliedIndex);
        steps = etcdSnapshotSteps({ store: MvccStore.snapshotSource(view), members: m.members(), consistentIndex: m.sm.appliedIndex, alarms: m.sm.alarms().map(etcdAlarmEntry) });
      } catch (e) {
        closeView();
        call.emit('error', toStatus(e));
        return;
      }
      /** The file, once its layout (a pass over every revision, in slices too) is done. */
      let snap: EtcdSnapshotFile | null = null;
      let sent = 0;
      let pending: Uint8Array[] = [];
      let pendingBytes = 0;
      let cancelled = false;
      call.on('cancelled', () => {
        cancelled = true;
        closeView();
      });
      // Whatever else ends the call (the stream destroyed, the server shut down).
      call.on('close', closeView);
      /** Sends at most SNAPSHOT_CHUNK_BYTES of what is pending (a page with overflow can be larger). */
      const send = (): boolean => {
        const all = Buffer.concat(pending, pendingBytes);
        const blob = all.subarray(0, SNAPSHOT_CHUNK_BYTES);
        const rest = all.subarray(blob.length);
        pending = rest.length > 0 ? [rest] : [];
        pendingBytes = rest.length;
        sent += blob.length;
        return call.write({ header, remaining_bytes: String(snap!.size - sent), blob });
      };
      const pump = (): void => {
        // The layout first, then the pages as the stream drains, in slices of at most
        // SNAPSHOT_SLICE_MS, so a large snapshot never holds the event loop (and the Ready
        // loop) for long.
        const sliceEnd = performance.now() + SNAPSHOT_SLICE_MS;
        for (;;) {
          if (cancelled) return;
          if (performance.now() > sliceEnd) {
            setImmediate(pumpOrFail);
            return;
          }
          if (snap === null) {
            const step = steps.next();
            if (step.done) snap = step.value;
            continue;
          }
          const next = snap.chunks.next();
          if (next.done) break;
          pending.push(next.value);
          pendingBytes += next.value.length;
          while (pendingBytes >= SNAPSHOT_CHUNK_BYTES) {
            if (!send()) {
              call.once('drain', pumpOrFail);
              return;
            }
          }
        }
        // Every page is made: the view is no longer read.
        closeView();
        // The tail (under a chunk): written without waiting; end() flushes after it.
        while (pendingBytes > 0) send();
        call.end();
      };
      /** pump, a failure (the view unreadable) ending the call with it rather than the process. */
      const pumpOrFail = (): void => {
        try {
          pump();
        } catch (e) {
          closeView();
          cancelled = true;
          call.emit('error', toStatus(e));
        }
      };
      pumpOrFail();
    }, true),
    MoveLeader: adminOnly(unary(async (req) => {
      const target = m.raftIdOfMember(bigU64(req.targetID));
      if (target === 0) throw ERR.badLeaderTransferee();
      if (!m.node.isLeader) throw ERR.notLeader();
      if (target !== m.raftId) {
        // The next leader continues every lease from its remaining time, not its full TTL.
        await m.lessor.checkpointAll();
        try {
          m.node.transferLeadership(target);
        } catch (e) {
          throw new KvError('refused', `etcdserver: ${(e as Error).message}`);
        }
        await waitUntil(() => m.node.leader === target, { deadline: Deadline.in(m.config.requestTimeoutMs), pollMs: 20 });
      }
      return { header: h() };
    })),
  };

  return {
    'etcdserverpb.KV': KV,
    'etcdserverpb.Watch': Watch,
    'etcdserverpb.Lease': Lease,
    'etcdserverpb.Cluster': Cluster,
    'etcdserverpb.Maintenance': Maintenance,
    'etcdserverpb.Auth': authService(m, o),
    'v3lockpb.Lock': lockService(m, o),
    'v3electionpb.Election': electionService(m, o),
  } as unknown as Handlers;
}

const alarmWire = (a: AlarmMember): Wire => ({ memberID: a.memberId.toString(), alarm: a.alarm });

/** An alarm as etcd's StatusResponse.errors holds it: the AlarmMember's protobuf text form. */
export const alarmText = (a: { readonly memberId: bigint; readonly alarm: AlarmType }): string => `memberID:${a.memberId} alarm:${a.alarm} `;
