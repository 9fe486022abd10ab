// DOM building, the admin API client and formatting. Every string from the
// API reaches the page as a text node or an attribute value: no innerHTML.

const KEY = 'xroute.adminKey';

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const session = {
  get key() { return sessionStorage.getItem(KEY) || ''; },
  set key(v) { v ? sessionStorage.setItem(KEY, v) : sessionStorage.removeItem(KEY); },
};

export class APIError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// onAuthLost is set by the app: a 401 or 403 sends the operator back to
// the login form.
export const hooks = { onAuthLost: () => {} };

export async function api(method, path, body, { raw = false } = {}) {
  const headers = { Authorization: 'Bearer ' + session.key };
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch('/admin/v1' + path, init);
  } catch (e) {
    throw new APIError(0, 'The server did not answer: ' + e.message, 'network');
  }
  if (res.status === 401 || res.status === 403) {
    const msg = await errorMessage(res);
    hooks.onAuthLost(msg);
    throw new APIError(res.status, msg, 'auth');
  }
  if (!res.ok) throw new APIError(res.status, await errorMessage(res), 'http');
  return raw ? res : res.json();
}

async function errorMessage(res) {
  try {
    const j = await res.json();
    if (j && j.error && j.error.message) return String(j.error.message);
  } catch { /* not JSON */ }
  return res.status + ' ' + res.statusText;
}

export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== '' && v !== undefined && v !== null) u.set(k, v);
  const s = u.toString();
  return s ? '?' + s : '';
}

const nf = new Intl.NumberFormat('en-US');
export const fmtInt = (n) => nf.format(Math.round(Number(n) || 0));
export function fmtCompact(n) {
  n = Number(n) || 0;
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(1).replace(/\.0$/, '') + 'B';
  if (a >= 1e6) return (n / 1e6).toFixed(1).replace(/\.0$/, '') + 'M';
  if (a >= 1e4) return (n / 1e3).toFixed(1).replace(/\.0$/, '') + 'k';
  if (Number.isInteger(n)) return nf.format(n);
  return n.toPrecision(3).replace(/\.?0+$/, '');
}
// USD from nano-USD: cents for sums, more digits for tiny amounts.
export function fmtUSD(nano) {
  const usd = (Number(nano) || 0) / 1e9;
  if (usd !== 0 && Math.abs(usd) < 0.01) return '$' + usd.toFixed(6).replace(/0+$/, '');
  return '$' + usd.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}
export const fmtUSDText = (s) => (String(s).startsWith('-') ? '-$' + String(s).slice(1) : '$' + s);
export const fmtPct = (x) => ((Number(x) || 0) * 100).toFixed(Number(x) > 0 && Number(x) < 0.1 ? 2 : 1) + '%';
export function fmtMs(ms) {
  ms = Number(ms) || 0;
  if (ms === 0) return '—';
  if (ms >= 1000) return (ms / 1000).toFixed(2) + ' s';
  return ms.toFixed(ms < 10 ? 1 : 0) + ' ms';
}
export function fmtTime(t) {
  if (!t) return '—';
  const d = new Date(t);
  if (isNaN(d)) return String(t);
  return d.toISOString().slice(0, 16).replace('T', ' ');
}
export const dateInput = (d) => d.toISOString().slice(0, 10);

// A status badge: the class comes from a fixed list, never from the data.
const tones = {
  active: 'ok', closed: 'ok', ok: 'ok',
  suspended: 'warn', disabled: 'warn', 'half-open': 'warn', half_open: 'warn', expired: 'muted',
  revoked: 'bad', open: 'bad',
};
export const badge = (text) => h('span', { class: 'badge ' + (tones[String(text)] || 'muted') }, text);

export function toast(msg, kind = 'info') {
  let box = document.getElementById('toasts');
  if (!box) document.body.append((box = h('div', { id: 'toasts', role: 'status', 'aria-live': 'polite' })));
  const t = h('div', { class: 'toast ' + (kind === 'error' ? 'error' : 'info') }, msg);
  box.append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 4000);
}

// modal shows a dialog; close() removes it. Escape and the backdrop close it.
export function modal(title, body, actions = []) {
  const prev = document.activeElement;
  const close = () => {
    back.remove();
    document.removeEventListener('keydown', onKey);
    if (prev && prev.focus) prev.focus();
  };
  const onKey = (e) => { if (e.key === 'Escape') close(); };
  const dlg = h('div', { class: 'modal', role: 'dialog', 'aria-modal': 'true', 'aria-label': title },
    h('h2', {}, title), h('div', { class: 'modal-body' }, body),
    h('div', { class: 'modal-actions' }, actions.map((a) => h('button', {
      class: a.primary ? 'primary' : a.danger ? 'danger' : '', type: 'button',
      onclick: () => { if (a.onclick ? a.onclick() !== false : true) close(); },
    }, a.label))));
  const back = h('div', { class: 'backdrop', onclick: (e) => { if (e.target === back) close(); } }, dlg);
  document.addEventListener('keydown', onKey);
  document.body.append(back);
  const f = dlg.querySelector('input, button.primary, button');
  if (f) f.focus();
  return { close, el: dlg };
}

