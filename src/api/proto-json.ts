/**
 * The .proto files as protobufjs JSON, parsed as @grpc/proto-loader parses them (the same
 * include directory, field names kept as written): what `npm run build` writes to
 * dist/api/protos.json (proto-build.ts) and proto.ts loads with proto-loader's fromJSON.
 */
import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import protobuf from 'protobufjs';
import { PROTO_DIR, PROTO_FILES } from './proto.js';

export function protosJson(): protobuf.INamespace {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    if (isAbsolute(target)) return target;
    const p = join(PROTO_DIR, target);
    return existsSync(p) ? p : target;
  };
  root.loadSync([...PROTO_FILES], { keepCase: true });
  root.resolveAll();
  return root.toJSON();
}
