/**
 * The .proto files as protobufjs JSON, parsed as @grpc/proto-loader parses them (proto.ts
 * parseProtos: the same include directory, field names kept as written): what `npm run build`
 * writes to dist/api/protos.json (proto-build.ts) and proto.ts loads instead of the text.
 */
import type protobuf from 'protobufjs';
import { parseProtos } from './proto.js';

export function protosJson(): protobuf.INamespace {
  return parseProtos().toJSON();
}
