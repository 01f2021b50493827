// placeholder until the simulator lands
export function runSimCommand(_o: { seed: number; runs: number; nodes?: number; verbose?: boolean }, out: (l: string) => void): number {
  out('simulator not built yet');
  return 1;
}
