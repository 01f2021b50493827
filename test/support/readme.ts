/**
 * README.md's sections, for the tests that run a section's snippets as written: the blocks of a
 * section, their command lines, and a shell that runs those lines one by one (a line that
 * never ends on its own, such as a member or a watch, in the background until the test stops
 * it). README_TIMES=1 prints how long each line took.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { ROOT } from './cluster.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The bodies of the ```sh blocks of README.md's section whose heading line is `heading` (e.g. `### Backup and restore`). */
export function shSnippets(heading: string): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf(heading);
  if (start < 0) throw new Error(`README.md has no section "${heading}"`);
  const end = readme.indexOf('\n### ', start + heading.length);
  const section = readme.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

/** The ```sh blocks of the section headed `heading` (without its #s) of `file` (README.md, or examples/x/README.md), up to the next heading outside a block. */
export function shBlocks(heading: string, file = 'README.md'): string[] {
  const lines = readFileSync(join(ROOT, file), 'utf8').split('\n');
  const start = lines.findIndex((l) => /^#+ /.test(l) && l.replace(/^#+ /, '') === heading);
  if (start < 0) throw new Error(`${file} has no section "${heading}"`);
  const blocks: string[] = [];
  let block: string[] | null = null;
  for (const l of lines.slice(start + 1)) {
    if (block === null && /^#+ /.test(l)) break;
    if (l.startsWith('```')) {
      if (block === null) block = l === '```sh' ? [] : ['(not sh)'];
      else {
        if (block[0] !== '(not sh)') blocks.push(block.join('\n'));
        block = null;
      }
    } else block?.push(l);
  }
  return blocks;
}

/** The section's one ```sh block. */
export function onlyBlock(heading: string, file = 'README.md'): string {
  const blocks = shBlocks(heading, file);
  expect(blocks.length, `${file}: ${heading}: sh blocks`).toBe(1);
  return blocks[0]!;
}

export interface Line {
  /** The command as written (lines continued with a backslash, and a for/while/until loop to its `done`, are one). */
  readonly text: string;
  /** Its trailing comment, if any. */
  readonly comment: string;
  /** Comment lines right below it (what it prints, as the README shows it), joined by spaces. */
  readonly shown: string;
}

/** Where a line's trailing comment starts (a `#` after white space, outside quotes), or -1. */
function commentStart(text: string): number {
  let quote = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote !== '') {
      if (c === quote) quote = '';
    } else if (c === "'" || c === '"') quote = c;
    else if (c === '#' && i > 0 && /\s/.test(text[i - 1]!)) return i;
  }
  return -1;
}

/** A block's commands, each with its trailing comment and the comment lines below it. */
export function lines(block: string): Line[] {
  const out: { text: string; comment: string; shown: string }[] = [];
  let open: string[] = [];
  // Loops opened (a for/while/until line without its `done`) less loops closed (a `done` line).
  const loops = (ls: string[]) => ls.reduce((n, l) => n + (/^(for|while|until)\b/.test(l.trim()) && !/\bdone\b/.test(l) ? 1 : 0) - (/^done\b/.test(l.trim()) ? 1 : 0), 0);
  for (const raw of block.split('\n')) {
    const l = raw.trimEnd();
    if (open.length === 0) {
      if (l.trim() === '') continue;
      if (l.trim().startsWith('#')) {
        const last = out[out.length - 1];
        if (last) last.shown = `${last.shown} ${l.trim().replace(/^#\s*/, '')}`.trim();
        continue;
      }
    }
    open.push(l);
    if (l.endsWith('\\') || loops(open) > 0) continue;
    const text = open.join('\n');
    open = [];
    const at = commentStart(text);
    out.push(at < 0 ? { text: text.trim(), comment: '', shown: '' } : { text: text.slice(0, at).trim(), comment: text.slice(at + 1).trim(), shown: '' });
  }
  return out;
}

/** How long one line that ends on its own may run. */
export const LINE_TIMEOUT_MS = 60_000;
/**
 * ... and a line that is a fixed amount of CPU work (a simulator sweep): seconds alone, but on a
 * loaded shared machine a process at low priority gets a small share of a core, and a sweep
 * takes longer there rather than failing.
 */
export const CPU_LINE_TIMEOUT_MS = 600_000;
/** How long a background line gets to end after SIGTERM before it is SIGKILLed. */
const STOP_GRACE_MS = 5_000;

export interface Ran {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A line running in the background, in a process group of its own (so whatever it starts is stopped with it). */
export class Background {
  out = '';
  readonly exited: Promise<void>;
  constructor(
    readonly text: string,
    readonly p: ChildProcess,
  ) {
    p.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (this.out += d.toString()));
    this.exited = new Promise((r) => p.once('exit', () => r()));
  }

  get running(): boolean {
    return this.p.exitCode === null && this.p.signalCode === null;
  }

