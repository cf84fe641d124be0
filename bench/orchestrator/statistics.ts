// Statistics over a workload's runs: median, min and max per system, the ratio
// switchboard/baseline of the medians, and whether the target is met.
import type { SystemName } from './systems';
import type { MetricResult, Stat, Workload, WorkloadResult } from './model';

function stat(values: number[]): Stat | undefined {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const mid = Math.floor(v.length / 2);
  const median = v.length % 2 === 1 ? (v[mid] ?? NaN) : ((v[mid - 1] ?? NaN) + (v[mid] ?? NaN)) / 2;
  return { median, min: v[0] ?? NaN, max: v[v.length - 1] ?? NaN, n: v.length };
}

export function median(list: number[]): number {
  return stat(list)?.median ?? NaN;
}

export function evaluate(w: Pick<Workload, 'id' | 'title' | 'params' | 'metrics'>, group: string, runs: WorkloadResult['runs']): WorkloadResult {
  const values = (system: SystemName, key: string) =>
    runs[system].flatMap((m) => (!('failed' in m) && typeof m[key] === 'number' ? [m[key]] : []));
  const metrics = w.metrics.map((spec): MetricResult => {
    const baseline = stat(values('raw', spec.key));
    const switchboard = stat(values('switchboard', spec.key));
    const ratio = baseline !== undefined && switchboard !== undefined && baseline.median !== 0 ? switchboard.median / baseline.median : undefined;
    const t = spec.target;
    let met: boolean | undefined;
    if (t?.kind === 'ratio') met = ratio !== undefined && ratio >= t.min;
    else if (t?.kind === 'ratioAtMost') met = ratio !== undefined && ratio <= t.max;
    else if (t?.kind === 'max') met = switchboard !== undefined && switchboard.median <= t.value;
    else if (t?.kind === 'overBaseline') met = switchboard !== undefined && baseline !== undefined && switchboard.median <= baseline.median + t.value;
    return { key: spec.key, label: spec.label, unit: spec.unit, baseline, switchboard, ratio, target: spec.target, met };
  });
  return { id: w.id, group, title: w.title, params: w.params, runs, metrics };
}
