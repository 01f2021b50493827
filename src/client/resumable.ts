/**
 * The reconnect loop shared by the client's long-lived streams (watch, lease keep-alive,
 * election observe): run one stream at a time, and when it fails move to the next endpoint and
 * open it again, until the owner stops it or it ends for good.
 */
import { ClientError, toClientError } from './errors.js';
import { retryable, sleep, type Connections } from './connection.js';

/** Pause before reopening a failed stream on the next endpoint. */
export const RESUME_DELAY_MS = 50;
/** Pause after every endpoint in turn has failed. */
export const RESUME_ROUND_DELAY_MS = 500;

export abstract class Resumable {
  /** The endpoint the current stream runs on (undefined while reconnecting). */
  endpoint: string | undefined;
  /** Resolves when the stream is over: undefined when stopped by its owner, else why it ended. */
  readonly done: Promise<ClientError | undefined>;
  protected stopped = false;
  private resolveDone!: (e: ClientError | undefined) => void;
  private failures = 0;

  constructor(protected readonly conns: Connections) {
    this.done = new Promise((r) => (this.resolveDone = r));
  }

  /**
   * Open the stream on `endpoint` (already dialled) and resolve when it ends or fails; call
   * `connected()` once it works and `finish()` to end for good.
   */
  protected abstract attempt(endpoint: string): Promise<void>;

  /** Checked before every (re)connect: a reason to stop retrying for good, if any. */
  protected giveUp(): ClientError | undefined {
    return undefined;
  }

  /** Start the loop (subclasses call this at the end of their constructor). */
  protected start(): void {
    void this.loop();
  }

  private async loop(): Promise<void> {
    let ep = this.conns.order()[0]!;
    while (!this.stopped) {
      const reason = this.giveUp();
      if (reason) {
        this.finish(reason);
        break;
      }
      try {
        await this.conns.dial(ep);
        // A stream refused for its token reopens with a fresh one; credentials the cluster
        // refuses (wrong password) end the stream for good instead of retrying forever.
        const authFailure = await this.conns.ensureAuth().then(
          () => undefined,
          (e: unknown) => toClientError(e, ep),
        );
        if (authFailure && !retryable(authFailure, 'read')) {
          this.finish(authFailure);
          break;
        }
        if (authFailure) throw authFailure;
        if (this.stopped) break;
        await this.attempt(ep);
      } catch {
        // A dial failure: try the next endpoint like any other failure.
      }
      this.endpoint = undefined;
      if (this.stopped || this.conns.isClosed) break;
      this.conns.markFailed(ep);
      this.failures++;
      const n = this.conns.endpoints.length;
      ep = this.conns.endpoints[(this.conns.endpoints.indexOf(ep) + 1) % n]!;
      await sleep(this.failures % n === 0 ? RESUME_ROUND_DELAY_MS : RESUME_DELAY_MS);
    }
    this.finish(undefined);
  }

  /** The stream on `endpoint` works: reset the failure count. */
  protected connected(endpoint: string): void {
    this.endpoint = endpoint;
    this.failures = 0;
    this.conns.markOk(endpoint);
  }

  /** End for good, reporting `err` (undefined = stopped by the owner). Only the first call counts. */
  protected finish(err: ClientError | undefined): void {
    this.stopped = true;
    this.resolveDone(err);
  }
}
