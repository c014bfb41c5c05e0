// Run in the dashboard page by bench/bench_dashboard.py (arguments: runs, points, width, done).
const [runsN, pointsN, width, done] = arguments;
(async () => {
  const { JobData } = await import('/dashboard/js/jobdata.js');
  const { Chart } = await import('/dashboard/js/charts.js');
  const schemes = 8;
  const runs = Array.from({ length: runsN }, (_, i) => ({
    index: i, scheme: i % schemes, label: `s${i % schemes}`, repeat: Math.floor(i / schemes),
    seed: i, status: 'succeeded', batch: pointsN, total_batches: pointsN,
    started_at: '2026-01-01T00:00:00Z',
    batch_steps: Array.from({ length: pointsN }, (_, k) => k),
    batch_losses: Array.from({ length: pointsN }, (_, k) => 2 * Math.exp(-k / 3000) + Math.random() * 0.2),
    epochs: [{ epoch: 1, step: pointsN, seconds: 10, val_loss: 0.5, val_accuracy: 0.9 }],
    diagnostics: {},
  }));
  const doc = { id: 'bench', status: 'succeeded', spec: { schemes: Array.from({ length: schemes }, (_, i) => ({ label: `s${i}` })) }, runs, summary: [] };
  const box = document.createElement('div');
  box.style.width = `${width}px`;
  document.body.append(box);
  const data = new JobData(doc);
  const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const time = async (fn) => { const out = []; for (let i = 0; i < 5; i++) { const t = performance.now(); await fn(); out.push(performance.now() - t); } return median(out); };
  const opts = { x: 'step', smoothing: 0.6, singles: false };
  let loss;
  const build = await time(() => { loss = data.lossData(opts); });
  const singles = await time(() => data.lossData({ ...opts, singles: true }));
  const spec = { title: 'bench', series: loss.series.map((s, i) => ({ label: s.label, stroke: '#1f77b4' })) };
  const chart = new Chart(box, spec);
  const draw = await time(() => { chart.update(loss.data); chart.uplot.redraw(false, true); });
  const drawn = chart.uplot.data[0].length;
  const allSpec = { title: 'bench', series: data.lossData({ ...opts, singles: true }).series.map((s) => ({ label: s.label, stroke: '#d62728' })) };
  const chartAll = new Chart(box, allSpec);
  const all = data.lossData({ ...opts, singles: true });
  const drawAll = await time(() => { chartAll.update(all.data); chartAll.uplot.redraw(false, true); });
  return { build, singles, draw, drawAll, drawn, series: loss.data.length - 1, seriesAll: all.data.length - 1, width: chart.uplot.width };
})().then(done, (e) => done(String(e)));
