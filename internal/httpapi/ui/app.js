// xroute dashboard: admin-key login and one page per hash route.
import {
  h, clear, session, hooks, api, qs, toast, modal, confirmModal, copyText, table, badge, download, APIError,
  fmtInt, fmtCompact, fmtUSD, fmtUSDText, fmtPct, fmtMs, fmtTime, dateInput,
} from './lib.js';
import { timeChart, barList, legend } from './charts.js';

const app = document.getElementById('app');

const pages = [
  { id: 'overview', label: 'Overview', render: overview },
  { id: 'usage', label: 'Usage', render: usage },
  { id: 'keys', label: 'Keys', render: keysPage },
  { id: 'deployments', label: 'Deployments', render: deployments },
  { id: 'credits', label: 'Credits', render: credits },
  { id: 'audit', label: 'Audit log', render: audit },
];

let cleanup = null; // the current page's timers
let generation = 0; // a page load's answers are dropped once the page changed

hooks.onAuthLost = (msg) => {
  session.key = '';
  login(msg);
};

function login(message) {
  stop();
  const input = h('input', { type: 'password', id: 'admin-key', name: 'admin-key', autocomplete: 'off', placeholder: 'xra-…', required: true, spellcheck: 'false' });
  const err = h('p', { class: 'form-error', role: 'alert' }, message || '');
  const form = h('form', { class: 'login-card', onsubmit: async (e) => {
    e.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    session.key = key;
    try {
      await api('GET', '/keys?limit=1');
      if (!location.hash || location.hash === '#/login') location.hash = '#/overview';
      route();
    } catch (ex) {
      if (!(ex instanceof APIError && ex.code === 'auth')) { session.key = ''; login(ex.message); }
    }
  } },
  h('div', { class: 'brand big' }, h('span', { class: 'logo' }, 'x'), 'xroute'),
  h('h1', {}, 'Operator dashboard'),
  h('label', { for: 'admin-key' }, 'Admin key'),
  input,
  h('p', { class: 'hint' }, 'The key stays in this tab (session storage) and is sent as a Bearer token to /admin/v1.'),
  err,
  h('button', { type: 'submit', class: 'primary wide' }, 'Sign in'));
  clear(app, h('div', { class: 'login' }, form));
  document.title = 'Sign in · xroute';
  input.focus();
}

function stop() {
  generation++;
  if (cleanup) cleanup();
  cleanup = null;
}

function shell(active) {
  const nav = h('nav', { class: 'sidebar', 'aria-label': 'Pages' }, h('div', { class: 'side-inner' },
    h('div', { class: 'brand' }, h('span', { class: 'logo' }, 'x'), 'xroute'),
    h('ul', {}, pages.map((p) => h('li', {}, h('a', { href: '#/' + p.id, class: p.id === active ? 'active' : '', 'aria-current': p.id === active ? 'page' : null, 'data-page': p.id }, p.label)))),
    h('button', { type: 'button', class: 'logout', onclick: () => { session.key = ''; location.hash = ''; login('Signed out.'); } }, 'Sign out')));
  const main = h('main', { id: 'main' });
  clear(app, h('div', { class: 'layout' }, nav, main));
  return main;
}

