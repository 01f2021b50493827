/** The parts of hpack.js (RFC 7541 HPACK, untyped) that src/api/h2-authority.ts uses. */
declare module 'hpack.js' {
  import type { Duplex } from 'node:stream';
  export interface Header {
    name: string;
    value: string;
    neverIndex?: boolean;
    huffman?: boolean;
  }
  interface Options {
    /** The dynamic table bound, bytes (hpack.js reads `maxSize`; any other key means no bound). */
    table: { maxSize: number };
  }
  export interface Decompressor extends Duplex {
    execute(): void;
    read(): Header | null;
  }
  export interface Compressor extends Duplex {
    read(): Buffer | null;
  }
  const hpack: {
    decompressor: { create(o: Options): Decompressor };
    compressor: { create(o: Options): Compressor };
  };
  export default hpack;
}
