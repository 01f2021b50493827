import type * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { describe, expect, it } from 'vitest';
import { LOADER_OPTIONS, NOT_SENT_DETAILS, PROTO_FILES } from './proto.js';
import { protosJson } from './proto-json.js';

describe('NOT_SENT_DETAILS', () => {
  it('matches only failures where the request never left, never a dropped connection', () => {
    for (const d of ['No connection established. Last error: connect ECONNREFUSED 127.0.0.1:2379', 'failed to connect to all addresses', 'Name resolution failed for target dns:x']) expect(NOT_SENT_DETAILS.test(d), d).toBe(true);
    // A write forwarded to a leader that died after applying it fails with "Connection dropped";
    // retrying it applied it twice (found by the fault harness: a CAS reported false whose
    // value others then read).
    for (const d of ['Connection dropped', 'Deadline exceeded', 'Call cancelled', 'etcdserver: request timed out']) expect(NOT_SENT_DETAILS.test(d), d).toBe(false);
  });
});

describe('the pre-parsed .proto files (dist/api/protos.json)', () => {
  it('give the same package definition as parsing the text: every service method and message type', () => {
    const parsed = protoLoader.loadSync([...PROTO_FILES], LOADER_OPTIONS);
    const fromJson = protoLoader.fromJSON(JSON.parse(JSON.stringify(protosJson())) as Parameters<typeof protoLoader.fromJSON>[0], LOADER_OPTIONS);
    expect(Object.keys(fromJson).sort()).toEqual(Object.keys(parsed).sort());
    let methods = 0;
    let messages = 0;
    for (const [name, def] of Object.entries(parsed)) {
      const other = fromJson[name]!;
      if ('format' in def) {
        // A message or enum type: its descriptor, field by field.
        messages++;
        expect((other as typeof def).type, name).toEqual(def.type);
        continue;
      }
      for (const [method, m] of Object.entries(def as grpc.ServiceDefinition)) {
        methods++;
        const o = (other as grpc.ServiceDefinition)[method]!;
        expect({ path: o.path, requestStream: o.requestStream, responseStream: o.responseStream, originalName: o.originalName }, `${name}.${method}`).toEqual({
          path: m.path,
          requestStream: m.requestStream,
          responseStream: m.responseStream,
          originalName: m.originalName,
        });
      }
    }
    expect(methods).toBeGreaterThan(40);
    expect(messages).toBeGreaterThan(60);
    // The encoding: a request with 64-bit, bytes, enum and nested fields round-trips the same way.
    const put = (d: protoLoader.PackageDefinition) => (d['etcdserverpb.KV'] as grpc.ServiceDefinition).Txn!;
    const txn = { compare: [{ result: 'GREATER', target: 'MOD', key: Buffer.from('k'), mod_revision: '9007199254740993' }], success: [{ request_put: { key: Buffer.from('k'), value: Buffer.from([0, 255]), lease: '7' } }] };
    const bytes = put(parsed).requestSerialize(txn);
    expect(Buffer.from(put(fromJson).requestSerialize(txn))).toEqual(Buffer.from(bytes));
    expect(put(fromJson).requestDeserialize(bytes)).toEqual(put(parsed).requestDeserialize(bytes));
  });
});
