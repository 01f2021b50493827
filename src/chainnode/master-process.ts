/**
 * `flotilla chain-master`: the chain's master as an elected role. Any number may run; the one
 * elected (Flotilla's Election API, /flotilla/chains/NAME/master) reads the configuration and the
 * registrations every interval and writes nextConfig() by compare-and-swap on the
 * configuration's revision (a txn comparing its mod revision), so a deposed master that still
 * believes it leads can never overwrite a newer configuration.
 */
import type { FlotillaClient } from '../client/client.js';
import { Cmp, Op } from '../client/requests.js';
import { nextConfig } from '../chain/master.js';
import { checkChainName, configKey, controlClient, controlRefusal, masterElection, readChain, type ControlAccess } from './control.js';

export interface ChainMasterOptions {
  readonly chain: string;
  readonly control: readonly string[];
  /** TLS and credentials for the control cluster (etcdctl's --cacert/--cert/--key, --user). */
  readonly controlAccess?: ControlAccess;
  /** This master's name in the election. */
  readonly name: string;
  readonly intervalMs?: number;
  readonly membersMax?: number;
  readonly bootstrapMembers?: number;
  readonly log?: (line: string) => void;
}

export class ChainMaster {
  private stopped = false;
  private readonly client: FlotillaClient;
  private loop: Promise<void> | null = null;
  private failWith!: (e: Error) => void;
  /** Resolves when the master stops for good: the control cluster refused it (a wrong password, no permission). */
  readonly fatal: Promise<Error> = new Promise((r) => (this.failWith = r));

  constructor(private readonly o: ChainMasterOptions) {
    checkChainName(o.chain);
    this.client = controlClient(o.control, o.controlAccess);
  }

  private log(line: string): void {
    this.o.log?.(`chain ${this.o.chain} master ${this.o.name}: ${line}`);
  }

  start(): void {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.client.campaign(masterElection(this.o.chain), this.o.name, { ttl: 5 });
        this.log('elected');
        while (!this.stopped) {
          await this.round();
          await new Promise((r) => setTimeout(r, this.o.intervalMs ?? 300));
        }
      } catch (e) {
        const refused = controlRefusal(e);
        if (refused !== null && !this.stopped) {
          this.log(`the control cluster refused: ${refused}`);
          this.failWith(new Error(`the control cluster refused: ${refused}`));
          this.stopped = true;
          await this.client.close();
          return;
        }
        if (!this.stopped) this.log(`lost the role or the control cluster: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /** One decision: read, compute, compare-and-swap. Returns the new epoch if it wrote one. */
  async round(): Promise<number | null> {
    const v = await readChain(this.client, this.o.chain);
    const next = nextConfig(v.config, [...v.nodes.values()].map((n) => n.registration), { membersMax: this.o.membersMax ?? 5, bootstrapMembers: this.o.bootstrapMembers ?? 1 });
    if (next === null) return null;
    const key = configKey(this.o.chain);
    const r = await this.client.txn({ compare: [Cmp.modRevision(key, '=', v.configRevision)], success: [Op.put(key, JSON.stringify(next))] });
    if (!r.succeeded) return null;
    this.log(`epoch ${r.header.revision}: [${next.members.join(', ')}]${next.joining ? ` joining ${next.joining}` : ''}`);
    return Number(r.header.revision);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.client.close();
    await this.loop?.catch(() => {});
  }
}
