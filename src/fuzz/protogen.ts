/**
 * Valid requests from the .proto files, by reflection: every method of every service the
 * client port serves (enumerated from src/api/proto.ts's definitions, so a new method is fuzzed
 * without touching this file), a random well-formed request for it, and the shapes that stress
 * decoders: deep nesting along a recursive path of the message graph (TxnRequest -> RequestOp
 * -> TxnRequest ...) and huge repeated fields (a protobuf encoding concatenated with itself
 * merges its repeated fields).
 */
import protobuf from 'protobufjs';
import type { Rng } from '../lib/prng.js';
import { loadProtos, protoRoot } from '../api/proto.js';
import { boundaryU64, concat, repeatBytes, varint } from './mutate.js';

export interface FuzzMethod {
  /** `etcdserverpb.KV/Range`: what --exclude names. */
  readonly name: string;
  /** The gRPC path, `/etcdserverpb.KV/Range`. */
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  readonly request: protobuf.Type;
}

/** Every method of every service in the .proto files the server loads. */
export function allMethods(): FuzzMethod[] {
  const { definition } = loadProtos();
  const out: FuzzMethod[] = [];
  for (const [service, def] of Object.entries(definition)) {
    const methods = Object.entries(def as object).filter(([, m]) => typeof m === 'object' && m !== null && 'path' in m && 'requestStream' in m);
    if (methods.length === 0) continue;
    const svc = protoRoot().lookupService(service);
    for (const [name, m] of methods) {
      const pm = svc.methods[name];
      if (!pm) throw new Error(`${service}/${name}: in proto.ts's service definitions but not in protobufjs's`);
      pm.resolve();
      const md = m as { path: string; requestStream: boolean; responseStream: boolean };
      out.push({ name: `${service}/${name}`, path: md.path, requestStream: md.requestStream, responseStream: md.responseStream, request: pm.resolvedRequestType! });
    }
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : 1));
}

const ASCII = 'abcdefghijklmnopqrstuvwxyz0123456789/_-';

function keyLike(r: Rng): string {
  // A few shared prefixes so ranges, leases, locks and elections meet each other's keys.
  const base = r.pick(['fuzz/', 'fuzz/a', 'lock/', 'elect/', '', 'k']);
  let s = base;
  const n = r.int(0, 8);
  for (let i = 0; i < n; i++) s += ASCII[r.int(0, ASCII.length)];
  return s;
}

function scalar(r: Rng, f: protobuf.Field): unknown {
  const type = f.type;
  switch (type) {
    case 'bool':
      return r.chance(0.5);
    case 'string':
      return keyLike(r);
    case 'bytes':
      return Buffer.from(r.chance(0.1) ? 'x'.repeat(r.int(0, 4096)) : keyLike(r));
    case 'double':
    case 'float':
      return r.pick([0, -1, 1.5, 1e308, Number.NaN, -0]);
    case 'int32':
    case 'sint32':
    case 'sfixed32':
      return r.chance(0.7) ? r.int(-2, 100) : r.pick([-(2 ** 31), 2 ** 31 - 1, -1]);
    case 'uint32':
    case 'fixed32':
      return r.chance(0.7) ? r.int(0, 100) : r.pick([0, 2 ** 32 - 1, 2 ** 31]);
    case 'int64':
    case 'sint64':
    case 'sfixed64':
      return r.chance(0.7) ? String(r.int(-2, 100)) : BigInt.asIntN(64, boundaryU64(r)).toString();
    case 'uint64':
    case 'fixed64':
      return r.chance(0.7) ? String(r.int(0, 100)) : boundaryU64(r).toString();
    default:
      return undefined;
  }
}

/** A random well-formed plain object of type `t` (fields set at random, depth bounded). */
export function randomObject(r: Rng, t: protobuf.Type, depth = 0): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  const oneofMembers = new Set<string>();
  for (const one of t.oneofsArray) {
    for (const f of one.fieldsArray) oneofMembers.add(f.name);
    if (r.chance(0.8) && one.fieldsArray.length > 0) {
      const f = r.pick(one.fieldsArray);
      const v = fieldValue(r, f, depth);
      if (v !== undefined) o[f.name] = v;
    }
  }
  for (const f of t.fieldsArray) {
    if (oneofMembers.has(f.name) || !r.chance(0.6)) continue;
    if (f.repeated) {
      const n = depth > 3 ? 0 : r.int(0, 4);
      const arr: unknown[] = [];
      for (let i = 0; i < n; i++) {
        const v = fieldValue(r, f, depth);
        if (v !== undefined) arr.push(v);
      }
      o[f.name] = arr;
    } else {
      const v = fieldValue(r, f, depth);
      if (v !== undefined) o[f.name] = v;
    }
  }
  return o;
}

function fieldValue(r: Rng, f: protobuf.Field, depth: number): unknown {
  f.resolve();
  if (f.resolvedType instanceof protobuf.Type) return depth > 4 ? undefined : randomObject(r, f.resolvedType, depth + 1);
  if (f.resolvedType instanceof protobuf.Enum) {
    const vals = Object.values(f.resolvedType.values);
    return r.chance(0.9) ? r.pick(vals) : r.pick([-1, 99, 2 ** 31 - 1]);
  }
  return scalar(r, f);
}

/** A valid encoding of a random request of type `t`. */
export function randomRequest(r: Rng, t: protobuf.Type): Uint8Array {
  return t.encode(t.fromObject(randomObject(r, t))).finish();
}

/** A path of message fields from `t` back to `t`: [field, ...] with its field numbers, or null. */
export function recursionPath(t: protobuf.Type): protobuf.Field[] | null {
  const seen = new Set<protobuf.Type>();
  const walk = (cur: protobuf.Type, path: protobuf.Field[]): protobuf.Field[] | null => {
    for (const f of cur.fieldsArray) {
      f.resolve();
      const sub = f.resolvedType;
      if (!(sub instanceof protobuf.Type)) continue;
      if (sub === t) return [...path, f];
      if (seen.has(sub)) continue;
      seen.add(sub);
      const p = walk(sub, [...path, f]);
      if (p) return p;
    }
    return null;
  };
  return walk(t, []);
}

/**
 * `t` nested `levels` deep along its recursion path, built directly as wire bytes (headers
 * computed from the inside out, then written once: linear in the size): null when `t` is not
 * recursive.
 */
export function deepNesting(t: protobuf.Type, levels: number, leaf: Uint8Array = new Uint8Array(0)): Uint8Array | null {
  const path = recursionPath(t);
  if (!path) return null;
  const headers: Uint8Array[] = [];
  let len = leaf.length;
  for (let i = 0; i < levels; i++) {
    for (let j = path.length - 1; j >= 0; j--) {
      const h = concat([varint(BigInt((path[j]!.id << 3) | 2)), varint(BigInt(len))]);
      headers.push(h);
      len += h.length;
    }
  }
  headers.reverse();
  headers.push(leaf);
  return concat(headers);
}

/** One valid encoding repeated `times` times: its repeated fields merge into a huge list. */
export function repeated(b: Uint8Array, times: number): Uint8Array {
  return repeatBytes(b, times);
}
