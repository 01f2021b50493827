/**
 * The etcd v3 gRPC services of one member: KV, Watch, Lease, Cluster, Maintenance (members'
 * own traffic is on the peer port: src/server/peer-calls.ts). Handlers take and return wire
 * objects (see convert.ts); the same handler objects serve the JSON gateway. Errors carry
 * etcd's gRPC code and exact text.
 */
import * as grpc from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { ERR, KvError } from '../kv/errors.js';
import type { WatchOut } from '../kv/watch.js';
import type { EtcdMember } from '../server/member.js';
import { LEASE_TTL_MAX } from '../server/lessor.js';
import { big, bigU64, buf, bytes, checkPutRequest, checkTxnRequest, deleteRangeRequest, event, keyValue, num, putRequest, rangeRequest, rangeResponse, toStatus, txnReadOnly, txnRequest, txnResponse, unary, type Wire } from './convert.js';
import { MIN_REVISION_METADATA } from './proto.js';
import { lockService, electionService } from './recipes.js';

/** The version this server reports: the etcd API level it implements. */
export const ETCD_API_VERSION = '3.4.23';
export const CLUSTER_VERSION = '3.4.0';
/** Election timeouts without a leader before watch streams that asked (hasleader) are ended, as etcd. */
export const NO_LEADER_WATCH_CANCEL_ELECTIONS = 3;
/** Bytes per Snapshot stream message. */
export const SNAPSHOT_CHUNK_BYTES = 32 * 1024;

export type Handlers = Record<string, Record<string, grpc.UntypedHandleCall>>;

export interface ServiceOptions {
  /** The size in bytes of a request as received (for the request size limit). */
  readonly requestBytes: (req: Wire, method: 'Put' | 'DeleteRange' | 'Txn') => number;
}

