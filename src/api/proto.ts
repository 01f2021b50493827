/**
 * Loads Flotilla's .proto files (proto/, etcd v3.4's wire format) for servers, the gateway and
 * the client. Objects follow @grpc/proto-loader's conventions: snake_case field names as in the
 * .proto, 64-bit integers as decimal strings, enums as their names, bytes as Buffer, defaults
 * filled in, and the set member of a oneof named by its oneof field.
 *
 * Pre-parsed: `npm run build` writes the files as protobufjs JSON beside the built module
 * (dist/api/protos.json, by proto-build.ts); loading that skips parsing the .proto text at every
 * start of a CLI command. From src/ (tests), or when a .proto file is newer than the JSON, the
 * text is parsed as before.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** proto/ at the package root (the same depth from src/api and dist/api). */
export const PROTO_DIR = fileURLToPath(new URL('../../proto/', import.meta.url));

/** The pre-parsed .proto files beside this module (written by `npm run build`; absent in src/). */
export const PROTOS_JSON = fileURLToPath(new URL('./protos.json', import.meta.url));

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

/** gRPC metadata of a session read (a Flotilla extension): the member answers a serializable
 * Range only once it has applied this revision — the highest the client has seen. */
export const MIN_REVISION_METADATA = 'flotilla-min-revision';

/**
 * grpc-js's wording (in an UNAVAILABLE status) for a call that failed because no connection
 * existed, so the request never left. Anything else UNAVAILABLE — "Connection dropped" above all
 * — may have reached the server and been applied: retrying such a write could apply it twice.
 */
export const NOT_SENT_DETAILS = /No connection established|failed to connect|ECONNREFUSED|Connection refused|Name resolution failed/i;

/** The .proto files whose services the client port serves (the fuzzer enumerates their methods). */
export const PROTO_FILES: readonly string[] = ['rpc.proto', 'v3election.proto', 'v3lock.proto'];

let cached: { definition: protoLoader.PackageDefinition; pkg: grpc.GrpcObject } | null = null;

/** The package definition from PROTOS_JSON; null when it is absent or older than a .proto file. */
function preparsed(): protoLoader.PackageDefinition | null {
  let builtMs: number;
  try {
    builtMs = statSync(PROTOS_JSON).mtimeMs;
  } catch {
    return null;
  }
  for (const f of readdirSync(PROTO_DIR)) if (f.endsWith('.proto') && statSync(join(PROTO_DIR, f)).mtimeMs > builtMs) return null;
  return protoLoader.fromJSON(JSON.parse(readFileSync(PROTOS_JSON, 'utf8')) as Parameters<typeof protoLoader.fromJSON>[0], LOADER_OPTIONS);
}

export function loadProtos(): { definition: protoLoader.PackageDefinition; pkg: grpc.GrpcObject } {
  if (!cached) {
    const definition = preparsed() ?? protoLoader.loadSync([...PROTO_FILES], LOADER_OPTIONS);
    cached = { definition, pkg: grpc.loadPackageDefinition(definition) };
  }
  return cached;
}

/** The service definition for `etcdserverpb.KV`, `v3lockpb.Lock`, ... */
export function serviceDefinition(fullName: string): grpc.ServiceDefinition {
  const { definition } = loadProtos();
  const def = definition[fullName];
  if (!def || !('Range' in def || Object.values(def).some((m) => typeof m === 'object' && m !== null && 'path' in m))) {
    throw new Error(`no service ${fullName} in the .proto files`);
  }
  return def as grpc.ServiceDefinition;
}

/** A client constructor for a service, e.g. `new (clientConstructor('etcdserverpb.KV'))(addr, creds)`. */
export function clientConstructor(fullName: string): grpc.ServiceClientConstructor {
  return grpc.makeGenericClientConstructor(serviceDefinition(fullName), fullName.split('.').pop()!);
}