function route() {
  if (!session.key) return login();
  const id = (location.hash.replace(/^#\/?/, '') || 'overview').split('?')[0];
  const page = pages.find((p) => p.id === id) || pages[0];
  stop();
  const gen = generation;
  const main = shell(page.id);
  document.title = page.label + ' · xroute';
  const ctx = {
    main,
    live: () => gen === generation,
    onStop: (fn) => { const prev = cleanup; cleanup = () => { if (prev) prev(); fn(); }; },
  };
  page.render(ctx).catch((e) => { if (ctx.live() && !(e instanceof APIError && e.code === 'auth')) showError(main, e); });
}

function showError(main, e) {
  main.append(h('div', { class: 'banner error', role: 'alert' }, e.message || String(e)));
}

function header(title, sub, ...tools) {
  return h('header', { class: 'page-head' },
    h('div', {}, h('h1', {}, title), sub ? h('p', { class: 'sub' }, sub) : null),
    h('div', { class: 'tools' }, tools));
}

function card(title, ...body) {
  return h('section', { class: 'card' }, title ? h('h2', {}, title) : null, body);
}

function stat(label, value, note) {
  return h('div', { class: 'stat' }, h('div', { class: 'stat-label' }, label), h('div', { class: 'stat-value', 'data-stat': label }, value), note ? h('div', { class: 'stat-note' }, note) : null);
}

function select(name, options, value, onchange) {
  return h('select', { name, 'aria-label': name, onchange }, options.map(([v, l]) => h('option', { value: v, selected: v === value }, l)));
}

// ---------- Overview ----------

const RANGES = { '24h': { hours: 24, group: 'hour' }, '7d': { hours: 168, group: 'hour' }, '30d': { hours: 720, group: 'day' } };
let overviewRange = '24h';

async function overview(ctx) {
  const { main } = ctx;
  const body = h('div', { class: 'stack' }, h('p', { class: 'loading' }, 'Loading…'));
  const rangeSel = select('range', [['24h', 'Last 24 hours'], ['7d', 'Last 7 days'], ['30d', 'Last 30 days']], overviewRange, (e) => { overviewRange = e.target.value; route(); });
  main.append(header('Overview', 'Traffic, tokens, spend, errors and latency across every account.', rangeSel,
    h('button', { type: 'button', onclick: () => route() }, 'Refresh')), body);

  const r = RANGES[overviewRange];
  const step = r.group === 'hour' ? 3600e3 : 86400e3;
  const to = new Date(Math.ceil((Date.now() + 1) / step) * step);
  const from = new Date(to.getTime() - r.hours * 3600e3);
  const range = { from: from.toISOString(), to: to.toISOString() };
  const [series, total] = await Promise.all([
    api('GET', '/usage/report' + qs({ group_by: r.group, ...range })),
    api('GET', '/usage/report' + qs(range)),
  ]);
  if (!ctx.live()) return;

  const buckets = [];
  for (let t = from.getTime(); t < to.getTime(); t += step) buckets.push(t);
  const byT = new Map((series.data || []).map((row) => [new Date(row.bucket_start).getTime(), row]));
  const rows = buckets.map((t) => byT.get(t) || null);
  const labels = buckets.map((t) => new Date(t));
  const fmtLabel = r.group === 'hour'
    ? (d) => (r.hours > 24 ? d.toISOString().slice(5, 10) + ' ' : '') + d.toISOString().slice(11, 16)
    : (d) => d.toISOString().slice(5, 10);
  const val = (f) => rows.map((row) => (row ? f(row) : 0));
  const opt = (f) => rows.map((row) => (row && row.requests > 0 ? f(row) : null));

  const t = (total.data && total.data[0]) || { requests: 0, errors: 0, prompt_tokens: 0, completion_tokens: 0, cost_nano: 0, latency_p50_us: 0, latency_p95_us: 0 };
  const tokens = t.prompt_tokens + t.completion_tokens;
  const stats = h('div', { class: 'stats' },
    stat('Requests', fmtInt(t.requests)),
    stat('Tokens', fmtCompact(tokens), fmtInt(t.prompt_tokens) + ' in · ' + fmtInt(t.completion_tokens) + ' out'),
    stat('Spend', fmtUSD(t.cost_nano)),
    stat('Error rate', t.requests ? fmtPct(t.errors / t.requests) : '—', fmtInt(t.errors) + ' errors'),
    stat('Latency p50', t.requests ? fmtMs(t.latency_p50_us / 1000) : '—', t.requests ? 'p95 ' + fmtMs(t.latency_p95_us / 1000) : ''));

  const chart = (title, names, c, wide) => {
    const el = card(title, names.length > 1 ? legend(names) : null, c);
    if (wide) el.classList.add('wide');
    return el;
  };
  clear(body, stats, h('div', { class: 'grid2' },
    chart('Requests', ['Succeeded', 'Failed'], timeChart({ label: 'Requests per ' + r.group, kind: 'bar', labels, fmtLabel, fmt: fmtCompact,
      series: [{ name: 'Succeeded', values: val((x) => x.requests - x.errors) }, { name: 'Failed', values: val((x) => x.errors) }] })),
    chart('Tokens', ['Prompt', 'Completion'], timeChart({ label: 'Tokens per ' + r.group, kind: 'bar', labels, fmtLabel, fmt: fmtCompact,
      series: [{ name: 'Prompt', values: val((x) => x.prompt_tokens) }, { name: 'Completion', values: val((x) => x.completion_tokens) }] })),
    chart('Spend (USD)', [], timeChart({ label: 'Spend per ' + r.group, kind: 'line', labels, fmtLabel, fmt: (v) => fmtUSD(v * 1e9),
      series: [{ name: 'Spend', values: val((x) => x.cost_nano / 1e9) }] })),
    chart('Error rate', [], timeChart({ label: 'Error rate per ' + r.group, kind: 'line', labels, fmtLabel, fmt: (v) => +(v * 100).toFixed(1) + '%',
      series: [{ name: 'Error rate', values: opt((x) => x.errors / x.requests) }] })),
    chart('Latency', ['p50', 'p95'], timeChart({ label: 'Latency per ' + r.group, kind: 'line', width: 1140, labels, fmtLabel, fmt: (v) => (v ? fmtMs(v) : '0'),
      series: [{ name: 'p50', values: opt((x) => x.latency_p50_us / 1000) }, { name: 'p95', values: opt((x) => x.latency_p95_us / 1000) }] }), true),
  ));
}

// ---------- Usage ----------

const usageState = { group: 'model', from: '', to: '' };

async function usage(ctx) {
  const { main } = ctx;
  const today = new Date();
  if (!usageState.from) {
    usageState.from = dateInput(new Date(today.getTime() - 29 * 86400e3));
    usageState.to = dateInput(today);
  }
  const group = select('group_by', [['account', 'Account'], ['key', 'Key'], ['model', 'Model'], ['provider', 'Provider']], usageState.group);
  const from = h('input', { type: 'date', name: 'from', 'aria-label': 'From', value: usageState.from });
  const to = h('input', { type: 'date', name: 'to', 'aria-label': 'To (inclusive)', value: usageState.to });
  const query = () => {
    const end = new Date(to.value + 'T00:00:00Z');
    end.setUTCDate(end.getUTCDate() + 1);
    return { group_by: group.value, from: from.value, to: dateInput(end) };
  };
  const apply = (e) => {
    e.preventDefault();
    Object.assign(usageState, { group: group.value, from: from.value, to: to.value });
    route();
  };
  const csv = async () => {
    try {
      const res = await api('GET', '/usage/report' + qs({ ...query(), format: 'csv' }), undefined, { raw: true });
      const cd = res.headers.get('Content-Disposition') || '';
      const m = /filename="([^"]+)"/.exec(cd);
      download(m ? m[1] : 'xroute-usage.csv', await res.blob());
      toast('CSV downloaded.');
    } catch (ex) { toast(ex.message, 'error'); }
  };
  const body = h('div', { class: 'stack' }, h('p', { class: 'loading' }, 'Loading…'));
  main.append(header('Usage', 'Requests, tokens and cost by account, key, model or provider (UTC days).'),
    h('form', { class: 'toolbar', onsubmit: apply },
      h('label', {}, 'Group by ', group), h('label', {}, 'From ', from), h('label', {}, 'To ', to),
      h('button', { type: 'submit', class: 'primary' }, 'Apply'),
      h('button', { type: 'button', id: 'csv', onclick: csv }, 'Download CSV')),
    body);

  const [rep, names] = await Promise.all([api('GET', '/usage/report' + qs(query())), nameMaps(usageState.group)]);
  if (!ctx.live()) return;
  const dim = usageState.group;
  const field = { account: 'account_id', key: 'key_id', model: 'model', provider: 'provider' }[dim];
  const label = (row) => {
    const id = row[field] || '(none)';
    const n = names.get(id);
    return n ? `${n} (${id})` : id;
  };
  const rows = [...(rep.data || [])].sort((a, b) => b.cost_nano - a.cost_nano || b.requests - a.requests);
  const sum = rows.reduce((a, r) => ({ requests: a.requests + r.requests, errors: a.errors + r.errors, tokens: a.tokens + r.prompt_tokens + r.completion_tokens, cost: a.cost + r.cost_nano }), { requests: 0, errors: 0, tokens: 0, cost: 0 });
  clear(body,
    h('div', { class: 'stats' }, stat('Requests', fmtInt(sum.requests)), stat('Errors', fmtInt(sum.errors)), stat('Tokens', fmtCompact(sum.tokens)), stat('Spend', fmtUSD(sum.cost))),
    rows.length ? card('Spend by ' + dim, barList({ label: 'Spend by ' + dim, rows: rows.slice(0, 12).map((r) => ({ label: label(r), value: r.cost_nano / 1e9 })), fmt: (v) => fmtUSD(v * 1e9) })) : null,
    card('By ' + dim, table([
      { label: dim[0].toUpperCase() + dim.slice(1), render: label, mono: dim === 'key' || dim === 'account' },
      { label: 'Requests', num: true, render: (r) => fmtInt(r.requests) },
      { label: 'Errors', num: true, render: (r) => fmtInt(r.errors) },
      { label: 'Prompt tok.', num: true, render: (r) => fmtInt(r.prompt_tokens) },
      { label: 'Completion tok.', num: true, render: (r) => fmtInt(r.completion_tokens) },
      { label: 'Cached tok.', num: true, render: (r) => fmtInt(r.cached_tokens) },
      { label: 'Cost', num: true, render: (r) => fmtUSDText(r.cost_usd) },
      { label: 'p50', num: true, render: (r) => fmtMs(r.latency_p50_us / 1000) },
      { label: 'p95', num: true, render: (r) => fmtMs(r.latency_p95_us / 1000) },
    ], rows, { empty: 'No usage in this range.' })));
}

