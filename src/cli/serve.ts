/**
 * `flotilla serve`: one member, configured by etcd-style flags or FLOTILLA_* variables.
 *
 * Exit codes: 0 stopped by SIGTERM/SIGINT; EXIT_FATAL (1) the member failed while running (its
 * WAL, snapshots or LMDB backend failed — ENOSPC, EIO —, or its Ready loop threw), after one line
 * `fatal: <cause>; exiting with code 1`; EXIT_CANNOT_START (2) bad flags, or the member could
 * not start (a port already in use, storage that cannot be opened or recovered), after one line
 * `fatal: cannot start: <cause>; exiting with code 2` (bad flags: `flotilla serve: <what>`).
 * Either way the process ends: it never lingers accepting connections.
 */
import type { Command } from 'commander';
import type { RawConfig } from '../server/config.js';
import { LOG_FORMATS, LOG_LEVELS, OperatorLog, type LogFormat, type LogLevel } from '../server/log.js';

/** `value` if it is one of `allowed`; `dflt` when not given; else `bad` (a ConfigError) naming the flag. */
function oneOf<T extends string>(flag: string, value: string | undefined, allowed: readonly T[], dflt: T, bad: (msg: string) => Error): T {
  if (value === undefined || value === '') return dflt;
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw bad(`--${flag}: "${value}" is not one of ${allowed.join(', ')}`);
}

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
    .option('--trace-clocks <bool>', 'Lamport and vector clocks on peer messages and log lines, and the trace ring at GET /debug/trace (default true; false only to measure their cost)')
    .option('--quota-backend-bytes <n>', 'store size at which the NOSPACE alarm is raised and writes that grow the store are refused (default 2147483648 = 2 GiB; 0 = default)')
    .option('--cert-file <path>', 'client TLS: the server certificate (PEM) for https:// client URLs; reloaded when the file changes')
    .option('--key-file <path>', 'client TLS: the certificate\'s private key (PEM)')
    .option('--trusted-ca-file <path>', 'client TLS: CA that client certificates must be signed by (requires a client certificate, as etcd)')
    .option('--client-cert-auth', 'client TLS: require a client certificate signed by --trusted-ca-file; its CN is the client\'s identity')
    .option('--auto-tls', 'client TLS: generate a self-signed certificate in <data-dir>/fixtures/client (with the openssl command) when none is given')
    .option('--peer-cert-file <path>', 'peer TLS: this member\'s certificate (PEM) for https:// peer URLs, used both to serve and to dial (needs serverAuth and clientAuth usage)')
    .option('--peer-key-file <path>', 'peer TLS: the certificate\'s private key (PEM)')
    .option('--peer-trusted-ca-file <path>', 'peer TLS: CA that the other members\' certificates must be signed by')
    .option('--peer-client-cert-auth', 'peer TLS: refuse members without a certificate signed by --peer-trusted-ca-file')
    .option('--peer-auto-tls', 'peer TLS: generate a self-signed certificate in <data-dir>/fixtures/peer (peers are then not verified)')
    .option('--peer-cert-allowed-cn <cn>', 'peer TLS: a member\'s certificate must have exactly this CN')
    .option('--cipher-suites <list>', 'TLS 1.2 cipher suites, comma-separated, with etcd\'s (Go\'s) names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 (TLS 1.3 suites are fixed, as in Go)')
    .option('--auth-token <spec>', 'auth tokens: simple (default; random, bound to the cluster\'s members, expire after --auth-token-ttl unused), or jwt,priv-key=<file>,pub-key=<file>,sign-method=RS256|ES256|...,ttl=5m')
    .option('--auth-token-ttl <seconds>', 'a simple token unused this long expires (default 300)')
    .option('--bcrypt-cost <n>', 'bcrypt cost of password hashes, 4..31 (default 10)')
    .option('--watch-progress-notify-interval <ms>', 'progress notifications to watchers that ask for them, every ms (default 600000; 0 = off)')
    .option('--log-level <level>', `lowest level logged: ${LOG_LEVELS.join(', ')} (default info)`)
    .option('--log-format <format>', `text, or json: one object per line with ts, level, member, term, msg and fields (default text)`)
    .action(async (opts: RawConfig & { logLevel?: string; logFormat?: string }) => {
      const { logLevel, logFormat, ...o } = opts;
      // Loaded here, not at the top: the other commands start without the server's modules.
      const { ConfigError, configWarnings, plainPeerWarnings, resolveConfig, withEnv } = await import('../server/config.js');
      const bad = (msg: string): Error => new ConfigError(msg);
      let config;
      let level: LogLevel;
      let format: LogFormat;
      try {
        config = resolveConfig(withEnv(o));
        level = oneOf('log-level', logLevel ?? process.env.FLOTILLA_LOG_LEVEL, LOG_LEVELS, 'info', bad);
        format = oneOf('log-format', logFormat ?? process.env.FLOTILLA_LOG_FORMAT, LOG_FORMATS, 'text', bad);
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
      const { BackendIoError } = await import('../kv/backend.js');
      const { MemberRemovedError } = await import('../server/member.js');
      // One logger for the whole process: the server, the member, the node and the transport.
      const logger = new OperatorLog({ level, format, member: config.name });
      const line = (lvl: LogLevel, msg: string) => logger.log(lvl, msg);
      const fatal = (cause: string, code: number): void => {
        line('error', `fatal: ${cause}; exiting with code ${code}`);
        process.exitCode = code;
      };
      // Before anything listens: a member that then fails to start has still said what is unsafe.
      for (const w of configWarnings(withEnv(o))) line('warn', w);
      for (const w of plainPeerWarnings(config)) line('warn', w);
      let server;
      try {
        server = await startServer(config, logger);
        const node = server.member.node;
        logger.term = () => node.status().term;
      } catch (e) {
        fatal(`cannot start: ${(e as Error).message}`, EXIT_CANNOT_START);
        // Whatever did start (timers, a peer listener) must not keep the process alive.
        process.exit(EXIT_CANNOT_START);
      }
      if (config.leaseReads) line('info', `lease reads on: the leader answers linearizable reads from its lease (election timeout ${config.electionMs} ms minus ${config.leaseDriftMs} ms for clock drift)`);
      if (config.unsafeFaultInjection) line('warn', 'fault injection is ON (--unsafe-fault-injection): for tests only');
      line('info', `member ${server.member.memberId.toString(16)} of cluster ${server.member.clusterId.toString(16)}: serving clients on ${config.listenClientUrls.map((u) => u.host).join(', ')}, peers on ${config.listenPeerUrls.map((u) => u.host).join(', ')}, data in ${config.dataDir}`);
      let stopping = false;
      void server.fatal.then(async (e) => {
        stopping = true;
        // Storage errors name their operation and file ("WAL fsync failed: EIO: ...", "backend
        // commit to <data-dir>/member/db failed: ..."); anything else is a bug. A removed member
        // says so ("this member was removed from the cluster: ...").
        const told = e instanceof StorageIoError || e instanceof BackendIoError || e instanceof MemberRemovedError;
        fatal(told ? e.message : `error in the Ready loop: ${e.message}`, EXIT_FATAL);
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
