/**
 * What the dashboard (src/ui/web, bundled into dist/ui) and the member's dashboard routes
 * (src/server/ui-http.ts) agree on: the paths, and the JSON of `GET /ui/api/status`.
 * Types and constants only: imported by the browser bundle and by the server alike.
 */

/** The dashboard's static files, served from dist/ui under UI_PREFIX; nothing else is. */
export const UI_PREFIX = '/ui/';
export const UI_STATUS_PATH = '/ui/api/status';
/** GET /ui/api/history[?since=MS]: the member's chart samples (UiHistory) taken after `since`. */
export const UI_HISTORY_PATH = '/ui/api/history';
/** The members' trace ring (issue 16 item 2; served by the ops routes once the clocks work is in). */
export const TRACE_PATH = '/debug/trace';

/** One histogram as cumulative counts per upper bound (Prometheus buckets, without +Inf), plus the total count. */
export interface UiHistogram {
  readonly bounds: readonly number[];
  readonly counts: readonly number[];
  readonly count: number;
}

/** What this member knows of one peer. */
export interface UiPeer {
  /** Member id, hex (as etcdctl prints it). */
  readonly id: string;
  readonly raftId: number;
  /** When this member last received a frame from it (ms since epoch); 0 = never. */
  readonly lastContactMs: number;
  /** Only on the leader: the peer's match index and how far it is behind the leader's last index. */
  readonly match?: number;
  readonly lag?: number;
  /** Only on the leader: Raft's replication state of the peer (probe / replicate / snapshot). */
  readonly state?: string;
}

/** GET /ui/api/status: one member's own view, cheap to produce (no Raft round). */
export interface UiStatus {
  /** Server time (ms since epoch) when the answer was made. */
  readonly now: number;
  readonly name: string;
  /** Member and cluster id, hex. */
  readonly id: string;
  readonly clusterId: string;
  readonly raftId: number;
  readonly role: string;
  readonly isLearner: boolean;
  readonly term: number;
  /** The leader's member id (hex), '' when none is known. */
  readonly leader: string;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastIndex: number;
  readonly revision: number;
  readonly compactRevision: number;
  readonly keys: number;
  readonly dbSizeBytes: number;
  readonly authEnabled: boolean;
  /** The start-up fdatasync verdict (disk-check.ts) and slow syncs seen since. */
  readonly disk: { readonly verdict: string; readonly good: boolean; readonly p99Ms: number; readonly slowFdatasyncs: number } | null;
  /** Active alarms of the cluster (any member's), as Maintenance.Alarm lists them. */
  readonly alarms: readonly { readonly memberId: string; readonly alarm: string }[];
  /** The members as this member's replicated table has them. */
  readonly members: readonly { readonly id: string; readonly name: string; readonly clientUrls: readonly string[]; readonly peerUrls: readonly string[]; readonly isLearner: boolean }[];
  readonly peers: readonly UiPeer[];
  /** Cumulative counters and histograms; the dashboard charts their rates and quantiles. */
  readonly counters: {
    /** KV Range calls handled. */
    readonly reads: number;
    /** KV Put, DeleteRange, Txn and Compact calls handled. */
    readonly writes: number;
    readonly leaderChanges: number;
    readonly proposalsFailed: number;
  };
  /** Unary client call latency (grpc_server_handling_seconds, all KV methods), seconds. */
  readonly latency: UiHistogram;
  /** WAL fdatasync latency (etcd_disk_wal_fsync_duration_seconds), seconds. */
  readonly walFsync: UiHistogram;
}

/** Observations of one histogram during one sample's interval: counts per bound of the history's bounds (cumulative), [] when there were none. */
export interface UiHistogramDelta {
  readonly counts: readonly number[];
  readonly count: number;
}

/** What one member counted during one sampling interval (UI_HISTORY_INTERVAL_MS, src/server/ui-history.ts). */
export interface UiSample {
  /** When the interval ended (ms since epoch; intervals end on whole seconds, a few ms after). */
  readonly t: number;
  /** The interval's length, ms. */
  readonly dtMs: number;
  readonly writes: number;
  readonly reads: number;
  readonly leaderChanges: number;
  readonly latency: UiHistogramDelta;
  readonly walFsync: UiHistogramDelta;
}

/** GET /ui/api/history: the member's recent samples, oldest first (at most `samplesMax`, one per `intervalMs`). */
export interface UiHistory {
  readonly now: number;
  readonly intervalMs: number;
  readonly samplesMax: number;
  /** Upper bounds (seconds) of the samples' latency and WAL fdatasync counts. */
  readonly latencyBounds: readonly number[];
  readonly walFsyncBounds: readonly number[];
  readonly samples: readonly UiSample[];
}
