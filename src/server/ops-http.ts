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
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

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
