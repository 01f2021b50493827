/**
 * The operator's HTTP routes on every client URL, beside the JSON gateway: `GET /metrics`
 * (Prometheus text), and the probes etcd 3.5 introduced, `GET /livez` and `GET /readyz`,
 * with etcd's behaviour: each runs named checks; `?exclude=<name>` (repeatable) leaves one
 * out; `?verbose` lists each check (`[+]name ok`); a failure answers 503 with every check's
 * line (`[-]name failed: <why>`) whatever `verbose` says; `/livez/<name>` runs one check.
 *
 * livez (is the process able to serve at all): serializable_read.
 * readyz (should traffic be sent here): data_corruption, serializable_read, linearizable_read,
 * non_learner.
 *
 * `GET /debug/trace?since=LAMPORT`: this member's recent trace events (src/trace/recorder.ts)
 * with a Lamport time above LAMPORT (default 0), oldest first, as JSON lines (one TraceEvent
 * per line); 404 when the member runs with --trace-clocks=false. While auth is on, only root
 * may read it (the `Authorization` header carries a token, as for the JSON gateway): events
 * carry log lines. TLS is the listener's, as for every route here.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TraceRecorder } from '../trace/recorder.js';

export interface ProbeCheck {
  readonly name: string;
  /** Resolves when healthy; rejects (or throws) with the reason otherwise. */
  readonly run: () => Promise<void>;
}

export interface OpsRoutes {
  readonly metrics: () => Promise<{ contentType: string; body: string }>;
  readonly livez: readonly ProbeCheck[];
  readonly readyz: readonly ProbeCheck[];
  /** Told of excluded names that are not checks (etcd logs them). */
  readonly warn?: (msg: string) => void;
  /** GET /debug/trace: the member's trace (null with clocks off). */
  readonly trace?: () => TraceRecorder | null;
  /** Who may read /debug/trace: resolves null when `req` may, else the refusal's status and text. */
  readonly authorizeDebug?: (req: IncomingMessage) => Promise<{ status: number; message: string } | null>;
}

/** A route handler that answers the operator routes and returns true, or returns false for anything else. */
export function opsRoute(o: OpsRoutes): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    if (path === '/metrics') {
      if (!getOnly(req, res)) return true;
      o.metrics().then(
        (m) => {
          res.writeHead(200, { 'content-type': m.contentType });
          res.end(m.body);
        },
        (e: unknown) => {
          res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
          res.end(`collecting metrics failed: ${(e as Error).message}\n`);
        },
      );
      return true;
    }
    if (path === '/debug/trace' && o.trace) {
      if (!getOnly(req, res)) return true;
      serveTrace(o, url, req, res);
      return true;
    }
    const m = /^\/(livez|readyz)(?:\/([^/]+))?$/.exec(path);
    if (!m) return false;
    const all = m[1] === 'livez' ? o.livez : o.readyz;
    let checks: readonly ProbeCheck[];
    if (m[2] !== undefined) {
      const one = all.find((c) => c.name === m[2]);
      if (!one) return false;
      checks = [one];
    } else {
      const excluded = new Set(url.searchParams.getAll('exclude').flatMap((v) => v.split(',')).filter(Boolean));
      checks = all.filter((c) => !excluded.delete(c.name));
      if (excluded.size > 0) o.warn?.(`/${m[1]}: some health checks cannot be excluded: ${[...excluded].map((x) => JSON.stringify(x)).join(', ')}`);
    }
    if (!getOnly(req, res)) return true;
    void runChecks(checks).then(({ ok, reason }) => {
      if (!ok) {
        // As Go's http.Error: the text, a newline, plain text, no sniffing.
        res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' });
        res.end(`${reason}\n`);
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' });
      res.end(`${url.searchParams.has('verbose') ? reason : ''}ok\n`);
    });
    return true;
  };
}

function plain(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' });
  res.end(`${text}\n`);
}

function serveTrace(o: OpsRoutes, url: URL, req: IncomingMessage, res: ServerResponse): void {
  const raw = url.searchParams.get('since') ?? '0';
  const since = /^\d{1,16}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(since)) return plain(res, 400, `since: "${raw.slice(0, 40)}" is not a Lamport time (a non-negative integer)`);
  const recorder = o.trace!();
  if (!recorder) return plain(res, 404, 'no trace: this member runs with --trace-clocks=false');
  (o.authorizeDebug ? o.authorizeDebug(req) : Promise.resolve(null)).then(
    (refused) => {
      if (refused) return plain(res, refused.status, refused.message);
      const events = recorder.since(since);
      res.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
      res.end(events.map((e) => `${JSON.stringify(e)}\n`).join(''));
    },
    (e: unknown) => plain(res, 500, `authorization failed: ${(e as Error).message}`),
  );
}

function getOnly(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method === 'GET') return true;
  res.writeHead(405, { allow: 'GET', 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' });
  res.end('Method Not Allowed\n');
  return false;
}

async function runChecks(checks: readonly ProbeCheck[]): Promise<{ ok: boolean; reason: string }> {
  let ok = true;
  let reason = '';
  // In order, one at a time, as etcd runs them.
  for (const c of checks) {
    try {
      await c.run();
      reason += `[+]${c.name} ok\n`;
    } catch (e) {
      ok = false;
      reason += `[-]${c.name} failed: ${e instanceof Error ? e.message : String(e)}\n`;
    }
  }
  return { ok, reason };
}