  /** Resolves with the first match of `re` in the output; throws with the output if it does not come within `ms` or the line ends first. */
  async waitFor(re: RegExp, ms = LINE_TIMEOUT_MS): Promise<RegExpExecArray> {
    for (const deadline = Date.now() + ms; ; await sleep(50)) {
      const m = re.exec(this.out);
      if (m) return m;
      if (!this.running || Date.now() > deadline) throw new Error(`${this.text}: no ${String(re)} (${this.running ? 'timed out' : `exited ${this.p.exitCode ?? this.p.signalCode}`}); output:\n${this.out.slice(-4000)}`);
    }
  }

  /** Sends `signal` to the line's process group. */
  signal(signal: NodeJS.Signals): void {
    try {
      process.kill(-this.p.pid!, signal);
    } catch {
      // Already gone.
    }
  }

  /** SIGTERM to the group, then SIGKILL to what is left after STOP_GRACE_MS; resolves once the line's process has exited. */
  async stop(): Promise<void> {
    this.signal('SIGCONT');
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), STOP_GRACE_MS);
    await this.exited;
    clearTimeout(timer);
    // Children of the line that ignored the SIGTERM.
    this.signal('SIGKILL');
  }
}

export interface ShellOptions {
  readonly cwd: string;
  /** Added to the test's environment. */
  readonly env?: Readonly<Record<string, string>>;
  /** What a line as written becomes here (the built CLI for `npx flotilla`, free ports for the README's ...). */
  readonly sub: (text: string) => string;
}

/**
 * Runs README lines in bash, one bash per line, in `cwd`. Variable assignments (`X=...`,
 * `export X=...`) carry to the later lines, as in a terminal.
 */
export class ReadmeShell {
  private readonly assignments: string[] = [];
  private readonly background: Background[] = [];
  constructor(private readonly o: ShellOptions) {}

  /** The line as it runs here (substituted), after the assignments of the lines before it. */
  private script(text: string, prefix = ''): string {
    return [...this.assignments, `${prefix}${this.o.sub(text)}`].join('\n');
  }

  /** Runs a line to its end; an assignment is also kept for the lines after it. */
  run(text: string, o: { timeoutMs?: number } = {}): Promise<Ran> {
    const script = this.script(text);
    if (/^(export\s+)?[A-Za-z_]\w*=\S*$/.test(text)) this.assignments.push(this.o.sub(text));
    return new Promise((resolve) => {
      const p = execFile('bash', ['-c', script], { cwd: this.o.cwd, env: { ...process.env, ...this.o.env }, timeout: o.timeoutMs ?? LINE_TIMEOUT_MS, maxBuffer: 64 << 20 }, (e, stdout, stderr) => {
        const code = e ? (typeof (e as { code?: unknown }).code === 'number' ? (e as { code: number }).code : -1) : 0;
        resolve({ code, stdout, stderr: e && code === -1 ? `${stderr}${e.message}` : stderr });
      });
      // Nothing to read: a line that reads stdin sees its end (a line that exits first must not fail the test with EPIPE).
      p.stdin!.on('error', () => {});
      p.stdin!.end();
    });
  }

  /** Runs a line to its end and expects exit code 0; returns its output. */
  async ok(text: string, o: { timeoutMs?: number } = {}): Promise<Ran> {
    const r = await this.run(text, o);
    expect(r.code, `${text}\n${r.stdout}${r.stderr}`).toBe(0);
    return r;
  }

  /** Starts a line (a trailing `&` dropped: it runs in the background either way) that runs until stopped; its stdin stays open. */
  start(text: string): Background {
    const line = text.replace(/&$/, '').trim();
    expect(line, 'one simple command').toMatch(/^[^|;&<>]+$/);
    // exec: the line's process is the command itself (kill -STOP <its pid> stops the command).
    const p = spawn('bash', ['-c', this.script(line, 'exec ')], { cwd: this.o.cwd, env: { ...process.env, ...this.o.env }, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const b = new Background(line, p);
    this.background.push(b);
    return b;
  }

  /** Stops every line started in the background. */
  async stopAll(): Promise<void> {
    await Promise.all(this.background.splice(0).map((b) => b.stop()));
  }
}


/** What to do with the lines of a block that match the pattern. */
export type Handlers = [RegExp, (l: Line) => Promise<void>][];

/**
 * Runs each line of `block` through the first handler whose pattern matches it: every line must
 * have one (a line added to the README is run, or the test says which line has no handler),
 * and every handler must be used (a line gone from the README is noticed).
 */
export async function runLines(block: string, handlers: Handlers): Promise<void> {
  const used = new Set<number>();
  for (const l of lines(block)) {
    const i = handlers.findIndex(([re]) => re.test(l.text));
    expect(i, `no handler for the README line: ${l.text}`).toBeGreaterThanOrEqual(0);
    used.add(i);
    const t0 = Date.now();
    await handlers[i]![1](l);
    if (process.env.README_TIMES) console.log(`${Date.now() - t0} ms: ${l.text}`);
  }
  expect(handlers.filter((_, i) => !used.has(i)).map(([re]) => String(re)), 'handlers no line used').toEqual([]);
}

/** Resolves once `check` holds (polled every 100 ms); throws with `what()` after `ms`. */
export async function until(check: () => Promise<boolean> | boolean, what: () => string, ms = 30_000): Promise<void> {
  for (const deadline = Date.now() + ms; !(await check()); await sleep(100)) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what()}`);
  }
}
