// The bench's model: what a workload is, how its metrics are judged, and what
// a group of workloads yields. Types only, shared by the workload
// definitions (workloads.ts, tunnel-workloads.ts), the statistics and the
// report, so none of those needs another's module for a type.
import type { Options } from './options';
import type { Deployment, Launch, SystemName, Topology } from './systems';
import type { TokenFiles } from './tokens';

/** One run's figures, as loadgen (or a workload's own measuring) reports them. */
export type Measurement = Record<string, number | string>;

/**
 * `ratio`: switchboard/baseline of the medians must be ≥ min. `ratioAtMost`: … ≤ max (latency).
 * `max`: switchboard's median must be ≤ value. `overBaseline`: ≤ the baseline's median + value.
 */
export type Target =
  | { kind: 'ratio'; min: number }
  | { kind: 'ratioAtMost'; max: number }
  | { kind: 'max'; value: number }
  | { kind: 'overBaseline'; value: number };

export interface MetricSpec {
  key: string;
  label: string;
  /** `count`: a plain number, such as Redis commands per message or clients lost. */
  unit: 'msg/s' | 'µs' | 'ms' | 'B' | 'conn/s' | 'req/s' | 'MB/s' | 'MiB' | 'setup/s' | 'count';
  target?: Target;
}

export interface RoundContext {
  options: Options;
  tokens: TokenFiles;
  /** This round's measurements so far, by workload id then system. */
  results: Map<string, Partial<Record<SystemName, Measurement>>>;
}

export interface Workload {
  id: string;
  title: string;
  params: Record<string, number | string>;
  metrics: MetricSpec[];
  /** How Switchboard's nodes are started (default `bench`); honoured by groups that deploy per measurement. */
  launch?: Launch;
  measure(d: Deployment, ctx: RoundContext): Promise<Measurement>;
}

export interface Group {
  name: string;
  title: string;
  topology: Topology;
  /** Start new servers for every measurement (memory, connect storms) instead of once per round. */
  freshPerMeasurement: boolean;
  workloads: Workload[];
}

/**
 * A group that deploys its own systems and runs its own rounds: other systems paired into rows
 * (W6), or Switchboard alone in a deployment of its own (W8). `tokens`: the run's token files.
 */
export interface OwnRoundsGroup {
  name: string;
  title: string;
  run(o: Options, log: (line: string) => void, tokens: TokenFiles): Promise<WorkloadResult[]>;
}

export interface Stat {
  median: number;
  min: number;
  max: number;
  n: number;
}

export interface MetricResult {
  key: string;
  label: string;
  unit: string;
  baseline?: Stat;
  switchboard?: Stat;
  ratio?: number;
  target?: Target;
  met?: boolean;
}

export interface WorkloadResult {
  id: string;
  group: string;
  title: string;
  params: Record<string, number | string>;
  runs: Record<SystemName, (Measurement | { failed: string })[]>;
  metrics: MetricResult[];
}