// nameMaps maps key and account ids to their names for the usage tables.
async function nameMaps(dim) {
  const m = new Map();
  try {
    if (dim === 'key') for (const k of (await api('GET', '/keys?limit=1000')).data) m.set(k.id, k.name);
    if (dim === 'account') for (const a of (await api('GET', '/accounts?limit=1000')).data) m.set(a.id, a.name);
  } catch (e) { if (e instanceof APIError && e.code === 'auth') throw e; }
  return m;
}

// ---------- Keys ----------

const keysState = { kind: '' };

async function keysPage(ctx) {
  const { main } = ctx;
  const list = h('div', { class: 'stack' }, h('p', { class: 'loading' }, 'Loading…'));
  const kind = select('kind', [['', 'All kinds'], ['caller', 'Caller keys'], ['admin', 'Admin keys']], keysState.kind, (e) => { keysState.kind = e.target.value; route(); });
  main.append(header('Keys', 'Caller and admin keys. A key is shown once, when it is created or rotated.', kind,
    h('button', { type: 'button', class: 'primary', id: 'create-key', onclick: () => createKey() }, 'Create key')), list);

  let rows = [];
  let next = '';
  const more = h('button', { type: 'button', onclick: () => load(next) }, 'Load more');
  const load = async (after) => {
    const page = await api('GET', '/keys' + qs({ kind: keysState.kind, limit: 50, after }));
    if (!ctx.live()) return;
    rows = rows.concat(page.data);
    next = page.has_more ? page.next_after : '';
    clear(list, card('', keyTable(rows)), next ? more : null);
  };
  await load('');
}

