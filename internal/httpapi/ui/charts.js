// Charts drawn by uPlot (vendored: /ui/vendor/uplot-1.6.32/, loaded by
// index.html as the global uPlot). This file only configures it: time
// buckets on the x axis (UTC), value formatters for the y axis, axes sized
// to their widest label, stacked bars, a tooltip, and a resize observer.

const { uPlot } = window;

const COLORS = ['#3b5bdb', '#f08c00', '#2b8a3e', '#c92a2a', '#7048e8', '#1098ad', '#868e96'];
const FONT = '11px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

// ---------- value formatters (also used by the tooltip and tests) ----------

const trim = (s) => s.replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '');

// fmtUSDAxis: $0, $0.0012, $0.25, $12.5, $1.2k, $3.4M. Small amounts keep
// two significant digits, so a chart of fractions of a cent never shows
// a column of "$0.00".
export function fmtUSDAxis(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '';
  const a = Math.abs(v);
  const sign = v < 0 ? '-' : '';
  if (a === 0) return '$0';
  if (a >= 1e6) return sign + '$' + trim((a / 1e6).toFixed(1)) + 'M';
  if (a >= 1e3) return sign + '$' + trim((a / 1e3).toFixed(1)) + 'k';
  if (a >= 1) return sign + '$' + trim(a.toFixed(2));
  if (a >= 0.01) return sign + '$' + trim(a.toFixed(3));
  return sign + '$' + trim(a.toFixed(Math.min(9, 1 - Math.floor(Math.log10(a)))));
}

export function fmtPctAxis(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '';
  const p = v * 100;
  return trim(p.toFixed(Math.abs(p) < 1 && p !== 0 ? 2 : 1)) + '%';
}

export function fmtCountAxis(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '';
  const a = Math.abs(v);
  if (a >= 1e9) return trim((v / 1e9).toFixed(1)) + 'B';
  if (a >= 1e6) return trim((v / 1e6).toFixed(1)) + 'M';
  if (a >= 1e3) return trim((v / 1e3).toFixed(1)) + 'k';
  return trim(v.toFixed(Number.isInteger(v) ? 0 : 1));
}

export function fmtMsAxis(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '';
  if (Math.abs(v) >= 1000) return trim((v / 1000).toFixed(2)) + ' s';
  return trim(v.toFixed(v < 10 ? 1 : 0)) + ' ms';
}

// ---------- time buckets ----------

// bucketFor picks the bucket from the range: up to 48 hours in hours,
// longer in days (the usage report groups by hour or day).
export function bucketFor(hours) {
  return hours <= 48 ? 'hour' : 'day';
}

