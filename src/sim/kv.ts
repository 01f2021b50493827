/**
 * The replicated state machine the simulator runs: a map of registers with write, delete and
 * compare-and-swap. Deterministic: its state depends only on the commands applied, in order.
 * It also remembers which operations it applied, so "no acknowledged write lost" can be
 * checked against every member at the end of a run.
 */
export type KvCommand =
  | { readonly id: string; readonly op: 'write'; readonly key: string; readonly value: string }
  | { readonly id: string; readonly op: 'delete'; readonly key: string }
  | { readonly id: string; readonly op: 'cas'; readonly key: string; readonly expected: string | null; readonly value: string };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Commands by their encoding: an entry reaches every member as the same array (the simulated
 * network passes messages by reference), so a command is decoded from the map, not parsed once
 * per member that applies it. Entry data is never written after it is made, nothing changes a
 * command, and a command's fields are strings and null, which JSON gives back as they were.
 */
const decoded = new WeakMap<Uint8Array, KvCommand>();

export function encodeCommand(c: KvCommand): Uint8Array {
  const b = encoder.encode(JSON.stringify(c));
  decoded.set(b, c);
  return b;
}

export function decodeCommand(b: Uint8Array): KvCommand {
  let c = decoded.get(b);
  if (c === undefined) {
    c = JSON.parse(decoder.decode(b)) as KvCommand;
    decoded.set(b, c);
  }
  return c;
}

export class SimKv {
  private data = new Map<string, string>();
  /** Ids of every operation applied, in order. */
  private applied: string[] = [];
  private appliedSet = new Set<string>();
  appliedIndex = 0;

  /** Applies a command; returns the CAS outcome (true for write and delete). */
  apply(index: number, c: KvCommand): boolean {
    this.appliedIndex = index;
    this.applied.push(c.id);
    this.appliedSet.add(c.id);
    switch (c.op) {
      case 'write':
        this.data.set(c.key, c.value);
        return true;
      case 'delete':
        this.data.delete(c.key);
        return true;
      case 'cas': {
        const cur = this.data.get(c.key) ?? null;
        if (cur !== c.expected) return false;
        this.data.set(c.key, c.value);
        return true;
      }
    }
  }

  get(key: string): string | null {
    return this.data.get(key) ?? null;
  }

  hasApplied(opId: string): boolean {
    return this.appliedSet.has(opId);
  }

  snapshot(): Uint8Array {
    return encoder.encode(JSON.stringify({ index: this.appliedIndex, data: [...this.data], applied: this.applied }));
  }

  static restore(b: Uint8Array, index: number): SimKv {
    const sm = new SimKv();
    sm.appliedIndex = index;
    if (b.length === 0) return sm;
    const o = JSON.parse(decoder.decode(b)) as { index: number; data: [string, string][]; applied: string[] };
    if (o.index !== index) throw new Error(`snapshot data is at index ${o.index} but its metadata says ${index}`);
    sm.data = new Map(o.data);
    sm.applied = o.applied;
    sm.appliedSet = new Set(o.applied);
    return sm;
  }

  /** A digest of the whole state, equal on members that applied the same commands. */
  digest(withIndex = true): string {
    const keys = [...this.data.keys()].sort();
    return JSON.stringify([withIndex ? this.appliedIndex : -1, keys.map((k) => [k, this.data.get(k)]), this.applied.length]);
  }
}