function keyTable(rows) {
  return table([
    { label: 'Name', render: (k) => [h('div', { class: 'strong' }, k.name || '(unnamed)'), h('div', { class: 'muted small-text' }, [k.kind, k.account_id, limits(k)].filter(Boolean).join(' · '))] },
    { label: 'ID', key: 'id', mono: true },
    { label: 'Key', render: (k) => h('code', {}, k.hint) },
    { label: 'Status', render: (k) => badge(k.status) },
    { label: 'Created', render: (k) => h('span', { title: fmtTime(k.created_at) + ' UTC' }, fmtTime(k.created_at).slice(0, 10)) },
    { label: 'Expires', render: (k) => h('span', { title: k.expires_at ? fmtTime(k.expires_at) + ' UTC' : null }, fmtTime(k.expires_at).slice(0, 10)) },
    { label: '', render: keyActions },
  ], rows, { empty: 'No keys yet.', rowClass: (k) => 'key-row status-' + (['active', 'suspended', 'revoked', 'expired'].includes(k.status) ? k.status : 'other') });
}

function limits(k) {
  return [k.rpm ? k.rpm + ' rpm' : '', k.tpm ? k.tpm + ' tpm' : '', k.max_concurrent ? k.max_concurrent + ' concurrent' : '',
    k.allowed_models.length ? k.allowed_models.join(', ') : ''].filter(Boolean).join(' · ');
}