export function buildHandlers(m: EtcdMember, o: ServiceOptions): Handlers {
  const limit = (req: Wire, method: 'Put' | 'DeleteRange' | 'Txn') => {
    if (o.requestBytes(req, method) > m.config.maxRequestBytes) throw ERR.requestTooLarge();
  };
  const h = (revision?: number): Wire => m.header(revision) as unknown as Wire;

  const KV = {
    Range: unary(async (req, call) => {
      const r = rangeRequest(req);
      if (!req.serializable) await m.readBarrier();
      else {
        // A session read: wait until this member has applied what the client has already seen.
        const min = call.metadata?.get?.(MIN_REVISION_METADATA)?.[0];
        if (min !== undefined) await m.waitRevision(num(String(min), MIN_REVISION_METADATA));
      }
      return rangeResponse(m.sm.store.range(r), h());
    }),
    Put: unary(async (req) => {
      limit(req, 'Put');
      const p = putRequest(req);
      checkPutRequest(p);
      const r = await m.propose({ op: 'put', req: p });
      const v = r.value as { prevKv?: Parameters<typeof keyValue>[0] };
      return { header: h(r.revision), prev_kv: v.prevKv ? keyValue(v.prevKv) : null };
    }),
    DeleteRange: unary(async (req) => {
      limit(req, 'DeleteRange');
      const d = deleteRangeRequest(req);
      if (d.key.length === 0) throw ERR.emptyKey();
      const r = await m.propose({ op: 'deleteRange', req: d });
      const v = r.value as { deleted: number; prevKvs: Parameters<typeof keyValue>[0][] };
      return { header: h(r.revision), deleted: String(v.deleted), prev_kvs: v.prevKvs.map(keyValue) };
    }),
    Txn: unary(async (req) => {
      limit(req, 'Txn');
      const t = txnRequest(req);
      checkTxnRequest(t, m.config.maxTxnOps);
      if (txnReadOnly(t)) {
        await m.readBarrier();
        return txnResponse(m.sm.store.txn(t), h());
      }
      const r = await m.propose({ op: 'txn', req: t });
      if (r.value.op !== 'txn') throw new Error('txn answered with another command');
      return txnResponse(r.value.result, h(r.revision));
    }),
    Compact: unary(async (req) => {
      const revision = num(req.revision, 'revision');
      // Below every compact revision there is (0 or more): what applying it would answer.
      if (revision < 0) throw ERR.compacted();
      const r = await m.propose({ op: 'compact', revision });
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
      call.on('data', (req: Wire) => {
        try {
          if (req.request_union === 'create_request') {
            const c = req.create_request as Wire;
            const filters = Array.isArray(c.filters) ? (c.filters as string[]) : [];
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
      });
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
      let ttl = num(req.TTL, 'TTL');
      if (ttl > LEASE_TTL_MAX) throw ERR.leaseTtlTooLarge();
      ttl = Math.max(ttl, m.lessor.minTtl);
      const requested = big(req.ID);
      if (requested < 0n) throw new KvError('InvalidArgument', 'etcdserver: lease ID must be positive');
      const id = requested === 0n ? m.newLeaseId() : requested;
      const r = await m.propose({ op: 'leaseGrant', id, ttl });
      return { header: h(r.revision), ID: id.toString(), TTL: String(ttl), error: '' };
    }),
    LeaseRevoke: unary(async (req) => {
      const id = big(req.ID);
      // Lease ids are positive (0 is "no lease"): no such lease can exist.
      if (id <= 0n) throw ERR.leaseNotFound();
      const r = await m.propose({ op: 'leaseRevoke', id });
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
      const remaining = await m.leaseRemaining(id);
      const l = m.sm.store.lease(id);
      if (remaining < 0 || !l) return { header: h(), ID: id.toString(), TTL: '-1', grantedTTL: '0', keys: [] };
      return { header: h(), ID: id.toString(), TTL: String(remaining), grantedTTL: String(l.ttl), keys: req.keys ? l.keys.map(buf) : [] };
    }),
    LeaseLeases: unary(async () => ({ header: h(), leases: m.sm.store.leaseIds().map((id) => ({ ID: id.toString() })) })),
  };

  const memberWire = () =>
    m.members().map((x) => ({ ID: x.id.toString(), name: x.name, peerURLs: [...x.peerUrls], clientURLs: [...x.clientUrls], isLearner: x.isLearner }));
  const unsupported = unary(async () => {
    throw new KvError('Unimplemented', 'etcdserver: membership changes are not supported yet by this server');
  });
  const Cluster = {
    // etcd's cluster responses carry no revision.
    MemberList: unary(async () => ({ header: h(0), members: memberWire() })),
    MemberAdd: unsupported,
    MemberRemove: unsupported,
    MemberUpdate: unsupported,
    MemberPromote: unsupported,
  };

  const Maintenance = {
    Status: unary(async () => {
      const s = m.node.status();
      // As etcd: the backend's file, and the part of it in use.
      const size = m.sm.store.dbSizeBytes();
      return {
        header: h(),
        version: ETCD_API_VERSION,
        dbSize: String(size),
        leader: m.leaderId.toString(),
        raftIndex: String(s.commit),
        raftTerm: String(s.term),
        raftAppliedIndex: String(m.node.appliedIndex),
        errors: m.node.failure ? [m.node.failure.message] : [],
        dbSizeInUse: String(m.sm.store.dbSizeInUseBytes()),
        isLearner: !s.confState.voters.includes(m.config.self.raftId),
      };
    }),
    Alarm: unary(async () => ({ header: h(), alarms: [] })),
    Defragment: unary(async () => {
      await m.defragment();
      return { header: h() };
    }),
    Hash: unary(async () => ({ header: h(), hash: m.sm.store.hashKv(0).hash })),
    HashKV: unary(async (req) => {
      const r = m.sm.store.hashKv(num(req.revision, 'revision'));
      return { header: h(), hash: r.hash, compact_revision: String(r.compactRevision) };
    }),
    Snapshot: (call: grpc.ServerWritableStream<Wire, Wire>) => {
      // The state machine image, padded to a multiple of 512 bytes, then the SHA-256 of all
      // that: the layout etcdctl checks (total % 512 == 32).
      const image = Buffer.from(m.sm.snapshot());
      const padded = Buffer.alloc(Math.ceil(image.length / 512) * 512 || 512);
      image.copy(padded);
      const all = Buffer.concat([padded, createHash('sha256').update(padded).digest()]);
      const header = h();
      let off = 0;
      const pump = () => {
        while (off < all.length) {
          const chunk = all.subarray(off, off + SNAPSHOT_CHUNK_BYTES);
          off += chunk.length;
          if (!call.write({ header, remaining_bytes: String(all.length - off), blob: chunk })) {
            call.once('drain', pump);
            return;
          }
        }
        call.end();
      };
      pump();
    },
    MoveLeader: unary(async (req) => {
      const target = m.raftIdOfMember(bigU64(req.targetID));
      if (target === 0) throw ERR.badLeaderTransferee();
      if (!m.node.isLeader) throw ERR.notLeader();
      if (target !== m.config.self.raftId) {
        try {
          m.node.transferLeadership(target);
        } catch (e) {
          throw new KvError('FailedPrecondition', `etcdserver: ${(e as Error).message}`);
        }
        const deadline = Date.now() + m.config.requestTimeoutMs;
        while (m.node.leader !== target) {
          if (Date.now() > deadline) throw ERR.timedOut();
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      return { header: h() };
    }),
  };

  return {
    'etcdserverpb.KV': KV,
    'etcdserverpb.Watch': Watch,
    'etcdserverpb.Lease': Lease,
    'etcdserverpb.Cluster': Cluster,
    'etcdserverpb.Maintenance': Maintenance,
    'v3lockpb.Lock': lockService(m),
    'v3electionpb.Election': electionService(m),
  } as unknown as Handlers;
}
