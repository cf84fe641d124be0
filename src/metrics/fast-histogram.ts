// A histogram with one label for the per-message path. prom-client's observe
// builds a closure and hashes the label object on every call (~5 % of a busy
// sending node's CPU, bench W2; one observe per delivered message); here a
// series is looked up once and an observation is a bucket search and three
// additions. prom-client's registry reads metrics through `get()`, so this one
// is registered, scraped and printed exactly like prom-client's histograms
// (cumulative `_bucket` with `le`, `+Inf`, `_sum`, `_count`).
import type { Registry } from 'prom-client';

export class HistogramSeries {
  private readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(value: number): void {
    const { bounds } = this;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] ?? Infinity)) i++;
    if (i < bounds.length) this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.sum += value;
    this.count++;
  }

  /** Cumulative counts per bound (what `le` means). */
  cumulative(): number[] {
    let total = 0;
    return Array.from(this.counts, (n) => (total += n));
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

interface Sample {
  labels: Record<string, string | number>;
  value: number;
  metricName: string;
}

export class FastHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series = new Map<string, HistogramSeries>();

  /** `values` are the label's values, each series created (at zero) up front. */
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly label: string,
    values: readonly string[],
    private readonly bounds: readonly number[],
    registry: Registry,
  ) {
    for (const value of values) this.series.set(value, new HistogramSeries(bounds));
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  /** The series for one label value, to keep and observe on (created at zero when new). */
  child(value: string): HistogramSeries {
    let series = this.series.get(value);
    if (series === undefined) this.series.set(value, (series = new HistogramSeries(this.bounds)));
    return series;
  }

  get(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: Sample[] }> {
    const values: Sample[] = [];
    for (const [labelValue, series] of this.series) {
      const labels = { [this.label]: labelValue };
      series.cumulative().forEach((n, i) => values.push({ labels: { ...labels, le: this.bounds[i] ?? '+Inf' }, value: n, metricName: `${this.name}_bucket` }));
      values.push({ labels: { ...labels, le: '+Inf' }, value: series.count, metricName: `${this.name}_bucket` });
      values.push({ labels, value: series.sum, metricName: `${this.name}_sum` });
      values.push({ labels, value: series.count, metricName: `${this.name}_count` });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }

  reset(): void {
    for (const series of this.series.values()) series.reset();
  }
}