function keyActions(k) {
  const act = (label, fn, cls = '') => h('button', { type: 'button', class: 'small ' + cls, 'data-action': label.toLowerCase(), 'data-key': k.id, onclick: fn }, label);
  if (k.status === 'revoked' || k.status === 'expired') return h('span', { class: 'muted' }, '—');
  return h('div', { class: 'actions' },
    act('Rotate', () => rotateKey(k)),
    k.status === 'suspended' ? act('Resume', () => keyAction(k, 'resume')) : act('Suspend', () => suspendKey(k)),
    act('Revoke', async () => {
      if (await confirmModal('Revoke key', `Revoke "${k.name || k.id}" (${k.hint})? Requests with it fail from the next one on. This cannot be undone.`, 'Revoke', true)) keyAction(k, 'revoke');
    }, 'danger'));
}

async function keyAction(k, action, body) {
  try {
    const res = await api('POST', `/keys/${encodeURIComponent(k.id)}/${action}`, body || {});
    toast(`Key ${res.name || res.id} is ${res.status}.`);
    route();
  } catch (e) { if (e.code !== 'auth') toast(e.message, 'error'); }
}

function suspendKey(k) {
  const reason = h('input', { type: 'text', name: 'reason', placeholder: 'suspended by an operator' });
  modal('Suspend key', [h('p', {}, `Suspend "${k.name || k.id}" until resumed.`), h('label', {}, 'Reason', reason)], [
    { label: 'Cancel' },
    { label: 'Suspend', primary: true, onclick: () => { keyAction(k, 'suspend', { reason: reason.value.trim() }); } },
  ]);
}

function rotateKey(k) {
  const overlap = h('input', { type: 'text', name: 'overlap', placeholder: 'server default, e.g. 24h', 'aria-label': 'Overlap' });
  const m = modal('Rotate key', [
    h('p', {}, `A new key replaces "${k.name || k.id}" with the same properties. The old one keeps working for the overlap (0s: stops at once).`),
    h('label', {}, 'Overlap', overlap)], [
    { label: 'Cancel' },
    { label: 'Rotate', primary: true, onclick: () => {
      const body = overlap.value.trim() ? { overlap: overlap.value.trim() } : {};
      api('POST', `/keys/${encodeURIComponent(k.id)}/rotate`, body).then((res) => { m.close(); route(); showSecret('Key rotated', res); })
        .catch((e) => { if (e.code !== 'auth') toast(e.message, 'error'); });
      return false;
    } },
  ]);
}

async function createKey() {
  let accounts = [];
  try { accounts = (await api('GET', '/accounts?limit=1000')).data; } catch (e) { if (e.code === 'auth') return; }
  const f = {
    name: h('input', { type: 'text', name: 'name', required: true, placeholder: 'e.g. billing-service' }),
    account: h('select', { name: 'account_id' }, accounts.map((a) => h('option', { value: a.id }, `${a.name} (${a.id})`))),
    kind: select('kind', [['caller', 'Caller'], ['admin', 'Admin']], 'caller'),
    models: h('input', { type: 'text', name: 'allowed_models', placeholder: 'all models (or gpt-4o-mini, gpt-4o)' }),
    rpm: h('input', { type: 'number', name: 'rpm', min: 0, placeholder: 'unlimited' }),
    tpm: h('input', { type: 'number', name: 'tpm', min: 0, placeholder: 'unlimited' }),
    expires: h('input', { type: 'text', name: 'expires_in', placeholder: 'never (or 720h)' }),
  };
  const err = h('p', { class: 'form-error', role: 'alert' });
  const m = modal('Create key', h('div', { class: 'form-grid' },
    h('label', {}, 'Name', f.name), h('label', {}, 'Account', f.account), h('label', {}, 'Kind', f.kind),
    h('label', {}, 'Allowed models', f.models), h('label', {}, 'Requests / min', f.rpm), h('label', {}, 'Tokens / min', f.tpm),
    h('label', {}, 'Expires in', f.expires), err), [
    { label: 'Cancel' },
    { label: 'Create', primary: true, onclick: () => {
      const body = { name: f.name.value.trim(), kind: f.kind.value };
      if (f.account.value) body.account_id = f.account.value;
      const models = f.models.value.split(',').map((s) => s.trim()).filter(Boolean);
      if (models.length) body.allowed_models = models;
      if (f.rpm.value) body.rpm = Number(f.rpm.value);
      if (f.tpm.value) body.tpm = Number(f.tpm.value);
      if (f.expires.value.trim()) body.expires_in = f.expires.value.trim();
      api('POST', '/keys', body).then((res) => { m.close(); route(); showSecret('Key created', res); })
        .catch((e) => { if (e.code !== 'auth') err.textContent = e.message; });
      return false;
    } },
  ]);
}

