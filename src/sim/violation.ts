/** Thrown inside a simulation step when a safety or liveness property does not hold. */
export class InvariantViolation extends Error {
  override name = 'InvariantViolation';
  constructor(
    readonly invariant: string,
    message: string,
  ) {
    super(message);
  }
}
