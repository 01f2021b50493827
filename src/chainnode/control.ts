/**
 * The chain's state in the control cluster (a Flotilla or etcd cluster). (The TCP framing
 * between chain nodes and their clients: wire.ts.)
 *
 *   /flotilla/chains/NAME/config        {"members":[...],"joining":null|name}; epoch = its mod revision
 *   /flotilla/chains/NAME/nodes/NODE    {"address":"host:port","caughtUpEpoch":n|null,"syncedEpoch":n|null}, under the node's lease
 *                                       (written only by a txn: see ChainNodeProcess's registration)
 *   /flotilla/chains/NAME/master        the masters' election
 *
 * Everything read from the control cluster or a socket is checked before use.
 */
import { FlotillaClient } from '../client/client.js';
import type { Credentials } from '../client/connection.js';
import { ClientError, DialError } from '../client/errors.js';
import type { ClientTlsOptions } from '../client/tls.js';
import { CHAIN_NAME_BYTES_MAX } from '../chain/codec.js';
import type { Registration } from '../chain/master.js';
import { configProblem, type ChainConfig } from '../chain/types.js';

/**
 * How a chain process (node, master, client) reaches the control cluster when it runs with
 * client TLS and/or auth: etcdctl's --cacert/--cert/--key and --user (src/cli/command.ts reads
 * them), handed to FlotillaClient as they are.
 */
export interface ControlAccess {
  readonly tls?: ClientTlsOptions;
  readonly auth?: Credentials;
}

/** Deadline of one request to the control cluster. */
export const CHAIN_CONTROL_REQUEST_TIMEOUT_MS = 3000;

export function controlClient(endpoints: readonly string[], access: ControlAccess = {}): FlotillaClient {
  return new FlotillaClient({ endpoints: [...endpoints], requestTimeoutMs: CHAIN_CONTROL_REQUEST_TIMEOUT_MS, ...(access.tls ? { tls: access.tls } : {}), ...(access.auth ? { auth: access.auth } : {}) });
}

/**
 * Refusals of the control cluster that asking again will not cure: a wrong password, a user
 * without the permissions the chain's keys need, credentials missing while auth is on, a TLS
 * failure (a certificate not trusted, refused, expired). A chain process stops on these with
 * etcd's own text instead of retrying forever.
 */
const FINAL_REFUSALS = /^(etcdserver: (authentication failed, invalid user ID or password|permission denied|user name is empty|user name not found|role is not granted to the user)|auth: authentication failed, password was given for no password user)$/;

/** etcd's text of a refusal that retrying will not cure (FINAL_REFUSALS), or null. */
export function controlRefusal(e: unknown): string | null {
  if (e instanceof DialError) return e.tls ? e.details : null;
  if (e instanceof ClientError && FINAL_REFUSALS.test(e.details)) return e.details;
  return null;
}

/** Longest chain name (it is part of keys). */
export const CHAIN_NAME_MAX = 64;

export function checkChainName(s: string, what = 'chain name'): string {
  if (!/^[A-Za-z0-9._-]+$/.test(s) || s.length > CHAIN_NAME_MAX) throw new Error(`${what} must be 1..${CHAIN_NAME_MAX} of A-Z a-z 0-9 . _ -, got ${JSON.stringify(s)}`);
  return s;
}

export const chainPrefix = (chain: string): string => `/flotilla/chains/${chain}/`;
export const configKey = (chain: string): string => `${chainPrefix(chain)}config`;
export const nodesPrefix = (chain: string): string => `${chainPrefix(chain)}nodes/`;
export const masterElection = (chain: string): string => `${chainPrefix(chain)}master`;

export interface NodeInfo {
  readonly address: string;
  readonly registration: Registration;
  /**
   * The lease the key is under (etcd's KeyValue.lease). A node checks it is its own: a delayed
   * write of its previous run may have put the key under that run's lease (0n: unknown).
   */
  readonly lease: bigint;
}

export interface ChainView {
  readonly config: ChainConfig | null;
  /** The configuration's mod revision (0: none). */
  readonly configRevision: bigint;
  readonly nodes: ReadonlyMap<string, NodeInfo>;
}

function intOrNull(v: unknown): number | null | undefined {
  if (v === null) return null;
  return Number.isSafeInteger(v) && (v as number) >= 0 ? (v as number) : undefined;
}

/** A JSON object from the control cluster, or null for anything else. */
function jsonObject(value: Buffer): Record<string, unknown> | null {
  let v: unknown;
  try {
    v = JSON.parse(value.toString('utf8'));
  } catch {
    return null;
  }
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

export function parseConfig(value: Buffer, epoch: number): ChainConfig | null {
  const o = jsonObject(value);
  if (o === null) return null;
  if (!Array.isArray(o.members) || !o.members.every((m) => typeof m === 'string')) return null;
  if (!(o.joining === null || typeof o.joining === 'string')) return null;
  const c: ChainConfig = { epoch, members: o.members as string[], joining: o.joining as string | null };
  return configProblem(c) === null ? c : null;
}

export function parseRegistration(name: string, value: Buffer, createRevision: number, lease = 0n): NodeInfo | null {
  const o = jsonObject(value);
  if (o === null) return null;
  const caughtUpEpoch = intOrNull(o.caughtUpEpoch ?? null);
  const syncedEpoch = intOrNull(o.syncedEpoch ?? null);
  if (typeof o.address !== 'string' || !/^[^\s:]+:\d{1,5}$/.test(o.address) || caughtUpEpoch === undefined || syncedEpoch === undefined) return null;
  return { address: o.address, registration: { name, createRevision, caughtUpEpoch, syncedEpoch }, lease };
}

/** The configuration and the registered nodes, at one revision (one linearizable range read). */
export async function readChain(client: FlotillaClient, chain: string): Promise<ChainView> {
  const r = await client.get(chainPrefix(chain), { prefix: true });
  let config: ChainConfig | null = null;
  let configRevision = 0n;
  const nodes = new Map<string, NodeInfo>();
  const np = nodesPrefix(chain);
  for (const kv of r.kvs) {
    const key = kv.keyString();
    if (key === configKey(chain)) {
      configRevision = kv.modRevision;
      config = parseConfig(kv.value, Number(kv.modRevision));
    } else if (key.startsWith(np)) {
      const name = key.slice(np.length);
      const info = name.length > 0 && name.length <= CHAIN_NAME_BYTES_MAX ? parseRegistration(name, kv.value, Number(kv.createRevision), kv.lease) : null;
      if (info) nodes.set(name, info);
    }
  }
  return { config, configRevision, nodes };
}
