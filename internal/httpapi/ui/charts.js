// Small SVG charts drawn by hand: a time series as lines or bars, and
// horizontal bars for a breakdown. Labels are text nodes (<text>, <title>).

const NS = 'http://www.w3.org/2000/svg';
let W = 560; const H = 210, PAD = { l: 56, r: 12, t: 12, b: 26 };

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}
const title = (t) => s('title', {}, t);

// niceMax rounds a maximum up to 1, 2, 2.5 or 5 times a power of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function frame(svg, max, fmt, labels, fmtLabel) {
  const iw = W - PAD.l - PAD.r, ih = H - PAD.t - PAD.b;
  for (let i = 0; i <= 4; i++) {
    const y = PAD.t + ih - (ih * i) / 4;
    svg.append(s('line', { x1: PAD.l, x2: W - PAD.r, y1: y, y2: y, class: i ? 'grid' : 'axis' }));
    svg.append(s('text', { x: PAD.l - 6, y: y + 4, 'text-anchor': 'end', class: 'tick' }, fmt((max * i) / 4)));
  }
  const n = labels.length;
  const ticks = Math.min(6, n);
  const seen = new Set();
  for (let i = 0; i < ticks; i++) {
    const idx = ticks === 1 ? 0 : Math.round((i * (n - 1)) / (ticks - 1));
    if (seen.has(idx)) continue;
    seen.add(idx);
    const x = xAt(idx, n, true);
    svg.append(s('text', { x, y: H - 8, 'text-anchor': i === 0 && n > 1 ? 'start' : i === ticks - 1 && n > 1 ? 'end' : 'middle', class: 'tick' }, fmtLabel(labels[idx])));
  }
  return { iw, ih };
}

function xAt(i, n, center) {
  const iw = W - PAD.l - PAD.r;
  if (center) return PAD.l + (iw * (i + 0.5)) / n;
  return PAD.l + (n <= 1 ? iw / 2 : (iw * i) / (n - 1));
}

function root(label) {
  return s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': label });
}

// timeChart draws series over the same buckets. kind 'bar' stacks the
// series as bars; 'line' draws each as a line, null values as gaps.
export function timeChart({ label, labels, series, kind = 'line', fmt = String, fmtLabel = String, width = 560 }) {
  W = width; // the drawing width in user units (the SVG scales to its box)
  const svg = root(label);
  const n = labels.length;
  let max = 0;
  if (kind === 'bar') {
    for (let i = 0; i < n; i++) max = Math.max(max, series.reduce((a, se) => a + (se.values[i] || 0), 0));
  } else {
    for (const se of series) for (const v of se.values) if (v !== null && v > max) max = v;
  }
  max = niceMax(max);
  const { ih } = frame(svg, max, fmt, labels, fmtLabel);
  const yOf = (v) => PAD.t + ih - (ih * v) / max;
  if (kind === 'bar') {
    const bw = Math.max(1, ((W - PAD.l - PAD.r) / n) * 0.72);
    for (let i = 0; i < n; i++) {
      let base = 0;
      series.forEach((se, k) => {
        const v = se.values[i] || 0;
        if (v <= 0) return;
        const y0 = yOf(base), y1 = yOf(base + v);
        base += v;
        svg.append(s('rect', { x: xAt(i, n, true) - bw / 2, y: y1, width: bw, height: Math.max(1, y0 - y1), class: 'bar s' + (k + 1) },
          title(`${fmtLabel(labels[i])} · ${se.name}: ${fmt(v)}`)));
      });
    }
  } else {
    series.forEach((se, k) => {
      let d = '';
      let run = [];
      const flush = () => {
        if (run.length === 1) {
          const [i, v] = run[0];
          svg.append(s('circle', { cx: xAt(i, n, true), cy: yOf(v), r: 3.5, class: 'dot s' + (k + 1) }, title(`${fmtLabel(labels[i])} · ${se.name}: ${fmt(v)}`)));
        }
        run = [];
      };
      se.values.forEach((v, i) => {
        if (v === null || v === undefined) { flush(); d += ' '; return; }
        d += (run.length ? 'L' : 'M') + xAt(i, n, true).toFixed(1) + ' ' + yOf(v).toFixed(1);
        run.push([i, v]);
      });
      flush();
      if (d.trim()) svg.append(s('path', { d: d.replace(/ +/g, ' '), class: 'line s' + (k + 1) }));
      // Invisible hover targets with the exact value.
      se.values.forEach((v, i) => {
        if (v === null || v === undefined) return;
        svg.append(s('circle', { cx: xAt(i, n, true), cy: yOf(v), r: 6, class: 'hit' }, title(`${fmtLabel(labels[i])} · ${se.name}: ${fmt(v)}`)));
      });
    });
  }
  return svg;
}

// barList draws a horizontal bar per row: [{label, value}].
export function barList({ label, rows, fmt = String }) {
  const BW = 1000, rowH = 26, lw = 230, top = 6;
  const h = top * 2 + rows.length * rowH;
  const svg = s('svg', { viewBox: `0 0 ${BW} ${h}`, class: 'chart bars', role: 'img', 'aria-label': label });
  const max = Math.max(...rows.map((r) => r.value), 0) || 1;
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const name = r.label.length > 28 ? r.label.slice(0, 27) + '…' : r.label;
    svg.append(s('text', { x: lw - 8, y: y + 17, 'text-anchor': 'end', class: 'tick label' }, name, title(r.label)));
    const bw = Math.max(2, ((BW - lw - 110) * r.value) / max);
    svg.append(s('rect', { x: lw, y: y + 4, width: bw, height: rowH - 8, rx: 3, class: 'bar s1' }, title(`${r.label}: ${fmt(r.value)}`)));
    svg.append(s('text', { x: lw + bw + 6, y: y + 17, class: 'tick value' }, fmt(r.value)));
  });
  return svg;
}

export function legend(names) {
  const box = document.createElement('div');
  box.className = 'legend';
  names.forEach((n, k) => {
    const sw = document.createElement('span');
    sw.className = 'swatch s' + (k + 1);
    const item = document.createElement('span');
    item.append(sw, document.createTextNode(n));
    box.append(item);
  });
  return box;
}
