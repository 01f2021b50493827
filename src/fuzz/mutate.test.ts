import { describe, expect, it } from 'vitest';
import { rng } from '../lib/prng.js';
import { inputSeed, mutate, protoLengthFields, repeatBytes, varint } from './mutate.js';
import { protoRoot } from '../api/proto.js';
import { allMethods, deepNesting, randomRequest, repeated } from './protogen.js';

describe('fuzz inputs', () => {
  it('are a function of (seed, surface, index) alone', () => {
    const methods = allMethods();
    const make = (seed: number, i: number) => {
      const r = rng(inputSeed(seed, 1, i));
      const m = r.pick(methods);
      return Buffer.from(mutate(r, randomRequest(r, m.request))).toString('hex');
    };
    const a = Array.from({ length: 50 }, (_, i) => make(3, i));
    expect(Array.from({ length: 50 }, (_, i) => make(3, i))).toEqual(a);
    expect(Array.from({ length: 50 }, (_, i) => make(4, i))).not.toEqual(a);
    expect(new Set(a).size).toBeGreaterThan(30);
  });

  it('cover every method of every service in the .proto files', () => {
    const names = allMethods().map((m) => m.name);
    for (const n of ['etcdserverpb.KV/Txn', 'etcdserverpb.Watch/Watch', 'etcdserverpb.Lease/LeaseKeepAlive', 'etcdserverpb.Maintenance/Snapshot', 'v3lockpb.Lock/Lock', 'v3electionpb.Election/Observe']) expect(names).toContain(n);
    expect(names.length).toBeGreaterThanOrEqual(30);
  });

  it('nest a recursive message as deep as asked, and merge repeated fields', () => {
    const t = protoRoot().lookupType('etcdserverpb.TxnRequest');
    let o = t.toObject(t.decode(deepNesting(t, 40)!)) as { success?: { request_txn?: unknown }[] };
    let depth = 0;
    while (o.success?.[0]?.request_txn) {
      o = o.success[0].request_txn as typeof o;
      depth++;
    }
    expect(depth).toBe(40);
    expect(deepNesting(protoRoot().lookupType('etcdserverpb.PutRequest'), 3)).toBeNull();
    const one = t.encode(t.fromObject({ success: [{ request_put: { key: Buffer.from('k') } }] })).finish();
    expect((t.decode(repeated(one, 1000)) as unknown as { success: unknown[] }).success).toHaveLength(1000);
  });

  it('find protobuf length prefixes (for length-field corruption)', () => {
    const t = protoRoot().lookupType('etcdserverpb.PutRequest');
    const b = t.encode(t.fromObject({ key: Buffer.from('abc'), value: Buffer.alloc(200) })).finish();
    const f = protoLengthFields(b);
    expect(f.map((x) => b[x.start])).toEqual([3, 200 & 0x7f | 0x80]);
    expect(varint(300n)).toEqual(Uint8Array.from([0xac, 0x02]));
    expect(repeatBytes(Uint8Array.from([1, 2]), 5)).toEqual(Uint8Array.from([1, 2, 1, 2, 1, 2, 1, 2, 1, 2]));
  });
});