export function confirmModal(title, text, label, danger = false) {
  return new Promise((resolve) => {
    let done = false;
    const m = modal(title, h('p', {}, text), [
      { label: 'Cancel', onclick: () => { done = true; resolve(false); } },
      { label, primary: !danger, danger, onclick: () => { done = true; resolve(true); } },
    ]);
    const obs = new MutationObserver(() => { if (!m.el.isConnected) { obs.disconnect(); if (!done) resolve(false); } });
    obs.observe(document.body, { childList: true });
  });
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const ta = h('textarea', { class: 'offscreen' });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    const ok = document.execCommand('copy');
    ta.remove();
    return ok;
  }
}

export function table(columns, rows, { empty = 'Nothing here yet.', rowClass, rowAttrs } = {}) {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: c.num ? 'num' : '' }, c.label)))),
    h('tbody', {}, rows.map((r) => h('tr', { class: rowClass ? rowClass(r) : '', ...(rowAttrs ? rowAttrs(r) : {}) },
      columns.map((c) => h('td', { class: c.num ? 'num' : c.mono ? 'mono' : '' }, c.render ? c.render(r) : r[c.key])))))));
}

export function download(filename, blob) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: filename, class: 'offscreen' });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// pager is a table paged by the server: fetchPage(cursor, limit) answers a
// list page ({data, has_more, next_after}); Previous and Next walk the
// cursors, and the page size is the operator's. Nothing is ever fetched
// whole.
export function pager({ columns, fetchPage, limit = 25, sizes = [10, 25, 50, 100], empty, rowClass, rowAttrs, name = 'rows' }) {
  const el = h('div', { class: 'pager', 'data-pager': name });
  const st = { cursors: [''], index: 0, limit, rows: [] };
  let gen = 0;
  const load = async () => {
    const my = ++gen;
    el.classList.add('busy');
    let page;
    try {
      page = await fetchPage(st.cursors[st.index], st.limit);
    } finally {
      if (my === gen) el.classList.remove('busy');
    }
    if (my !== gen) return; // a newer load (filter, page) won
    st.rows = page.data || [];
    st.cursors.length = st.index + 1;
    if (page.has_more && page.next_after) st.cursors.push(page.next_after);
    const hasPrev = st.index > 0, hasNext = st.cursors.length > st.index + 1;
    const go = (d) => () => { st.index += d; load().catch(report); };
    const size = h('select', { name: 'page_size', 'aria-label': 'Rows per page', onchange: (e) => { st.limit = Number(e.target.value); reset().catch(report); } },
      sizes.map((n) => h('option', { value: String(n), selected: n === st.limit }, n + ' / page')));
    clear(el, table(columns, st.rows, { empty: st.index ? 'No more rows.' : empty, rowClass, rowAttrs }),
      (hasPrev || hasNext || st.rows.length >= Math.min(...sizes)) ? h('div', { class: 'pager-bar' },
        h('button', { type: 'button', class: 'small', 'data-action': 'prev', disabled: !hasPrev, onclick: go(-1) }, '‹ Previous'),
        h('span', { class: 'muted pager-pos', 'data-page': String(st.index + 1) }, `Page ${st.index + 1} · ${st.rows.length} ${st.rows.length === 1 ? 'row' : 'rows'}`),
        h('button', { type: 'button', class: 'small', 'data-action': 'next', disabled: !hasNext, onclick: go(1) }, 'Next ›'),
        size) : null);
  };
  const report = (e) => { if (!(e instanceof APIError && e.code === 'auth')) toast(e.message || String(e), 'error'); };
  const reset = () => { st.cursors = ['']; st.index = 0; return load(); };
  return { el, load, reset, rows: () => st.rows };
}

// toDateEnd turns an inclusive date (the "to" of a date input) into the
// exclusive bound the API takes: the next day.
export function toDateEnd(d) {
  if (!d) return '';
  const end = new Date(d + 'T00:00:00Z');
  if (isNaN(end)) return '';
  end.setUTCDate(end.getUTCDate() + 1);
  return dateInput(end);
}
