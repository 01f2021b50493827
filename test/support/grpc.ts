/** Minimal promise wrappers over the raw gRPC services, for tests that need exact wire behaviour. */
import * as grpc from '@grpc/grpc-js';
import { clientConstructor } from '../../src/api/proto.js';

export type Wire = Record<string, unknown>;

export interface RawClient {
  call(service: string, method: string, req: Wire, timeoutMs?: number): Promise<Wire>;
  client(service: string): grpc.Client & Record<string, (...a: unknown[]) => unknown>;
  close(): void;
}

export function rawClient(endpoint: string): RawClient {
  const clients = new Map<string, grpc.Client & Record<string, (...a: unknown[]) => unknown>>();
  const client = (service: string) => {
    let c = clients.get(service);
    if (!c) {
      const Ctor = clientConstructor(service);
      c = new Ctor(endpoint, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': 8 * 1024 * 1024 }) as never;
      clients.set(service, c!);
    }
    return c!;
  };
  return {
    client,
    call(service, method, req, timeoutMs = 10_000) {
      const c = client(service);
      return new Promise((resolve, reject) => {
        (c[method] as (r: Wire, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: Wire) => void) => void).call(c, req, { deadline: Date.now() + timeoutMs }, (e, r) => (e ? reject(e) : resolve(r!)));
      });
    },
    close() {
      for (const c of clients.values()) c.close();
    },
  };
}
