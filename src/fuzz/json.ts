/** JSON-level mutations: a value somewhere replaced by a huge or odd number, a wrong type, deep nesting, or removed; unknown fields added. */
import type { Rng } from '../lib/prng.js';

/** A string starting with this is written as the raw JSON number after it (see jsonText). */
const RAW = '\u0001raw:';

/** JSON.stringify, with numbers no JS number can hold written raw (1e400, 2^53+1). */
export function jsonText(v: unknown): string {
  return (JSON.stringify(v) ?? 'null').replace(/"\\u0001raw:([-+.0-9eE]+)"/g, '$1');
}

/** Values that break JSON consumers: huge and odd numbers, wrong types, deep nesting. */
export function weirdJson(r: Rng): unknown {
  switch (r.int(0, 12)) {
    case 0:
      return r.chance(0.5) ? r.pick([1e21, 2 ** 64, -(2 ** 63) - 1025, 0.5, -1, 2 ** 53 + 2]) : `${RAW}${r.pick(['1e400', '-1e400', '9007199254740993', '18446744073709551617', '1.0e-400', '-0', '0.0000000000000000000001'])}`;
    case 1:
      return r.pick(['18446744073709551616', '-9223372036854775809', '1e999', 'NaN', '0x10', ' 1', '']);
    case 2:
      return r.pick([null, true, false]);
    case 3:
      return [];
    case 4:
      return {};
    case 5:
      return 'x'.repeat(r.int(0, 100_000));
    case 6:
      return r.pick(['!!!not base64', '====', 'AA', '\u0000\uffff']);
    case 7: {
      let v: unknown = 1;
      const depth = r.int(10, 200);
      for (let i = 0; i < depth; i++) v = r.chance(0.5) ? [v] : { a: v };
      return v;
    }
    case 8:
      return Array.from({ length: r.int(0, 2000) }, () => ({}));
    case 9:
      return JSON.parse('{"key":"eA==","range_end":"AA==","__proto__":{"x":1},"constructor":1}') as unknown;
    case 10:
      return r.int(-5, 5);
    default:
      return r.pick(['PUT', 'GREATER', 'MOD', 'VALUE', 'bogus']);
  }
}

/** Replaces, adds or removes one value somewhere in `v` (in place, returns the new root). */
export function mutateJson(r: Rng, v: unknown, depth = 0): unknown {
  if (depth > 8 || v === null || typeof v !== 'object' || r.chance(0.2)) return weirdJson(r);
  if (Array.isArray(v)) {
    if (v.length === 0 || r.chance(0.2)) v.push(weirdJson(r));
    else {
      const i = r.int(0, v.length);
      v[i] = mutateJson(r, v[i], depth + 1);
    }
    return v;
  }
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 0 || r.chance(0.15)) o[r.pick(['unknown_field', 'key', 'value', 'lease', 'ID', 'revision', 'name', 'leader', 'compare', 'success'])] = weirdJson(r);
  else if (r.chance(0.1)) delete o[r.pick(keys)];
  else {
    const k = r.pick(keys);
    o[k] = mutateJson(r, o[k], depth + 1);
  }
  return o;
}