// showSecret shows a new key once, with a copy button.
function showSecret(title, k) {
  const out = h('input', { type: 'text', readonly: true, id: 'new-key', class: 'secret', value: k.key, 'aria-label': 'New key', onfocus: (e) => e.target.select() });
  const copied = h('span', { class: 'copied', role: 'status' });
  modal(title, [
    h('p', {}, 'Copy the key now: it is shown only this once and cannot be retrieved later.'),
    h('div', { class: 'secret-row' }, out, h('button', { type: 'button', id: 'copy-key', onclick: async () => { copied.textContent = (await copyText(k.key)) ? 'Copied.' : 'Select and copy it by hand.'; } }, 'Copy')),
    copied,
    h('dl', { class: 'facts' }, h('dt', {}, 'Name'), h('dd', {}, k.name || '—'), h('dt', {}, 'ID'), h('dd', { class: 'mono' }, k.id),
      h('dt', {}, 'Kind'), h('dd', {}, k.kind), h('dt', {}, 'Account'), h('dd', { class: 'mono' }, k.account_id)),
  ], [{ label: 'Done', primary: true }]);
}

// ---------- Deployments ----------

async function deployments(ctx) {
  const { main } = ctx;
  const body = h('div', { class: 'stack' }, h('p', { class: 'loading' }, 'Loading…'));
  const updated = h('span', { class: 'muted' });
  main.append(header('Deployments', 'Provider deployments: circuit breaker, moving latency and time to first token, errors, load.', updated,
    h('button', { type: 'button', onclick: () => load() }, 'Refresh')), body);
  const load = async () => {
    const res = await api('GET', '/deployments');
    if (!ctx.live()) return;
    const list = res.data || [];
    const open = list.filter((d) => d.breaker !== 'closed').length;
    updated.textContent = 'Updated ' + new Date().toLocaleTimeString();
    clear(body,
      h('div', { class: 'stats' },
        stat('Deployments', fmtInt(list.length)),
        stat('Breakers not closed', fmtInt(open)),
        stat('In flight', fmtInt(list.reduce((a, d) => a + d.in_flight, 0))),
        stat('Requests', fmtInt(list.reduce((a, d) => a + d.requests, 0)))),
      card('', table([
        { label: 'Deployment', render: (d) => [h('div', { class: 'strong' }, d.id), h('div', { class: 'muted small-text' }, 'serves ' + d.public_models.join(', '))] },
        { label: 'Breaker', render: (d) => [badge(d.breaker), d.cooldown_until ? h('div', { class: 'muted small-text' }, 'until ' + fmtTime(d.cooldown_until)) : null] },
        { label: 'Latency', num: true, render: (d) => fmtMs(d.latency_ms) },
        { label: 'p95', num: true, render: (d) => fmtMs(d.latency_p95_ms) },
        { label: 'TTFT', num: true, render: (d) => fmtMs(d.ttft_ms) },
        { label: 'TTFT p95', num: true, render: (d) => fmtMs(d.ttft_p95_ms) },
        { label: 'Error rate', num: true, render: (d) => errorBar(d.error_rate) },
        { label: 'In flight', num: true, render: (d) => fmtInt(d.in_flight) },
        { label: 'Requests', num: true, render: (d) => fmtInt(d.requests) },
        { label: 'Failures', num: true, render: (d) => fmtInt(d.failures) },
        { label: 'Keys', num: true, render: (d) => (d.uses_config_key ? 'config' : fmtInt(d.pool_size)) },
      ], list, { empty: 'No deployments configured.', rowClass: () => 'deployment-row' })));
  };
  await load();
  const timer = setInterval(() => load().catch((e) => { if (e.code !== 'auth') updated.textContent = e.message; }), 5000);
  ctx.onStop(() => clearInterval(timer));
}

