/**
 * The client history format (one JSON object per line), shared by the simulator, the real
 * cluster tests and anyone who wants to check Flotilla from outside.
 *
 * Semantics, per key, of a register that starts as null:
 *   write  key value        -> sets value
 *   delete key              -> sets null
 *   read   key              -> output: the value read (string | null)
 *   cas    key expected value -> if current === expected: sets value, output true; else output false
 *
 * ok: true  = the op completed with `output`.
 *     false = the op definitely did not take effect (refused, not leader...): it is ignored.
 *     null  = outcome unknown (timeout, crash): it may take effect at any time after `call`,
 *             or never; `return` is then null.
 * call/return are nanoseconds (real or virtual) on one clock.
 */
export type OpKind = 'read' | 'write' | 'cas' | 'delete';

export interface HistoryOp {
  readonly process: number;
  readonly op: OpKind;
  readonly key: string;
  /** For write and cas: the value written. */
  readonly value?: string | null;
  /** For cas: the value expected. */
  readonly expected?: string | null;
  readonly ok: boolean | null;
  /** For read: the value read. For cas: whether the swap happened. */
  readonly output?: string | boolean | null;
  readonly call: number;
  readonly return: number | null;
}

export function parseHistory(text: string): HistoryOp[] {
  const ops: HistoryOp[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new Error(`history line ${i + 1}: not JSON: ${(e as Error).message}`);
    }
    ops.push(validateOp(v, i + 1));
  }
  return ops;
}

function validateOp(v: unknown, line: number): HistoryOp {
  const bad = (why: string): never => {
    throw new Error(`history line ${line}: ${why}`);
  };
  if (typeof v !== 'object' || v === null) bad('not an object');
  const o = v as Record<string, unknown>;
  if (typeof o.process !== 'number') bad('process must be a number');
  if (!['read', 'write', 'cas', 'delete'].includes(o.op as string)) bad(`op must be read|write|cas|delete, got ${JSON.stringify(o.op)}`);
  if (typeof o.key !== 'string') bad('key must be a string');
  if (!(o.ok === true || o.ok === false || o.ok === null || o.ok === undefined)) bad('ok must be true, false or null');
  if (typeof o.call !== 'number') bad('call must be a number');
  if (!(o.return === null || o.return === undefined || typeof o.return === 'number')) bad('return must be a number or null');
  return {
    process: o.process as number,
    op: o.op as OpKind,
    key: o.key as string,
    value: (o.value as string | null | undefined) ?? null,
    expected: (o.expected as string | null | undefined) ?? null,
    ok: (o.ok as boolean | null | undefined) ?? null,
    output: o.output as string | boolean | null | undefined,
    call: o.call as number,
    return: o.ok === null || o.ok === undefined ? null : ((o.return as number | null | undefined) ?? null),
  };
}

export function formatHistory(ops: readonly HistoryOp[]): string {
  return ops.map((op) => JSON.stringify(op)).join('\n') + (ops.length ? '\n' : '');
}
