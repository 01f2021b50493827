#!/usr/bin/env node
/**
 * The `flotilla` command. Each subcommand validates its flags and exits non-zero with a
 * readable message on bad input (EXIT_USAGE when the command line is not understood).
 *
 * Registering a command must stay cheap: a module that registers commands imports only
 * commander and light helpers at its top, and loads what a command does (the server, gRPC, the
 * simulator, the store) with `await import(...)` in the command's action, so `flotilla get`
 * starts without loading the server (test/cli-cold-start.test.ts checks it).
 */
import { Command, InvalidArgumentError } from 'commander';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { registerServe } from './serve.js';
import { registerStart } from './start.js';
import { registerClientCommands } from './client.js';
import { EXIT_USAGE } from './command.js';
import { registerSnapshot } from './snapshot.js';
import { registerTrace } from './trace.js';

/** Where `flotilla faults` writes its history unless told: data/ (like `flotilla start`'s data), ignored by git. */
const FAULTS_HISTORY_DEFAULT = 'data/faults-history.jsonl';
import { registerChainCommands } from './chain.js';

function intArg(name: string, min: number, max: number) {
  return (v: string): number => {
    if (!/^-?\d+$/.test(v)) throw new InvalidArgumentError(`${name} must be an integer, got "${v}"`);
    const n = Number(v);
    if (n < min || n > max) throw new InvalidArgumentError(`${name} must be in [${min}, ${max}], got ${n}`);
    return n;
  };
}

