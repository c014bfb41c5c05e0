// uPlot charts (app/dashboard/static/vendor, see VERSION): line charts with min–max bands and
// bar histograms, min/max-downsampled to the drawn width, resized with their container, and
// saved as PNG or CSV.

import uPlot from "../vendor/uPlot.esm.js";
import { downsample } from "./series.js";
import { saveBlob } from "./api.js";
import { chartNumber, h } from "./util.js";

const PALETTE = [
  "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
  "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22",
];

export function color(i, alpha = 1) {
  const hex = PALETTE[i % PALETTE.length];
  if (alpha === 1) return hex;
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

function valueText(_u, v) {
  return chartNumber(v);
}

/**
 * A chart in ``container``: ``spec`` = {title, xLabel, yLabel, logY, height,
 * series: [{label, stroke, width, fill, dash, points, bars}], bands: [[upperIndex, lowerIndex, fill]]}
 * (series indices count from 1, after x). ``update(data)`` redraws with new data.
 */
export class Chart {
  constructor(container, spec) {
    this.spec = spec;
    this.full = [[], ...spec.series.map(() => [])];
    this.el = h("figure.chart", { "aria-label": spec.title });
    this.el.append(h("figcaption", {}, spec.title));
    this.plotEl = h("div.plot");
    this.el.append(this.plotEl);
    container.append(this.el);
    this.uplot = new uPlot(this.options(this.width()), this.full, this.plotEl);
    this.resize = new ResizeObserver(() => this.fit());
    this.resize.observe(this.el);
  }

  width() {
    return Math.max(240, Math.floor(this.el.clientWidth || 600));
  }

  options(width) {
    const s = this.spec;
    const series = [
      { label: s.xLabel || "x", value: valueText },
      ...s.series.map((d) => ({
        label: d.label,
        stroke: d.stroke,
        width: d.width ?? 1.5,
        fill: d.fill,
        dash: d.dash,
        show: d.show ?? true,
        spanGaps: false,
        points: { show: d.points ?? false, size: 5 },
        value: valueText,
        ...(d.bars ? { paths: uPlot.paths.bars({ size: [1, Infinity], gap: 0 }) } : {}),
      })),
    ];
    return {
      width,
      height: s.height || 280,
      series,
      bands: (s.bands || []).map(([upper, lower, fill]) => ({ series: [upper, lower], fill })),
      scales: { x: { time: false }, y: s.logY ? { distr: 3 } : {} },
      axes: [
        { label: s.xLabel, values: (_u, ticks) => ticks.map(chartNumber) },
        { label: s.yLabel, values: (_u, ticks) => ticks.map(chartNumber), size: 60 },
      ],
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
    };
  }

  fit() {
    const width = this.width();
    if (Math.abs(width - this.uplot.width) < 2) return;
    this.uplot.setSize({ width, height: this.uplot.height });
    this.draw();
  }

  /** New data ([xs, ...ys], every series as long as xs): drawn downsampled to the width. */
  update(data) {
    this.full = data;
    this.draw();
  }

  draw() {
    const logY = this.spec.logY;
    let data = downsample(this.full, Math.max(64, Math.floor(this.uplot.width)));
    if (logY) data = [data[0], ...data.slice(1).map((ys) => ys.map((v) => (v > 0 ? v : null)))];
    this.uplot.setData(data);
    this.el.dataset.drawn = String(data[0].length); // points per series on screen
  }

  /** The chart as a PNG (title above the plot, white background). */
  savePng(filename) {
    const src = this.uplot.ctx.canvas;
    const out = document.createElement("canvas");
    out.width = src.width;
    out.height = src.height + 40;
    const ctx = out.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, out.width, out.height);
    ctx.fillStyle = "#111";
    ctx.font = `${Math.round(16 * (window.devicePixelRatio || 1))}px sans-serif`;
    ctx.fillText(this.spec.title, 12, 26);
    ctx.drawImage(src, 0, 40);
    out.toBlob((blob) => saveBlob(blob, filename), "image/png");
  }

  /** The full-resolution data as CSV (x, then one column per series). */
  saveCsv(filename) {
    const header = [this.spec.xLabel || "x", ...this.spec.series.map((s) => s.label)];
    const lines = [header.map(csvCell).join(",")];
    const [xs, ...ys] = this.full;
    for (let i = 0; i < xs.length; i++) {
      lines.push([xs[i], ...ys.map((col) => col[i])].map(csvCell).join(","));
    }
    saveBlob(new Blob([lines.join("\n") + "\n"], { type: "text/csv" }), filename);
  }

  destroy() {
    this.resize.disconnect();
    this.uplot.destroy();
    this.el.remove();
  }
}

function csvCell(v) {
  if (v === null || v === undefined) return "";
  const text = String(v);
  return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** Buttons that save ``chart`` (PNG, CSV) under ``stem``. */
export function chartDownloads(chart, stem) {
  return h(
    "div.chart-tools",
    {},
    h("button", { type: "button", onclick: () => chart.savePng(`${stem}.png`) }, "PNG"),
    h("button", { type: "button", onclick: () => chart.saveCsv(`${stem}.csv`) }, "CSV"),
  );
}
