import { describe, expect, it } from 'vitest';
import { logWith, OperatorLog } from './log.js';

const capture = (o: Partial<ConstructorParameters<typeof OperatorLog>[0]> = {}) => {
  const lines: string[] = [];
  const log = new OperatorLog({ member: 'm1', write: (l) => lines.push(l), now: () => Date.UTC(2026, 0, 2, 3, 4, 5, 6), ...o });
  return { log, lines };
};

describe('OperatorLog', () => {
  it('json: one object per line with ts, level, member, term, msg, then the fields; hostile text stays one valid line', () => {
    const { log, lines } = capture({ format: 'json' });
    log.term = () => 7;
    const msg = 'quote " backslash \\ newline \n tab \t nul \u0000 line-sep \u2028 end';
    log.warn(msg, { took: '1.5s', key: 'a"b\nc', id: 12345678901234567890n, msg: 'clash' });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.endsWith('\n')).toBe(true);
    expect(lines[0]!.slice(0, -1)).not.toMatch(/\n/);
    const o = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(Object.keys(o)).toEqual(['ts', 'level', 'member', 'term', 'msg', 'took', 'key', 'id', 'field_msg']);
    expect(o).toEqual({ ts: '2026-01-02T03:04:05.006Z', level: 'warn', member: 'm1', term: 7, msg, took: '1.5s', key: 'a"b\nc', id: '12345678901234567890', field_msg: 'clash' });
  });

  it('text: time, level, [member], message, key=value with odd values quoted', () => {
    const { log, lines } = capture();
    log.info('hello', { a: 1, b: 'two words', c: 'plain' });
    expect(lines).toEqual(['2026-01-02T03:04:05.006Z info [m1] hello a=1 b="two words" c=plain\n']);
  });

  it('text: a message with newlines or control characters (text from outside) stays one line', () => {
    const { log, lines } = capture();
    log.warn('cluster id "x\n2026-01-01T00:00:00.000Z error [m9] forged\u0007"');
    expect(lines).toEqual(['2026-01-02T03:04:05.006Z warn [m1] cluster id "x\\u000a2026-01-01T00:00:00.000Z error [m9] forged\\u0007"\n']);
  });

  it('--log-level: lines below the level are dropped', () => {
    for (const [level, want] of [['debug', 4], ['info', 3], ['warn', 2], ['error', 1]] as const) {
      const { log, lines } = capture({ level });
      log.debug('d');
      log.info('i');
      log.warn('w');
      log.error('e');
      expect(lines, level).toHaveLength(want);
    }
  });

  it('a term that cannot be read (a failed member) logs term 0, not a throw', () => {
    const { log, lines } = capture({ format: 'json' });
    log.term = () => {
      throw new Error('stopped');
    };
    log.error('last words');
    expect(JSON.parse(lines[0]!)).toMatchObject({ term: 0, level: 'error', msg: 'last words' });
  });

  it('logWith: fields as text on a plain Logger; error falls back to warn', () => {
    const got: string[] = [];
    const plain = { debug: (m: string) => got.push(`D ${m}`), info: (m: string) => got.push(`I ${m}`), warn: (m: string) => got.push(`W ${m}`) };
    logWith(plain, 'info', 'x', { k: 'v w' });
    logWith(plain, 'error', 'boom');
    expect(got).toEqual(['I x k="v w"', 'W boom']);
  });
});
