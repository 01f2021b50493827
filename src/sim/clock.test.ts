import { describe, expect, it } from 'vitest';
import { SimClock } from './clock.js';

describe('SimClock', () => {
  it('reads real / drift until a fault touches it', () => {
    const c = new SimClock(1.05);
    expect(c.isPristine).toBe(true);
    expect(c.read(1050)).toBe(1000);
    expect(c.realDelay(1000, 0)).toBe(1050);
  });

  it('changes rate from the moment it is set, without a jump', () => {
    const c = new SimClock(1);
    c.setRate(2, 1000);
    expect(c.isPristine).toBe(false);
    expect(c.read(1000)).toBe(1000);
    expect(c.read(1500)).toBe(2000);
    expect(c.realDelay(1000, 1500)).toBe(500);
    expect(c.realUntil(3000, 1500)).toBe(500);
    expect(c.realUntil(1000, 1500)).toBe(0);
  });

  it('jumps forward only', () => {
    const c = new SimClock(1);
    c.jump(700, 100);
    expect(c.read(100)).toBe(800);
    expect(c.read(200)).toBe(900);
    expect(() => c.jump(-1, 200)).toThrow(RangeError);
  });

  it('stops and goes on from where it stopped: the time between is lost to it', () => {
    const c = new SimClock(1);
    c.pause(100);
    expect(c.paused).toBe(true);
    expect(c.read(500)).toBe(100);
    expect(c.realDelay(10, 500)).toBe(Infinity);
    c.resume(500);
    expect(c.read(500)).toBe(100);
    expect(c.read(600)).toBe(200);
    expect(c.realUntil(300, 600)).toBe(100);
  });
});
