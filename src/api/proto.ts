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
 *
 * The service definitions are made here from protobufjs's reflection, as proto-loader makes
 * them (the same paths, method aliases and conversions, src/api/proto.test.ts compares the two)
 * but without what only gRPC reflection uses: proto-loader also builds a descriptor of every
 * message type and encodes every file's, which cost a client command a fifth of its start.
 */
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** proto/ at the package root (the same depth from src/api and dist/api). */
export const PROTO_DIR = fileURLToPath(new URL('../../proto/', import.meta.url));

/** The pre-parsed .proto files beside this module (written by `npm run build`; absent in src/). */
export const PROTOS_JSON = fileURLToPath(new URL('./protos.json', import.meta.url));

/** proto-loader's options: how the text is read (keepCase, includeDirs) and how messages convert to objects (the rest). */
export const LOADER_OPTIONS = {
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

/** The service definitions by full name (`etcdserverpb.KV`, ...): services only, no message types. */
export type ServiceDefinitions = Readonly<Record<string, grpc.ServiceDefinition>>;

let cached: { definition: ServiceDefinitions } | null = null;

/** The .proto files parsed from their text, as proto-loader parses them (the same include directory, field names kept). */
export function parseProtos(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    if (isAbsolute(target)) return target;
    const p = join(PROTO_DIR, target);
    return existsSync(p) ? p : target;
  };
  root.loadSync([...PROTO_FILES], { keepCase: true });
  root.resolveAll();
  return root;
}

/** The files from PROTOS_JSON; null when it is absent or older than a .proto file. */
function preparsed(): protobuf.Root | null {
  let builtMs: number;
  try {
    builtMs = statSync(PROTOS_JSON).mtimeMs;
  } catch {
    return null;
  }
  for (const f of readdirSync(PROTO_DIR)) if (f.endsWith('.proto') && statSync(join(PROTO_DIR, f)).mtimeMs > builtMs) return null;
  const root = protobuf.Root.fromJSON(JSON.parse(readFileSync(PROTOS_JSON, 'utf8')) as protobuf.INamespace);
  root.resolveAll();
  return root;
}

/** lodash's camelCase of a method name, as proto-loader names a method's alias (`HashKV` -> `hashKv`). */
function camelCase(name: string): string {
  const words = name.match(/[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+/g) ?? [];
  return words.map((w, i) => (i === 0 ? w.toLowerCase() : w[0]!.toUpperCase() + w.slice(1).toLowerCase())).join('');
}

/** proto-loader's serializer: an object through fromObject to bytes (an array is refused, as there). */
function serializer(type: protobuf.Type): grpc.serialize<object> {
  return (arg) => {
    if (Array.isArray(arg)) throw new Error(`Failed to serialize message: expected object with ${type.name} structure, got array instead`);
    return type.encode(type.fromObject(arg)).finish() as Buffer;
  };
}

/** proto-loader's deserializer: bytes to an object converted with LOADER_OPTIONS. */
function deserializer(type: protobuf.Type): grpc.deserialize<object> {
  return (bytes) => type.toObject(type.decode(bytes), LOADER_OPTIONS);
}

/** Every service of `root` by full name, each method as proto-loader defines it for grpc-js. */
export function serviceDefinitions(root: protobuf.Root): ServiceDefinitions {
  const out: Record<string, grpc.ServiceDefinition> = {};
  const walk = (ns: protobuf.NamespaceBase, prefix: string): void => {
    for (const o of ns.nestedArray) {
      const name = prefix === '' ? o.name : `${prefix}.${o.name}`;
      if (o instanceof protobuf.Service) {
        const def: Record<string, grpc.MethodDefinition<object, object>> = {};
        for (const m of o.methodsArray) {
          const request = m.resolvedRequestType!;
          const response = m.resolvedResponseType!;
          def[m.name] = {
            path: `/${name}/${m.name}`,
            requestStream: !!m.requestStream,
            responseStream: !!m.responseStream,
            requestSerialize: serializer(request),
            requestDeserialize: deserializer(request),
            responseSerialize: serializer(response),
            responseDeserialize: deserializer(response),
            originalName: camelCase(m.name),
          };
        }
        out[name] = def;
      } else if (o instanceof protobuf.Namespace && !(o instanceof protobuf.Type)) {
        walk(o, name);
      }
    }
  };
  walk(root, '');
  return out;
}

let root: protobuf.Root | null = null;

/** The .proto files as one protobufjs Root, resolved (pre-parsed when built): the services', the gateway's and the fuzzer's. */
export function protoRoot(): protobuf.Root {
  root ??= preparsed() ?? parseProtos();
  return root;
}

export function loadProtos(): { definition: ServiceDefinitions } {
  cached ??= { definition: serviceDefinitions(protoRoot()) };
  return cached;
}

/** The service definition for `etcdserverpb.KV`, `v3lockpb.Lock`, ... */
export function serviceDefinition(fullName: string): grpc.ServiceDefinition {
  const { definition } = loadProtos();
  const def = definition[fullName];
  if (!def) throw new Error(`no service ${fullName} in the .proto files`);
  return def;
}

/** A client constructor for a service, e.g. `new (clientConstructor('etcdserverpb.KV'))(addr, creds)`. */
export function clientConstructor(fullName: string): grpc.ServiceClientConstructor {
  return grpc.makeGenericClientConstructor(serviceDefinition(fullName), fullName.split('.').pop()!);
}
