#!/usr/bin/env node
// A tiny key-value "resource" behind a Flotilla lock, which refuses writes that carry a stale
// fencing token — the downstream half of the fencing recipe (see README.md here).
//
//   node examples/fenced-store/store.js --port 7000
//
// PUT /data/<name>   body: the value; header x-fencing-token: <token>
//                    -> 200 {"ok":true,"token":"<t>"}  or 409 {"error":"stale fencing token ..."}
// GET /data/<name>   -> {"value":..., "token":"<highest token accepted>"}
// GET /log           -> every accepted write, in order
import { createServer } from 'node:http';
import { Command, InvalidArgumentError } from 'commander';
import { FencingGuard, StaleTokenError } from 'flotilla';

const o = new Command()
  .requiredOption('--port <n>', 'HTTP port on 127.0.0.1', (v) => {
    if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`"${v}" is not a port`);
    return Number(v);
  })
  .parse()
  .opts();

const guard = new FencingGuard();
const data = new Map();
const log = [];
const json = (res, code, body) => {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

createServer((req, res) => {
  const m = /^\/data\/([^/]+)$/.exec(req.url ?? '');
  if (req.method === 'GET' && req.url === '/log') return json(res, 200, log);
  if (!m) return json(res, 404, { error: 'not found' });
  const name = decodeURIComponent(m[1]);
  if (req.method === 'GET') return json(res, 200, { value: data.get(name) ?? null, token: guard.highestFor(name)?.toString() ?? null });
  if (req.method !== 'PUT') return json(res, 405, { error: 'GET or PUT' });
  const raw = req.headers['x-fencing-token'];
  if (typeof raw !== 'string' || !/^\d+$/.test(raw)) return json(res, 400, { error: 'x-fencing-token header (a non-negative integer) is required' });
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    const token = BigInt(raw);
    try {
      guard.check(name, token);
    } catch (e) {
      if (e instanceof StaleTokenError) return json(res, 409, { error: e.message });
      throw e;
    }
    data.set(name, body);
    log.push({ name, value: body, token: raw });
    json(res, 200, { ok: true, token: raw });
  });
}).listen(o.port, '127.0.0.1', () => console.log(`fenced store on 127.0.0.1:${o.port}`));
