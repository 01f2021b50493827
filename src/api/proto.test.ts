import type * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { LOADER_OPTIONS, NOT_SENT_DETAILS, parseProtos, PROTO_FILES, serviceDefinitions } from './proto.js';
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

describe("proto.ts's service definitions", () => {
  it("are proto-loader's, from the text and from the pre-parsed JSON: every service and method, its path, streams, alias and encoding both ways", () => {
    const reference = protoLoader.loadSync([...PROTO_FILES], LOADER_OPTIONS);
    const services = Object.entries(reference).filter(([, d]) => !('format' in d)) as [string, grpc.ServiceDefinition][];
    expect(services.length).toBe(8);
    const txn = { compare: [{ result: 'GREATER', target: 'MOD', key: Buffer.from('k'), mod_revision: '9007199254740993' }], success: [{ request_put: { key: Buffer.from('k'), value: Buffer.from([0, 255]), lease: '7' } }] };
    const range = { header: { cluster_id: '18446744073709551615', member_id: '1', revision: '9007199254740993', raft_term: '2' }, kvs: [{ key: Buffer.from('k'), value: Buffer.from('v'), create_revision: '3', mod_revision: '4', version: '2', lease: '0' }], more: true, count: '1' };
    for (const ours of [serviceDefinitions(parseProtos()), serviceDefinitions(protobuf.Root.fromJSON(JSON.parse(JSON.stringify(protosJson())) as protobuf.INamespace))]) {
      expect(Object.keys(ours).sort()).toEqual(services.map(([n]) => n).sort());
      let methods = 0;
      for (const [name, def] of services) {
        expect(Object.keys(ours[name]!).sort(), name).toEqual(Object.keys(def).sort());
        for (const [method, m] of Object.entries(def)) {
          methods++;
          const o = ours[name]![method]!;
          expect({ path: o.path, requestStream: o.requestStream, responseStream: o.responseStream, originalName: o.originalName }, `${name}.${method}`).toEqual({
            path: m.path,
            requestStream: m.requestStream,
            responseStream: m.responseStream,
            originalName: m.originalName,
          });
          // Every message type, all defaults filled in (enums as names, 64-bit integers as strings).
          for (const [ser, de] of [['requestSerialize', 'requestDeserialize'], ['responseSerialize', 'responseDeserialize']] as const) {
            const bytes = m[ser]({});
            expect(Buffer.from(o[ser]({})), `${name}.${method} ${ser}`).toEqual(Buffer.from(bytes));
            expect(o[de](bytes), `${name}.${method} ${de}`).toEqual(m[de](bytes));
          }
        }
      }
      expect(methods).toBeGreaterThan(40);
      const kv = reference['etcdserverpb.KV'] as grpc.ServiceDefinition;
      const ourKv = ours['etcdserverpb.KV']!;
      for (const [method, field, value] of [['Txn', 'request', txn], ['Range', 'response', range]] as const) {
        const bytes = kv[method]![`${field}Serialize`](value);
        expect(Buffer.from(ourKv[method]![`${field}Serialize`](value))).toEqual(Buffer.from(bytes));
        expect(ourKv[method]![`${field}Deserialize`](bytes)).toEqual(kv[method]![`${field}Deserialize`](bytes));
      }
      expect(() => ourKv.Range!.requestSerialize([])).toThrow(/expected object with RangeRequest structure/);
    }
  });
});

