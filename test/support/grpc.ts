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

/**
 * The index (into `endpoints`) of the member a majority of them name as leader, the leader
 * itself among them (Maintenance.Status); members that do not answer count as not agreeing.
 * Asked again every 100 ms until `timeoutMs`.
 */
export async function leaderIndex(endpoints: readonly string[], timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answers = await Promise.all(
      endpoints.map(async (e, i) => {
        const cl = rawClient(e);
        try {
          const s = await cl.call('etcdserverpb.Maintenance', 'Status', {}, 2000);
          return { i, id: String((s.header as Wire).member_id), leader: String(s.leader) };
        } catch {
          return null;
        } finally {
          cl.close();
        }
      }),
    );
    const self = answers.find((a) => a && a.leader !== '0' && a.id === a.leader);
    if (self && answers.filter((a) => a && a.leader === self.id).length > endpoints.length / 2) return self.i;
    if (Date.now() > deadline) throw new Error(`no leader agreed on by a majority of ${endpoints.join(', ')} within ${timeoutMs} ms: ${JSON.stringify(answers)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
