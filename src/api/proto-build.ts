/**
 * Writes dist/api/protos.json: the .proto files pre-parsed (see proto.ts). Run by `npm run
 * build` after tsc.
 */
import { writeFileSync } from 'node:fs';
import { PROTOS_JSON } from './proto.js';
import { protosJson } from './proto-json.js';

writeFileSync(PROTOS_JSON, JSON.stringify(protosJson()));
