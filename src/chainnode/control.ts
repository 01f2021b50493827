/**
 * The chain's state in the control cluster (a Flotilla or etcd cluster). (The TCP framing
 * between chain nodes and their clients: wire.ts.)
 *
 *   /flotilla/chains/NAME/config        {"members":[...],"joining":null|name}; epoch = its mod revision
 *   /flotilla/chains/NAME/nodes/NODE    {"address":"host:port","caughtUpEpoch":n|null,"syncedEpoch":n|null}, under the node's lease
 *   /flotilla/chains/NAME/master        the masters' election
 *
 * Everything read from the control cluster or a socket is checked before use.
 */
import type { FlotillaClient } from '../client/client.js';
import { CHAIN_NAME_BYTES_MAX } from '../chain/codec.js';
import type { Registration } from '../chain/master.js';
import { configProblem, type ChainConfig } from '../chain/types.js';

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

export function parseRegistration(name: string, value: Buffer, createRevision: number): NodeInfo | null {
  const o = jsonObject(value);
  if (o === null) return null;
  const caughtUpEpoch = intOrNull(o.caughtUpEpoch ?? null);
  const syncedEpoch = intOrNull(o.syncedEpoch ?? null);
  if (typeof o.address !== 'string' || !/^[^\s:]+:\d{1,5}$/.test(o.address) || caughtUpEpoch === undefined || syncedEpoch === undefined) return null;
  return { address: o.address, registration: { name, createRevision, caughtUpEpoch, syncedEpoch } };
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
      const info = name.length > 0 && name.length <= CHAIN_NAME_BYTES_MAX ? parseRegistration(name, kv.value, Number(kv.createRevision)) : null;
      if (info) nodes.set(name, info);
    }
  }
  return { config, configRevision, nodes };
}
