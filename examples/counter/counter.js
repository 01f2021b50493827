#!/usr/bin/env node
// A replicated counter: one member of a Flotilla Raft group, with its own data directory, Raft
// traffic over TCP, and a tiny HTTP interface. The documented example of embedding Flotilla with
// a custom state machine (see README.md in this folder).
//
//   node examples/counter/counter.js --id 1 --data ./data/counter1 --http 8001 \
//     --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003
//
// HTTP:  POST /add?n=5&id=<unique op id>  -> {"total":..}   (leader only; others answer 421 with the leader)
//        GET  /value                      -> linearizable read {"total":..,"ops":..}
//        GET  /state                      -> this member's applied state, read locally
//        GET  /status                     -> Raft status
import { createServer } from 'node:http';
import { createHash } from 'node:crypto';
import { Command, InvalidArgumentError } from 'commander';
import { DiskStorage, NotLeaderError, RaftNode, TcpTransport } from 'flotilla';

/** The state machine: a total, and the ids of the operations applied (to check nothing is lost). */
class Counter {
  total = 0;
  ops = [];
  apply(entry) {
    const { id, n } = JSON.parse(new TextDecoder().decode(entry.data));
    this.total += n;
    this.ops.push(id);
    return this.total;
  }
  snapshot() {
    return new TextEncoder().encode(JSON.stringify({ total: this.total, ops: this.ops }));
  }
  restore(data) {
    const s = data.length ? JSON.parse(new TextDecoder().decode(data)) : { total: 0, ops: [] };
    this.total = s.total;
    this.ops = s.ops;
  }
  digest() {
    return createHash('sha256').update(JSON.stringify([this.total, this.ops])).digest('hex').slice(0, 16);
  }
}

function parsePeers(s) {
  const peers = new Map();
  for (const part of s.split(',')) {
    const m = /^(\d+)=([^:]+):(\d+)$/.exec(part.trim());
    if (!m) throw new InvalidArgumentError(`peer "${part}" is not id=host:port`);
    peers.set(Number(m[1]), { host: m[2], port: Number(m[3]) });
  }
  return peers;
}
const int = (v) => {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`"${v}" is not a non-negative integer`);
  return Number(v);
};

const o = new Command()
  .requiredOption('--id <n>', 'this member id', int)
  .requiredOption('--peers <list>', 'every member as id=host:port (Raft traffic)', parsePeers)
  .requiredOption('--http <port>', 'HTTP port', int)
  .requiredOption('--data <dir>', 'data directory')
  .option('--cluster <id>', 'cluster id (peers with another id are refused)', 'counter')
  .option('--tick-ms <ms>', 'milliseconds per Raft tick', int, 50)
  .option('--snapshot-entries <n>', 'snapshot every n applied entries', int, 1000)
  .parse()
  .opts();

const self = o.peers.get(o.id);
if (!self) {
  console.error(`counter: --peers has no entry for --id ${o.id}`);
  process.exit(2);
}
const voters = [...o.peers.keys()].sort((a, b) => a - b);
const log = (msg) => console.log(`${new Date().toISOString()} [${o.id}] ${msg}`);

let storage;
try {
  storage = await DiskStorage.open(o.data, { voters, votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false });
} catch (e) {
  console.error(`counter: cannot start: ${e.message}`);
  process.exit(2);
}
const transport = await TcpTransport.start({
  id: o.id,
  clusterId: o.cluster,
  listenHost: self.host,
  listenPort: self.port,
  peers: new Map([...o.peers].filter(([id]) => id !== o.id)),
  logger: { debug() {}, info: log, warn: log },
});
const sm = new Counter();
const node = await RaftNode.start({
  id: o.id,
  storage,
  transport,
  stateMachine: sm,
  tickMs: o.tickMs,
  snapshotEntries: o.snapshotEntries,
  logger: { debug() {}, info: (m) => (/became|stepped down|snapshot/.test(m) ? log(m) : undefined), warn: log },
});

const json = (res, code, body) => {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  try {
    if (req.method === 'POST' && url.pathname === '/add') {
      const n = Number(url.searchParams.get('n') ?? '1');
      const id = url.searchParams.get('id') ?? `${o.id}-${Date.now()}-${Math.random()}`;
      if (!Number.isSafeInteger(n)) return json(res, 400, { error: 'n must be an integer' });
      const total = await node.propose(new TextEncoder().encode(JSON.stringify({ id, n })));
      return json(res, 200, { total, id });
    }
    if (req.method === 'GET' && url.pathname === '/value') {
      await node.linearizableRead();
      return json(res, 200, { total: sm.total, ops: sm.ops.length });
    }
    if (req.method === 'GET' && url.pathname === '/state') {
      return json(res, 200, { total: sm.total, ops: sm.ops, digest: sm.digest(), applied: node.status().applied });
    }
    if (req.method === 'GET' && url.pathname === '/status') {
      const s = node.status();
      return json(res, 200, { id: s.id, role: s.role, term: s.term, leader: s.leader, commit: s.commit, applied: s.applied });
    }
    return json(res, 404, { error: 'not found' });
  } catch (e) {
    if (e instanceof NotLeaderError) return json(res, 421, { error: 'not the leader', leader: e.leaderHint });
    return json(res, 503, { error: e.message });
  }
});
server.listen(o.http, '127.0.0.1', () => log(`counter member ${o.id}: HTTP on 127.0.0.1:${o.http}, Raft on ${self.host}:${self.port}, data in ${o.data}`));

const stop = async () => {
  log('stopping');
  server.close();
  await node.stop().catch((e) => log(`stop: ${e.message}`));
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// A member that cannot go on (its disk failed, ...) must not linger answering requests: exit.
node.fatal.then(async (e) => {
  log(`fatal: ${e.message}; exiting with code 1`);
  server.close();
  await node.stop().catch(() => {});
  process.exit(1);
});
