export { runSimulation, Simulation, FAULT_KINDS, describeMessage } from './simulation.js';
export type { SimDriver } from './simulation.js';
export type { CoreFactory, FaultKind, SimFailure, SimOptions, SimResult, SimStats } from './simulation.js';
export { runSweep, formatFailure } from './sweep.js';
export type { SweepOptions, SweepSummary } from './sweep.js';
export { InvariantViolation } from './violation.js';