const pad = (n) => String(n).padStart(2, '0');
function fmtBucket(sec, group, withDate) {
  const d = new Date(sec * 1000);
  const day = `${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  if (group === 'day') return day;
  const hm = `${pad(d.getUTCHours())}:00`;
  return withDate ? `${day} ${hm}` : hm;
}

// ---------- axis sizing ----------

// axisSize measures the widest label with the axis's own font, so a long
// currency label is never clipped at the chart's left edge.
function axisSize(self, values, axisIdx, cycleNum) {
  const axis = self.axes[axisIdx];
  if (cycleNum > 1) return axis._size;
  let size = axis.ticks.size + axis.gap;
  const longest = (values || []).reduce((acc, v) => (String(v).length > acc.length ? String(v) : acc), '');
  if (longest) {
    self.ctx.font = axis.font[0];
    size += self.ctx.measureText(longest).width / (window.devicePixelRatio || 1);
  }
  return Math.ceil(size) + 4;
}

// ---------- tooltip ----------

function tooltipPlugin(rows, group) {
  let tip;
  return {
    hooks: {
      init: (u) => {
        tip = document.createElement('div');
        tip.className = 'u-tooltip';
        tip.setAttribute('role', 'tooltip');
        tip.hidden = true;
        u.over.append(tip);
        u.over.addEventListener('mouseleave', () => { tip.hidden = true; });
      },
      setCursor: (u) => {
        const i = u.cursor.idx;
        if (i === null || i === undefined || u.cursor.left < 0) { tip.hidden = true; return; }
        tip.replaceChildren();
        const head = document.createElement('div');
        head.className = 'u-tooltip-head';
        head.textContent = fmtBucket(u.data[0][i], group, true) + ' UTC';
        tip.append(head);
        rows.forEach((r) => {
          const line = document.createElement('div');
          const sw = document.createElement('span');
          sw.className = 'u-tooltip-swatch';
          sw.style.background = r.color;
          line.append(sw, document.createTextNode(`${r.label}: ${r.fmt(r.values[i])}`));
          tip.append(line);
        });
        tip.hidden = false;
        const w = u.over.clientWidth;
        const left = u.cursor.left + 12;
        tip.style.left = (left + tip.offsetWidth > w ? Math.max(0, u.cursor.left - tip.offsetWidth - 12) : left) + 'px';
        tip.style.top = Math.max(0, u.cursor.top - 10) + 'px';
      },
    },
  };
}

// ---------- the chart ----------

// timeChart draws series over time buckets and returns its element.
//   buckets: bucket starts (ms); group: 'hour' | 'day'
//   series: [{ label, values }] (null: no data in that bucket)
//   kind: 'bar' (stacked) or 'line'; fmt: the y formatter
//   label: the chart's accessible name
export function timeChart({ label, buckets, group, series, kind = 'line', fmt = fmtCountAxis, height = 220 }) {
  const box = document.createElement('div');
  box.className = 'chart-box';
  box.setAttribute('role', 'img');
  box.setAttribute('aria-label', label);
  box.dataset.chart = label;
  box.dataset.bucket = group;

  const step = group === 'hour' ? 3600 : 86400;
  const xs = buckets.map((t) => Math.floor(t / 1000));
  const raw = series.map((s) => s.values);
  // Stacked bars: each series drawn as the sum of itself and those below
  // it, the tallest first, so every segment shows; the tooltip and legend
  // read the raw values.
  let plotted = raw;
  if (kind === 'bar') {
    const sums = xs.map(() => 0);
    plotted = raw.map((vals) => vals.map((v, i) => (sums[i] += v || 0)));
  }
  const order = kind === 'bar' ? series.map((_, k) => k).reverse() : series.map((_, k) => k);
  const rows = series.map((s, k) => ({ label: s.label, values: raw[k], color: COLORS[k % COLORS.length], fmt }));
  const bars = uPlot.paths.bars({ size: [0.72, 48], align: 0 });
  let yLabels = [];

  const opts = {
    width: 400,
    height,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
    padding: [10, 12, 0, 0],
    cursor: { points: { size: 7 }, drag: { x: false, y: false } },
    legend: { live: false },
    scales: {
      x: { time: true, range: () => [xs[0] - step / 2, xs[xs.length - 1] + step / 2] },
      y: { range: (u, min, max) => [Math.min(0, min || 0), max > 0 ? max * 1.1 : 1] },
    },
    axes: [
      {
        font: FONT, stroke: '#6b7385', grid: { show: false }, ticks: { size: 4, stroke: '#cfd4de' },
        space: group === 'hour' ? 56 : 48,
        incrs: group === 'hour' ? [3600, 7200, 3 * 3600, 6 * 3600, 12 * 3600, 86400] : [86400, 2 * 86400, 7 * 86400, 14 * 86400],
        // Hours as 15:00, a day's start as its date (12-07): short labels
        // that never run into each other; the tooltip has the full time.
        values: (u, splits) => splits.map((s) => (group === 'hour' && new Date(s * 1000).getUTCHours() === 0 ? fmtBucket(s, 'day') : fmtBucket(s, group, false))),
      },
      {
        font: FONT, stroke: '#6b7385', grid: { stroke: '#eef0f4', width: 1 }, ticks: { show: false },
        size: axisSize,
        values: (u, splits) => (yLabels = splits.map(fmt)),
      },
    ],
    series: [
      { label: 'Time' },
      ...order.map((k) => ({
        label: series[k].label,
        stroke: COLORS[k % COLORS.length],
        fill: kind === 'bar' ? COLORS[k % COLORS.length] : COLORS[k % COLORS.length] + '14',
        width: kind === 'bar' ? 0 : 2,
        paths: kind === 'bar' ? bars : undefined,
        points: { show: kind === 'line' && countNonNull(raw[k]) <= 30, size: 6 },
        spanGaps: false,
        value: (u, v, si, i) => (i === null || i === undefined ? '—' : fmt(raw[k][i])),
      })),
    ],
    plugins: [tooltipPlugin(rows, group)],
    hooks: {
      draw: [(u) => { box.dataset.yLabels = yLabels.join('|'); }],
    },
  };
  const data = [xs, ...order.map((k) => plotted[k])];
  const u = new uPlot(opts, data, box);
  box.uplot = u;

  // Follow the card's width (window resizes, the sidebar collapsing).
  let last = 0;
  const ro = new ResizeObserver((entries) => {
    const w = Math.floor(entries[0].contentRect.width);
    if (w > 0 && w !== last) {
      last = w;
      u.setSize({ width: w, height });
    }
  });
  ro.observe(box);
  box.disposeChart = () => { ro.disconnect(); u.destroy(); };
  return box;
}

// countNonNull: a line with few points shows them, or a lone bucket
// with data would draw nothing at all.
function countNonNull(vals) {
  return vals.filter((v) => v !== null && v !== undefined).length;
}

// disposeCharts stops the resize observers of the charts under el.
export function disposeCharts(el) {
  for (const b of el.querySelectorAll('.chart-box')) if (b.disposeChart) b.disposeChart();
}
