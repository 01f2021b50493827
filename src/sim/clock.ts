/**
 * A member's clock in the simulator: virtual (real) time seen through a rate, forward jumps and
 * pauses. Readings and real times are in virtual microseconds. Until a fault touches it, a
 * clock reads `real / drift` exactly as the simulator's clocks always did (so runs without clock
 * faults stay what they were).
 *
 * Faults: `setRate` (the clock runs fast or slow from now on), `jump` (it leaps forward),
 * `pause` / `resume` (it stops, then goes on from where it stopped: the time in between is lost
 * to it, as for a VM whose clock is frozen while it is descheduled).
 */
export class SimClock {
  /** Clock µs per real µs. */
  private rate: number;
  private anchorReal = 0;
  private anchorClock = 0;
  private stopped = false;
  /** No fault has touched this clock: timers use the original formula. */
  private pristine = true;

  constructor(readonly drift: number) {
    this.rate = 1 / drift;
  }

  /** No fault has touched this clock yet. */
  get isPristine(): boolean {
    return this.pristine;
  }

  get paused(): boolean {
    return this.stopped;
  }

  get currentRate(): number {
    return this.stopped ? 0 : this.rate;
  }

  /** The reading at real time `real`. */
  read(real: number): number {
    if (this.pristine) return real / this.drift;
    if (this.stopped) return this.anchorClock;
    return this.anchorClock + (real - this.anchorReal) * this.rate;
  }

  /** Real µs from `real` until this clock has advanced by `clockUs` (Infinity while stopped). */
  realDelay(clockUs: number, real: number): number {
    if (this.pristine) return Math.ceil(clockUs * this.drift);
    if (this.stopped) return Infinity;
    const target = this.read(real) + clockUs;
    return Math.max(0, Math.ceil(this.anchorReal + (target - this.anchorClock) / this.rate - real));
  }

  /** Real µs from `real` until this clock reads `reading` (0 if it already does; Infinity while stopped). */
  realUntil(reading: number, real: number): number {
    const now = this.read(real);
    if (now >= reading) return 0;
    return this.realDelay(reading - now, real);
  }

  private reanchor(real: number): void {
    this.anchorClock = this.read(real);
    this.anchorReal = real;
    this.pristine = false;
  }

  setRate(rate: number, real: number): void {
    if (!(rate > 0)) throw new RangeError(`clock rate must be positive, got ${rate}`);
    this.reanchor(real);
    this.rate = rate;
  }

  jump(deltaUs: number, real: number): void {
    if (!(deltaUs >= 0)) throw new RangeError(`a clock only jumps forward, got ${deltaUs}`);
    this.reanchor(real);
    this.anchorClock += deltaUs;
  }

  pause(real: number): void {
    this.reanchor(real);
    this.stopped = true;
  }

  resume(real: number): void {
    if (!this.stopped) return;
    this.anchorReal = real;
    this.stopped = false;
  }
}
