#!/usr/bin/env node
// Entries committed per second by 3 in-memory Raft cores in one process.
// Run: npm run bench   (builds first), or: node bench/raft-throughput.js [--quick]
import { defaultCases, formatResult, runCase } from '../dist/bench/core-throughput.js';

const quick = process.argv.includes('--quick');
console.log(`node ${process.version}, 3 in-memory cores, one process`);
for (const c of defaultCases) {
  const r = runCase(quick ? { ...c, entries: Math.ceil(c.entries / 10) } : c);
  console.log(formatResult(r));
}
