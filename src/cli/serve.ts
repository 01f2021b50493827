/**
 * `flotilla serve`: one member, configured by etcd-style flags or FLOTILLA_* variables.
 *
 * Exit codes: 0 stopped by SIGTERM/SIGINT; EXIT_FATAL (1) the member failed while running (its
 * WAL or disk failed — ENOSPC, EIO —, or its Ready loop threw), after one line
 * `fatal: <cause>; exiting with code 1`; EXIT_CANNOT_START (2) bad flags, or the member could
 * not start (a port already in use, storage that cannot be opened or recovered), after one line
 * `fatal: cannot start: <cause>; exiting with code 2` (bad flags: `flotilla serve: <what>`).
 * Either way the process ends: it never lingers accepting connections.
 */
import type { Command } from 'commander';
import { ConfigError, resolveConfig, withEnv, type RawConfig } from '../server/config.js';
import type { Logger } from '../raft/config.js';

/** The member failed while running (storage, Ready loop). */
export const EXIT_FATAL = 1;
/** Bad configuration, or the member could not start. */
export const EXIT_CANNOT_START = 2;

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run one member of a cluster (etcd-style flags; each also as FLOTILLA_<FLAG> in the environment, e.g. FLOTILLA_DATA_DIR)')
    .option('--name <name>', 'human-readable name of this member (default "default")')
    .option('--data-dir <dir>', 'where the WAL and snapshots live (default "<name>.etcd")')
    .option('--listen-client-urls <urls>', 'URLs to serve clients on: gRPC, the JSON gateway, /health, /version (default http://localhost:2379)')
    .option('--advertise-client-urls <urls>', 'client URLs to publish to the cluster (default: the listen client URLs)')
    .option('--listen-peer-urls <urls>', 'URL to take Raft traffic from the other members on (default http://localhost:2380)')
    .option('--initial-advertise-peer-urls <urls>', 'this member\'s peer URL as the others reach it (default http://localhost:2380)')
    .option('--initial-cluster <list>', 'every member as name=peerURL, comma-separated (default "<name>=<initial-advertise-peer-urls>")')
    .option('--initial-cluster-state <state>', 'new, or existing (a member restarting into its cluster)')
    .option('--initial-cluster-token <token>', 'cluster token: members with another token are refused (default "etcd-cluster")')
    .option('--heartbeat-interval <ms>', 'heartbeat interval = Raft tick, ms (default 100)')
    .option('--election-timeout <ms>', 'election timeout, ms (default 1000)')
    .option('--lease-reads', 'answer linearizable reads on the leader from its lease instead of a heartbeat round per read batch (faster; relies on bounded clock drift)')
    .option('--lease-drift <ms>', 'with --lease-reads: margin for clock-rate differences taken off the election timeout (default election-timeout / 5)')
    .option('--snapshot-count <n>', 'applied entries between snapshots (default 10000)')
    .option('--snapshot-catchup-entries <n>', 'entries kept below a snapshot for lagging followers (default 5000)')
    .option('--backend-batch-interval <ms>', 'commit the key-value backend (LMDB) at least this often, ms (default 100)')
    .option('--backend-batch-limit <n>', 'commit the key-value backend once this many writes wait (default 10000)')
    .option('--max-request-bytes <n>', 'largest client request accepted (default 1572864 = 1.5 MiB)')
    .option('--max-txn-ops <n>', 'operations per txn branch (default 128)')
    .option('--request-timeout <ms>', 'how long a write or linearizable read may wait (default 5000)')
    .option('--max-concurrent-streams <n>', 'HTTP/2 streams one client connection may have open; more are refused (default 1000)')
    .option('--max-client-connections <n>', 'client connections open at once over all client URLs; more are closed at once (default 1024)')
    .option('--client-idle-timeout <duration>', 'an HTTP/2 client connection without an open stream this long gets GOAWAY and is closed (default 2m; 0 = never)')
    .option('--client-header-timeout <duration>', 'a client connection\'s first bytes, and an HTTP/1 request head, must arrive within (default 10s)')
    .option('--client-body-timeout <duration>', 'an HTTP/1 request, head and body, must arrive within (default 30s)')
    .option('--grpc-keepalive-min-time <duration>', 'clients pinging more often get GOAWAY ENHANCE_YOUR_CALM (default 5s; 0 = allow any)')
    .option('--grpc-keepalive-interval <duration>', 'the server pings each HTTP/2 client connection this often (default 2h)')
    .option('--grpc-keepalive-timeout <duration>', 'and closes it when the ping is not answered within (default 20s)')
    .option('--unsafe-fault-injection', 'TEST ONLY: accept POST /debug/faults (drop Raft messages per link, slow fsync, disk errors) on the client port')
    .option('--watch-progress-notify-interval <ms>', 'progress notifications to watchers that ask for them, every ms (default 600000; 0 = off)')
    .action(async (o: RawConfig) => {
      let config;
      try {
        config = resolveConfig(withEnv(o));
      } catch (e) {
        if (e instanceof ConfigError) {
          console.error(`flotilla serve: ${e.message}`);
          process.exitCode = EXIT_CANNOT_START;
          return;
        }
        throw e;
      }
      const { startServer, FATAL_CLOSE_MS_MAX } = await import('../server/server.js');
      const { StorageIoError } = await import('../storage/fs.js');
      const name = config.name;
      const line = (level: string, msg: string) => process.stderr.write(`${new Date().toISOString()} ${level} [${name}] ${msg}\n`);
      const fatal = (cause: string, code: number): void => {
        line('error', `fatal: ${cause}; exiting with code ${code}`);
        process.exitCode = code;
      };
      const logger: Logger = {
        debug() {},
        info: (msg) => line('info', msg),
        warn: (msg) => line('warn', msg),
      };
      let server;
      try {
        server = await startServer(config, logger);
      } catch (e) {
        fatal(`cannot start: ${(e as Error).message}`, EXIT_CANNOT_START);
        // Whatever did start (timers, a peer listener) must not keep the process alive.
        process.exit(EXIT_CANNOT_START);
      }
      if (config.leaseReads) line('info', `lease reads on: the leader answers linearizable reads from its lease (election timeout ${config.electionMs} ms minus ${config.leaseDriftMs} ms for clock drift)`);
      if (config.unsafeFaultInjection) line('warn', 'fault injection is ON (--unsafe-fault-injection): for tests only');
      line('info', `member ${config.self.id.toString(16)} of cluster ${config.clusterId.toString(16)}: serving clients on ${config.listenClientUrls.map((u) => u.host).join(', ')}, peers on ${config.listenPeerUrls.map((u) => u.host).join(', ')}, data in ${config.dataDir}`);
      let stopping = false;
      void server.fatal.then(async (e) => {
        stopping = true;
        // Storage errors name their operation ("WAL fsync failed: EIO: ..."); anything else is a bug.
        fatal(e instanceof StorageIoError ? e.message : `error in the Ready loop: ${e.message}`, EXIT_FATAL);
        // The server is closing itself (listeners first); exit once it has, or after the bound.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([server.close().catch(() => undefined), new Promise((r) => (timer = setTimeout(r, FATAL_CLOSE_MS_MAX)))]);
        clearTimeout(timer);
        process.exit(EXIT_FATAL);
      });
      const stop = (sig: string) => {
        if (stopping) return;
        stopping = true;
        line('info', `${sig}: stopping`);
        server.close().then(
          () => process.exit(0),
          (e: unknown) => {
            line('warn', `stop: ${(e as Error).message}`);
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
}