export function buildProgram(): Command {
  const program = new Command();
  program.name('flotilla').description('Flotilla: a fault-tolerant, strongly consistent key-value store (Raft, etcd v3 API).');

  registerServe(program);
  registerStart(program);
  registerClientCommands(program);
  registerSnapshot(program);
  registerTrace(program);
  registerChainCommands(program);

  program
    .command('demo')
    .description('narrate a simulated 3-member cluster: election, replication, a leader crash, recovery')
    .option('--seed <n>', 'seed of the simulated cluster', intArg('--seed', 0, 2 ** 32 - 1), 1)
    .option('--pause-ms <ms>', 'real-time pause between narrated steps', intArg('--pause-ms', 0, 60_000), 600)
    .action(async (o: { seed: number; pauseMs: number }) => {
      const { runDemo } = await import('./demo.js');
      await runDemo({ seed: o.seed, pauseMs: o.pauseMs, out: (l) => console.log(l) });
    });

  program
    .command('sim')
    .description('run the deterministic simulator: real Raft cores under simulated time, network faults and crashes')
    .option('--seed <n>', 'first seed', intArg('--seed', 0, 2 ** 32 - 1), 1)
    .option('--runs <n>', 'number of seeds to run', intArg('--runs', 1, 10_000_000), 1)
    .option('--nodes <k>', 'cluster size (3..7); default cycles through sizes', intArg('--nodes', 3, 7))
    .option('--faults <kinds>', 'comma-separated fault kinds (partition,crash,pause,lossy,transfer,membership,compaction), all, none, or random per seed', 'random')
    .option('--fault-ms <ms>', 'virtual duration of the fault phase of each run', intArg('--fault-ms', 0, 3_600_000))
    .option('--driver <d>', 'what drives each member: node (the server shell with the WAL on a crashing in-memory disk) or core (the bare core, faster)', 'node')
    .option('--store <s>', 'what node-driver members apply the log to: sim (a register map) or real (the MVCC store, KvStateMachine, on an in-memory backend that crashes as LMDB does)', 'sim')
    .option('--jobs <n>', 'worker threads that share the seeds (0: one per CPU); a seed runs the same in any of them', intArg('--jobs', 0, 1024), 1)
    .option('-v, --verbose', 'print one line per run')
    .option('--history', 'with --verbose: print each run\'s client history (JSON lines)')
    .option('--trace <file>', 'with --runs 1: write the run\'s trace there (TraceEvent JSON lines with Lamport and vector clocks; deterministic)')
    .option('--chain', 'the chain replication mode: chain nodes, masters and a simulated control cluster (--nodes 3..6, --reads, --faults crash,partition,lossy,master,replay)')
    .option('--reads <mode>', 'with --chain: tail or craq (default: by seed)')
    .option('--compaction <on|off>', 'with --chain: whether nodes compact their disks (default: by seed, most seeds)')
    .action(async (o: { seed: number; runs: number; nodes?: number; faults?: string; faultMs?: number; driver?: string; store?: string; jobs: number; verbose?: boolean; history?: boolean; trace?: string; chain?: boolean; reads?: string; compaction?: string }) => {
      if (o.chain) {
        if (o.jobs !== 1) {
          console.log('flotilla sim: --jobs is for the Raft simulator; --chain runs its seeds in one thread');
          process.exitCode = 2;
          return;
        }
        const { runChainSimCommand } = await import('./chain-sim.js');
        process.exitCode = runChainSimCommand(o, (l) => console.log(l));
        return;
      }
      const { runSimCommand } = await import('./sim.js');
      process.exitCode = await runSimCommand(o, (l) => console.log(l));
    });

  program
    .command('faults')
    .description('the fault harness: a real cluster under SIGKILL, SIGSTOP, partitions and slow disks while clients run a register workload; checks linearizability, watches, acknowledged writes and HashKV; exit 1 on any violation')
    .option('--time <s>', 'seconds of faults and workload', intArg('--time', 1, 86_400), 60)
    .option('--faults <kinds>', 'comma-separated: kill,pause,partition,slowdisk,clock, and with --net netns delay,reset (or all, none)', 'all')
    .option('--seed <n>', 'seed of the fault schedule and the workload', intArg('--seed', 0, 2 ** 32 - 1), 1)
    .option('--members <n>', 'cluster size', intArg('--members', 3, 7), 3)
    .option('--clients <n>', 'concurrent clients', intArg('--clients', 1, 64), 4)
    .option('--history <file>', 'where to write the history (JSON lines; re-check with flotilla check); the default is under data/, which git ignores', FAULTS_HISTORY_DEFAULT)
    .option('--lease-reads', 'members answer linearizable reads from the leader\'s lease (serve --lease-reads)')
    .option('--net <mode>', 'where members run: loopback, or netns (a network namespace per member with its own address and DNS name; partitions as nftables rules; root only)', 'loopback')
    .action(async (o: { time: number; faults: string; seed: number; members: number; clients: number; history: string; leaseReads?: boolean; net: string }) => {
      const { runFaults, FAULT_KINDS, LOOPBACK_FAULT_KINDS, LINK_FAULT_KINDS } = await import('../faults/run.js');
      if (o.net !== 'loopback' && o.net !== 'netns') {
        console.error(`flotilla faults: --net must be loopback or netns, not ${o.net}`);
        process.exitCode = 2;
        return;
      }
      const kinds = o.faults === 'all' ? [...(o.net === 'netns' ? FAULT_KINDS : LOOPBACK_FAULT_KINDS)] : o.faults === 'none' ? [] : o.faults.split(',').map((s) => s.trim());
      const bad = kinds.filter((k) => !(FAULT_KINDS as readonly string[]).includes(k));
      if (bad.length > 0) {
        console.error(`flotilla faults: unknown fault kind ${bad.join(', ')} (known: ${FAULT_KINDS.join(', ')}, all, none)`);
        process.exitCode = 2;
        return;
      }
      mkdirSync(dirname(resolve(o.history)), { recursive: true });
      if (o.net === 'loopback' && kinds.some((k) => (LINK_FAULT_KINDS as readonly string[]).includes(k))) {
        console.error(`flotilla faults: ${LINK_FAULT_KINDS.join(' and ')} shape real links: they need --net netns`);
        process.exitCode = 2;
        return;
      }
      let cluster: Parameters<typeof runFaults>[0]['cluster'];
      if (o.net === 'netns') {
        const { labFromEnv, runInLab, NetnsCluster } = await import('../faults/netns-cluster.js');
        const lab = labFromEnv();
        // Outside the lab: make it, run this same command inside it, remove it.
        if (!lab) return void (process.exitCode = await runInLab(o.members, process.argv.slice(2)));
        const { NetnsLab } = await import('../faults/netns.js');
        const proxy = kinds.some((k) => (LINK_FAULT_KINDS as readonly string[]).includes(k));
        cluster = (n, serveArgs) => NetnsCluster.startIn(NetnsLab.attach(lab), n, serveArgs, { proxy, log: (l) => console.log(l) });
      }
      const r = await runFaults({ timeSec: o.time, faults: kinds as typeof FAULT_KINDS[number][], seed: o.seed, members: o.members, clients: o.clients, leaseReads: o.leaseReads === true, historyFile: o.history, log: (l) => console.log(l), ...(cluster ? { cluster } : {}) });
      console.log('');
      for (const v of r.verdicts) console.log(`${v.ok ? 'PASS' : 'FAIL'} ${v.name}: ${v.detail}`);
      console.log(r.ok ? `\nno violations (${r.injected.length} fault events, ${r.ops} operations)` : '\nVIOLATIONS FOUND');
      process.exitCode = r.ok ? 0 : 1;
    });

  program
    .command('fuzz')
    .description('fuzz the client port (grpc, gateway), the peer port (peer) of a real 3-member cluster, and the WAL and snapshot readers (wal, snapshot): seeded inputs, mutated valid messages and random bytes; after each batch every member must be alive, answer a linearizable read and agree on HashKV; exit 1 on any failure')
    .option('--surface <s>', 'grpc, gateway, peer, wal, snapshot, a comma-separated list of them, or all', 'all')
    .option('--runs <n>', 'inputs per surface', intArg('--runs', 1, 1_000_000_000), 1000)
    .option('--seed <n>', 'seed: the same seed gives the same inputs', intArg('--seed', 0, 2 ** 32 - 1), 1)
    .option('--first <i>', 'index of the first input (replay one: --first I --runs 1)', intArg('--first', 0, 2 ** 52), 0)
    .option('--batch <n>', 'inputs between two cluster checks', intArg('--batch', 1, 1_000_000), 1000)
    .option('--exclude <list>', 'comma-separated: gRPC methods not fuzzed on the grpc and gateway surfaces (v3electionpb.Election/Proclaim; grpc:METHOD or gateway:METHOD for one surface only), snapshot/image (no state machine restores)', '')
    .action(async (o: { surface: string; runs: number; seed: number; first: number; batch: number; exclude: string }) => {
      const { runFuzz, SURFACES } = await import('../fuzz/run.js');
      const names = o.surface === 'all' ? [...SURFACES] : o.surface.split(',').map((s) => s.trim());
      const bad = names.filter((n) => !(SURFACES as readonly string[]).includes(n));
      if (bad.length > 0 || names.length === 0) {
        console.error(`flotilla fuzz: unknown surface ${bad.join(', ')} (known: ${SURFACES.join(', ')}, all)`);
        process.exitCode = 2;
        return;
      }
      const exclude = o.exclude.split(',').map((s) => s.trim()).filter(Boolean);
      try {
        const r = await runFuzz({ surfaces: names as (typeof SURFACES)[number][], runs: o.runs, seed: o.seed, first: o.first, batch: o.batch, exclude, log: (l) => console.log(l) });
        console.log(r.ok ? 'no failures' : 'FAILURES FOUND');
        process.exitCode = r.ok ? 0 : 1;
      } catch (e) {
        console.error(`flotilla fuzz: ${(e as Error).message}`);
        process.exitCode = 2;
      }
    });

  program
    .command('check')
    .description('check a client history (JSON lines, see docs) for linearizability')
    .argument('<file>', 'history file, one JSON op per line (gzipped if it ends in .gz)')
    .action(async (file: string) => {
      const { parseHistory } = await import('../check/history.js');
      const { checkLinearizable } = await import('../check/linearizability.js');
      let text: string;
      try {
        const raw = readFileSync(file);
        text = file.endsWith('.gz') ? gunzipSync(raw).toString('utf8') : raw.toString('utf8');
      } catch (e) {
        console.error(`flotilla check: cannot read ${file}: ${(e as Error).message}`);
        process.exitCode = 2;
        return;
      }
      let ops;
      try {
        ops = parseHistory(text);
      } catch (e) {
        console.error(`flotilla check: ${file}: ${(e as Error).message}`);
        process.exitCode = 2;
        return;
      }
      const r = checkLinearizable(ops);
      if (r.ok && r.timedOutKeys.length === 0) {
        console.log(`linearizable: ${r.opsChecked} ops over ${r.keysChecked} keys`);
      } else if (r.ok) {
        console.log(`no violation found, but the search gave up on keys: ${r.timedOutKeys.join(', ')}`);
        process.exitCode = 3;
      } else {
        console.log(`NOT linearizable: key ${r.failure?.key}: ${r.failure?.message}`);
        process.exitCode = 1;
      }
    });

  program
    .command('bench-core')
    .description('entries committed per second by 3 in-memory Raft cores in one process')
    .option('--quick', 'a tenth of the entries')
    .action(async (o: { quick?: boolean }) => {
      const { defaultCases, formatResult, runCase } = await import('../bench/core-throughput.js');
      console.log(`node ${process.version}, 3 in-memory cores, one process`);
      for (const c of defaultCases) console.log(formatResult(runCase(o.quick ? { ...c, entries: Math.ceil(c.entries / 10) } : c)));
    });

  exitOnUsageErrors(program);
  return program;
}

/**
 * A command line that does not parse (unknown flag or command, bad flag value, missing or extra
 * argument, no command at all) exits EXIT_USAGE after commander's message; asking for help exits
 * 0. Applied to every command registered, however it was added.
 */
function exitOnUsageErrors(c: Command): void {
  c.exitOverride((e) => process.exit(e.exitCode === 0 ? 0 : EXIT_USAGE));
  for (const sub of c.commands) exitOnUsageErrors(sub);
}

await buildProgram().parseAsync(process.argv);