function errorBar(rate) {
  const pct = Math.max(0, Math.min(1, Number(rate) || 0));
  const bar = h('span', { class: 'meter' }, h('span', { class: 'meter-fill ' + (pct > 0.2 ? 'bad' : pct > 0.05 ? 'warn' : 'ok') }));
  bar.firstChild.style.width = (pct * 100).toFixed(1) + '%';
  return h('span', { class: 'meter-cell' }, bar, fmtPct(pct));
}

// ---------- Credits ----------

let creditsAccount = '';

function newIdemKey() {
  if (crypto.randomUUID) return 'ui-' + crypto.randomUUID();
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return 'ui-' + [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

async function credits(ctx) {
  const { main } = ctx;
  const body = h('div', { class: 'stack' }, h('p', { class: 'loading' }, 'Loading…'));
  main.append(header('Credits', 'Prepaid balances per account, top-ups and the ledger.'), body);
  const accounts = (await api('GET', '/accounts?limit=1000')).data;
  if (!creditsAccount || !accounts.some((a) => a.id === creditsAccount)) creditsAccount = accounts.length ? accounts[0].id : '';
  const [balances, ledger] = await Promise.all([
    Promise.all(accounts.map((a) => api('GET', `/accounts/${encodeURIComponent(a.id)}/credits`).catch((e) => { if (e.code === 'auth') throw e; return null; }))),
    creditsAccount ? api('GET', `/accounts/${encodeURIComponent(creditsAccount)}/ledger?limit=100`) : null,
  ]);
  if (!ctx.live()) return;
  const rows = accounts.map((a, i) => ({ ...a, credits: balances[i] }));
  const usd = (r, f) => (r.credits ? fmtUSDText(r.credits[f]) : '—');
  const detail = h('div', { class: 'stack' });
  clear(body, card('Accounts', table([
    { label: 'Account', render: (r) => h('a', { href: '#/credits', class: 'strong', onclick: (e) => { e.preventDefault(); creditsAccount = r.id; route(); } }, r.name) },
    { label: 'ID', key: 'id', mono: true },
    { label: 'Status', render: (r) => badge(r.status) },
    { label: 'Balance', num: true, render: (r) => usd(r, 'balance_usd') },
    { label: 'Reserved', num: true, render: (r) => usd(r, 'reserved_usd') },
    { label: 'Available', num: true, render: (r) => h('span', { class: 'strong', 'data-available': r.id }, usd(r, 'available_usd')) },
  ], rows, { empty: 'No accounts.', rowClass: (r) => (r.id === creditsAccount ? 'selected' : '') })), detail);
  if (!creditsAccount) return;
  const acct = rows.find((r) => r.id === creditsAccount);

  const amount = h('input', { type: 'text', name: 'amount', inputmode: 'decimal', placeholder: '10.00', required: true, 'aria-label': 'Amount (USD)' });
  const idem = h('input', { type: 'text', name: 'idempotency_key', value: newIdemKey(), required: true, 'aria-label': 'Idempotency key', class: 'mono' });
  const msg = h('p', { class: 'form-note', role: 'status' });
  const topUp = h('form', { class: 'toolbar', id: 'topup', onsubmit: async (e) => {
    e.preventDefault();
    try {
      const res = await api('POST', `/accounts/${encodeURIComponent(acct.id)}/credits`, { amount: amount.value.trim(), idempotency_key: idem.value.trim() });
      toast(res.replayed ? 'Replayed: this idempotency key was already used; nothing changed.' : `Added ${fmtUSDText(res.entry.amount_usd)} to ${acct.name}.`);
      route();
    } catch (ex) { if (ex.code !== 'auth') msg.textContent = ex.message; }
  } },
  h('label', {}, 'Amount (USD) ', amount), h('label', { class: 'grow' }, 'Idempotency key ', idem),
  h('button', { type: 'submit', class: 'primary' }, 'Top up'));

  clear(detail,
    card(`Top up ${acct.name}`, h('p', { class: 'muted' }, 'Replaying a top-up with the same idempotency key changes nothing.'), topUp, msg),
    card(`Ledger · ${acct.name}`, table([
      { label: '#', num: true, key: 'id' },
      { label: 'Time', render: (e) => fmtTime(e.created_at) },
      { label: 'Kind', render: (e) => h('span', { class: 'pill' }, e.kind) },
      { label: 'Amount', num: true, render: (e) => h('span', { class: e.amount_nano < 0 ? 'neg' : 'pos' }, fmtUSDText(e.amount_usd)) },
      { label: 'Reference', key: 'reference', mono: true },
      { label: 'Request', key: 'request_id', mono: true },
      { label: 'Key', key: 'key_id', mono: true },
      { label: 'Actor', key: 'actor' },
    ], ledger.data, { empty: 'No ledger entries.', rowClass: () => 'ledger-row' })));
}

// ---------- Audit log ----------

const auditState = { kind: '' };

async function audit(ctx) {
  const { main } = ctx;
  const kind = h('input', { type: 'text', name: 'kind', list: 'audit-kinds', value: auditState.kind, placeholder: 'all kinds (prefix, e.g. key.)', 'aria-label': 'Kind' });
  const kinds = h('datalist', { id: 'audit-kinds' }, ['key.', 'key.created', 'key.rotated', 'key.revoked', 'key.suspended', 'key.resumed', 'account.', 'credits.changed', 'provider_key.', 'vault.', 'auth.', 'anomaly.', 'admin.'].map((k) => h('option', { value: k })));
  const result = h('div', { id: 'verify-result' });
  const verify = async () => {
    clear(result, h('div', { class: 'banner' }, 'Verifying the hash chain…'));
    try {
      const v = await api('GET', '/audit/verify');
      clear(result, v.ok
        ? h('div', { class: 'banner ok', role: 'status' }, `Chain intact: ${fmtInt(v.rows)} events verified.`)
        : h('div', { class: 'banner error', role: 'alert' }, v.broken_at_seq
          ? `Chain broken at event #${v.broken_at_seq}: ${v.reason} (${fmtInt(v.rows)} events checked).`
          : `Chain not verified: ${v.reason}`));
    } catch (e) { if (e.code !== 'auth') clear(result, h('div', { class: 'banner error' }, e.message)); }
  };
  const list = h('div', { class: 'stack' }, h('p', { class: 'loading' }, 'Loading…'));
  main.append(header('Audit log', 'Every key, credit and provider-key change, chained under a key from the vault.',
    h('button', { type: 'button', id: 'verify', class: 'primary', onclick: verify }, 'Verify chain')),
  h('form', { class: 'toolbar', onsubmit: (e) => { e.preventDefault(); auditState.kind = kind.value.trim(); route(); } },
    h('label', { class: 'grow' }, 'Kind ', kind), kinds, h('button', { type: 'submit' }, 'Filter'),
    auditState.kind ? h('button', { type: 'button', onclick: () => { auditState.kind = ''; route(); } }, 'Clear') : null),
  result, list);

  let rows = [];
  let before = '';
  const more = h('button', { type: 'button', onclick: () => load(before) }, 'Load older');
  const load = async (b) => {
    const page = await api('GET', '/audit' + qs({ kind: auditState.kind, limit: 100, before: b }));
    if (!ctx.live()) return;
    rows = rows.concat(page.data);
    before = page.has_more ? page.next_after : '';
    clear(list, card('', table([
      { label: '#', num: true, key: 'seq' },
      { label: 'Time', render: (e) => fmtTime(e.at) },
      { label: 'Kind', render: (e) => h('span', { class: 'pill' }, e.kind) },
      { label: 'Actor', mono: true, render: (e) => [h('div', {}, e.actor), e.ip ? h('div', { class: 'muted small-text' }, 'from ' + e.ip) : null] },
      { label: 'Subject', mono: true, render: (e) => [h('div', {}, e.subject || '—'), e.account_id && e.account_id !== e.subject ? h('div', { class: 'muted small-text' }, 'account ' + e.account_id) : null] },
      { label: 'Details', render: (e) => details(e.details) },
    ], rows, { empty: auditState.kind ? 'No events of this kind.' : 'No events yet.', rowClass: () => 'audit-row' })), before ? more : null);
  };
  await load('');
}

function details(d) {
  const entries = Object.entries(d || {});
  if (!entries.length) return h('span', { class: 'muted' }, '—');
  return h('span', { class: 'details' }, entries.map(([k, v]) => h('span', { class: 'kv' }, h('b', {}, k), ' ', typeof v === 'string' ? v : JSON.stringify(v))));
}

window.addEventListener('hashchange', route);
route();
