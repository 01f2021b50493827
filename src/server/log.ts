/**
 * The operator log of a server process: one line per event on stderr, filtered by level
 * (`--log-level`), as text or as JSON (`--log-format`). Every part of the server logs through
 * one OperatorLog (it implements the core's Logger), so a line always names the member and
 * the Raft term it was written in.
 *
 * JSON: one object per line, `{"ts","level","member","term","msg", ...fields}`, written with
 * JSON.stringify (no hand-made escaping: a key or message with quotes, newlines or control
 * characters stays one valid line). Text: `<ts> <level> [<member>] <msg> key=value ...`,
 * where a value with spaces, quotes or control characters is JSON-quoted.
 *
 * Logical clocks: once the member runs with clocks (`traceTo`), every line written is a local
 * event of its trace and carries the member's Raft id and both clocks: JSON fields `node`,
 * `lamport`, `vc`; in text, the line ends with ` node=<id> lamport=<n> vc=<JSON object>`
 * (`flotilla trace merge` reads both forms).
 */
import type { Logger } from '../raft/config.js';
import type { TraceRecorder } from '../trace/recorder.js';
import { logEventType } from '../trace/messages.js';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['text', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Extra structured fields of a line (values must be JSON-serialisable; bigints print as decimal strings). */
export type LogFields = Readonly<Record<string, unknown>>;

/** The keys every JSON line has; fields of the same name are written with a `field_` prefix. */
const RESERVED = new Set(['ts', 'level', 'member', 'term', 'msg', 'node', 'lamport', 'vc']);

export interface OperatorLogOptions {
  readonly level?: LogLevel;
  readonly format?: LogFormat;
  /** This member's name. */
  readonly member: string;
  /** Where lines go (default: process.stderr). */
  readonly write?: (line: string) => void;
  /** The clock (default Date.now). */
  readonly now?: () => number;
}

export class OperatorLog implements Logger {
  readonly level: LogLevel;
  readonly format: LogFormat;
  private readonly min: number;
  private readonly member: string;
  private readonly out: (line: string) => void;
  private readonly now: () => number;
  /** The current Raft term, once the member runs (lines before it carry term 0). */
  term: () => number = () => 0;
  private recorder: TraceRecorder | null = null;

  constructor(o: OperatorLogOptions) {
    this.level = o.level ?? 'info';
    this.format = o.format ?? 'text';
    this.min = LOG_LEVELS.indexOf(this.level);
    this.member = o.member;
    this.out = o.write ?? ((l) => void process.stderr.write(l));
    this.now = o.now ?? Date.now;
  }

  /** From now on, each line written is a local event of `r`'s trace and carries its clocks (null: no more). */
  traceTo(r: TraceRecorder | null): void {
    this.recorder = r;
  }

  enabled(level: LogLevel): boolean {
    return LOG_LEVELS.indexOf(level) >= this.min;
  }

  debug(msg: string, fields?: LogFields): void {
    this.log('debug', msg, fields);
  }

  info(msg: string, fields?: LogFields): void {
    this.log('info', msg, fields);
  }

  warn(msg: string, fields?: LogFields): void {
    this.log('warn', msg, fields);
  }

  error(msg: string, fields?: LogFields): void {
    this.log('error', msg, fields);
  }

  log(level: LogLevel, msg: string, fields: LogFields = {}): void {
    if (!this.enabled(level)) return;
    const ts = new Date(this.now()).toISOString();
    let term = 0;
    try {
      term = this.term();
    } catch {
      // A member that failed still logs (its last lines matter most).
    }
    const r = this.recorder;
    const stamp = r ? r.local(logEventType(msg), msg) : null;
    if (this.format === 'json') {
      const line: Record<string, unknown> = { ts, level, member: this.member, term, msg };
      for (const [k, v] of Object.entries(fields)) line[RESERVED.has(k) ? `field_${k}` : k] = v;
      if (r && stamp) Object.assign(line, { node: r.node, lamport: stamp.lamport, vc: stamp.vc });
      this.out(`${JSON.stringify(line, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}\n`);
      return;
    }
    const extra = Object.entries(fields).map(([k, v]) => ` ${oneLine(k)}=${textValue(v)}`).join('');
    // Messages may carry text from outside (a peer's cluster id): one event stays one line.
    const clocks = r && stamp ? ` node=${r.node} lamport=${stamp.lamport} vc=${JSON.stringify(stamp.vc)}` : '';
    this.out(`${ts} ${level} [${this.member}] ${oneLine(msg)}${extra}${clocks}\n`);
  }
}

/** Control characters and line separators as \uXXXX escapes. */
function oneLine(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function textValue(v: unknown): string {
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  const s = typeof v === 'string' ? v : JSON.stringify(v) ?? String(v);
  // eslint-disable-next-line no-control-regex
  return typeof v === 'string' && /^[^\s"=\u0000-\u001f\u007f]+$/.test(s) ? s : JSON.stringify(s);
}

/**
 * Logs with fields through any Logger: an OperatorLog keeps them structured; another Logger
 * (tests, embedding) gets them appended as text. `error` goes to `warn` on a Logger without it.
 */
export function logWith(l: Logger, level: LogLevel, msg: string, fields: LogFields = {}): void {
  if (l instanceof OperatorLog) return l.log(level, msg, fields);
  const text = msg + Object.entries(fields).map(([k, v]) => ` ${k}=${textValue(v)}`).join('');
  if (level !== 'error') return l[level](text);
  const e = (l as Logger & { error?: (m: string) => void }).error;
  if (e) e.call(l, text);
  else l.warn(text);
}
