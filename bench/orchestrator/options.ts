// Command-line flags of `npm run bench` (see bench/README.md) and their defaults.

export interface Options {
  quick: boolean;
  runs: number;
  warmupS: number;
  durationS: number;
  settleMs: number;
  idleConns: number;
  idleSources: number;
  idleSettleS: number;
  connectConcurrency: number;
  groups: Set<string> | undefined;
  profile: boolean;
  /** W6's one-node tunnel path with the node and the sidecar under --cpu-prof (tunnel-profile.ts). */
  profileW6: boolean;
  /** Window of the profiled W1 run (100 pairs, 64 B). */
  profileWindow: number;
  /** W6: wrk's keep-alive connections, and its warm-up and measured seconds per path (whole seconds: wrk takes no fractions). */
  w6Connections: number;
  w6WarmupS: number;
  w6DurationS: number;
  /** The raw relay writes each frame at once, as in the first round (for comparison; corked per turn by default). */
  uncorkedBaseline: boolean;
  /** W8: clients on the drained node, all reconnecting to the other. */
  stormClients: number;
}

export function parseOptions(argv: string[]): Options {
  const quick = argv.includes('--quick');
  const value = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i === -1 ? undefined : argv[i + 1];
  };
  const only = value('only')
    ?.split(',')
    .map((s) => s.trim().toUpperCase())
    .filter((s) => s !== '');
  const profile = argv.includes('--profile') || (only?.includes('PROFILE') ?? false);
  return {
    quick,
    runs: Number(value('runs') ?? (quick ? 1 : 3)),
    warmupS: Number(value('warmup') ?? (quick ? 0.3 : 0.5)),
    durationS: Number(value('duration') ?? (quick ? 1 : 1.5)),
    settleMs: 300,
    idleConns: Number(value('idle-conns') ?? 15000),
    idleSources: 8,
    idleSettleS: quick ? 2 : 3,
    connectConcurrency: 64,
    groups: only === undefined ? undefined : new Set(only),
    profile,
    profileW6: argv.includes('--profile-w6') || (only?.includes('PROFILE-W6') ?? false),
    profileWindow: Number(value('profile-window') ?? 10),
    w6Connections: Number(value('w6-connections') ?? 50),
    w6WarmupS: 1,
    w6DurationS: Math.max(1, Math.round(Number(value('w6-duration') ?? (quick ? 2 : 5)))),
    uncorkedBaseline: argv.includes('--uncorked-baseline'),
    stormClients: Number(value('storm-clients') ?? 10_000),
  };
}
