#!/usr/bin/env node
// A lock holder: takes a Flotilla lock, then writes to the fenced store with its fencing token
// each time a line "write" arrives on stdin (so a test or a person controls when it writes).
//
//   node examples/fenced-store/worker.js --endpoints 127.0.0.1:2379 --store http://127.0.0.1:7000 --name job --id A --ttl 2
//
// Prints: LOCKED <token> | WROTE <token> | REFUSED <reason> | LEASE LOST <reason>
import { createInterface } from 'node:readline';
import { Command } from 'commander';
import { FlotillaClient } from 'flotilla';

const o = new Command()
  .requiredOption('--endpoints <list>', 'host:port of the members, comma-separated')
  .requiredOption('--store <url>', 'the fenced store, e.g. http://127.0.0.1:7000')
  .requiredOption('--name <name>', 'lock name (and the store key written)')
  .requiredOption('--id <id>', 'this worker\'s id, written as the value')
  .option('--ttl <s>', 'lease TTL of the lock session', Number, 2)
  .parse()
  .opts();

const client = new FlotillaClient({ endpoints: o.endpoints.split(',') });
const lock = await client.lock(o.name, { ttl: o.ttl });
console.log(`LOCKED ${lock.fencingToken}`);

let n = 0;
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() !== 'write') continue;
  const r = await fetch(`${o.store}/data/${encodeURIComponent(o.name)}`, {
    method: 'PUT',
    headers: { 'x-fencing-token': lock.fencingToken.toString() },
    body: `${o.id} write ${++n}`,
  });
  const body = await r.json();
  console.log(r.ok ? `WROTE ${lock.fencingToken}` : `REFUSED ${body.error}`);
}
await client.close();
