export { formatHistory, parseHistory } from './history.js';
export type { HistoryOp, OpKind } from './history.js';
export { checkLinearizable, describeOp, DEFAULT_MAX_STATES_PER_KEY } from './linearizability.js';
export type { CheckFailure, CheckOptions, CheckResult } from './linearizability.js';
