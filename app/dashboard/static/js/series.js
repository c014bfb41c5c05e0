// Pure data functions for the charts: smoothing, aggregation over repeats, x axes and
// downsampling. No DOM here (tests/dashboard/test_series.py runs them in node).

/**
 * TensorBoard's smoothing: an exponential moving average de-biased by 1 - w^n (n = finite
 * points seen so far). Non-finite values (null, NaN, ±Infinity) are passed through as they
 * are and do not enter the average.
 */
export function ema(values, weight) {
  if (!(weight > 0)) return values.slice();
  const out = new Array(values.length);
  let last = 0;
  let power = 1; // weight ** (finite points seen)
  for (let i = 0; i < values.length; i++) {
    const y = values[i];
    if (y === null || y === undefined || !Number.isFinite(y)) {
      out[i] = y;
      continue;
    }
    last = last * weight + (1 - weight) * y;
    power *= weight;
    out[i] = last / (1 - power);
  }
  return out;
}

/** Sorted union of the runs' steps (each run's steps ascending). Runs of one job record
 * the same steps, so usually the longest run's steps are the union: checked, else merged. */
export function unionSteps(runs) {
  let longest = [];
  for (const run of runs) if (run.steps.length > longest.length) longest = run.steps;
  const prefix = runs.every((run) => run.steps.every((s, i) => s === longest[i]));
  if (prefix) return Float64Array.from(longest);
  const seen = new Set();
  for (const run of runs) for (const s of run.steps) seen.add(s);
  return Float64Array.from(seen).sort();
}

/** A run's values placed on the shared ascending steps (null where the run has no point). */
export function align(steps, run, values) {
  const n = run.steps.length;
  if (n <= steps.length && (n === 0 || (run.steps[0] === steps[0] && run.steps[n - 1] === steps[n - 1]))) {
    // The run's steps are the first n shared ones (ascending, same ends): no search needed.
    const out = values.slice(0, n);
    for (let i = n; i < steps.length; i++) out.push(null);
    return out;
  }
  const out = new Array(steps.length).fill(null);
  let j = 0;
  for (let i = 0; i < steps.length && j < run.steps.length; i++) {
    while (j < run.steps.length && run.steps[j] < steps[i]) j++;
    if (j < run.steps.length && run.steps[j] === steps[i]) out[i] = values[j++];
  }
  return out;
}

/** Mean, min and max per index over aligned series, counting only finite values. */
export function aggregate(columns, length) {
  const sum = new Float64Array(length);
  const count = new Uint32Array(length);
  const lo = new Float64Array(length).fill(Infinity);
  const hi = new Float64Array(length).fill(-Infinity);
  for (const col of columns) {
    for (let i = 0; i < length; i++) {
      const v = col[i];
      if (v === null || !Number.isFinite(v)) continue;
      sum[i] += v;
      count[i] += 1;
      if (v < lo[i]) lo[i] = v;
      if (v > hi[i]) hi[i] = v;
    }
  }
  const mean = new Array(length);
  const min = new Array(length);
  const max = new Array(length);
  for (let i = 0; i < length; i++) {
    const n = count[i];
    mean[i] = n ? sum[i] / n : null;
    min[i] = n ? lo[i] : null;
    max[i] = n ? hi[i] : null;
  }
  return { mean, min, max };
}

/**
 * Wall-clock seconds since the run started for each step, interpolated linearly between
 * anchors [[step, seconds], ...] (sorted by step; [0, 0] is implied) and extrapolated past
 * the last one at its average rate.
 */
export function wallTimes(steps, anchors) {
  const pts = [[0, 0], ...anchors];
  const [lastStep, lastTime] = pts[pts.length - 1];
  const rate = lastStep > 0 ? lastTime / lastStep : 0;
  const out = new Float64Array(steps.length);
  let j = 0;
  for (let i = 0; i < steps.length; i++) {
    const s = steps[i];
    if (s >= lastStep) {
      out[i] = lastTime + (s - lastStep) * rate;
      continue;
    }
    while (pts[j + 1][0] < s) j++;
    const [s0, t0] = pts[j];
    const [s1, t1] = pts[j + 1];
    out[i] = s1 === s0 ? t0 : t0 + ((s - s0) * (t1 - t0)) / (s1 - s0);
  }
  return out;
}

/**
 * Min/max downsampling for drawing: at most two points per bucket of ``buckets`` equal
 * x-ranges, holding each series' minimum and maximum in that bucket (in the order they
 * occur), so a one-step spike is still drawn. ``data`` is uPlot's [xs, ...ys]; returned as is
 * when it already has at most 2 × buckets points.
 */
export function downsample(data, buckets) {
  const xs = data[0];
  const n = xs.length;
  if (n <= 2 * buckets || n < 3) return data;
  const x0 = xs[0];
  const span = xs[n - 1] - x0 || 1;
  const outX = [];
  const outY = data.slice(1).map(() => []);
  let start = 0;
  while (start < n) {
    const b = Math.min(buckets - 1, Math.floor(((xs[start] - x0) / span) * buckets));
    let end = start + 1;
    while (end < n && Math.min(buckets - 1, Math.floor(((xs[end] - x0) / span) * buckets)) === b) {
      end++;
    }
    if (end - start <= 2) {
      for (let i = start; i < end; i++) {
        outX.push(xs[i]);
        for (let k = 0; k < outY.length; k++) outY[k].push(data[k + 1][i]);
      }
    } else {
      outX.push(xs[start], xs[end - 1]);
      for (let k = 0; k < outY.length; k++) {
        const ys = data[k + 1];
        let lo = null;
        let hi = null;
        let loAt = 0;
        let hiAt = 0;
        let nonFinite = null;
        for (let i = start; i < end; i++) {
          const v = ys[i];
          if (v === null || v === undefined) continue;
          if (!Number.isFinite(v)) {
            nonFinite = v;
            continue;
          }
          if (lo === null || v < lo) [lo, loAt] = [v, i];
          if (hi === null || v > hi) [hi, hiAt] = [v, i];
        }
        if (lo === null) outY[k].push(nonFinite, nonFinite);
        else if (loAt <= hiAt) outY[k].push(lo, hi);
        else outY[k].push(hi, lo);
      }
    }
    start = end;
  }
  return [Float64Array.from(outX), ...outY];
}
