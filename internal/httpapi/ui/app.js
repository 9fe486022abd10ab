// xroute dashboard: admin-key login and one page per hash route. Every
// table pages on the server (the admin API's cursor, next_after); charts
// are uPlot's (charts.js).
import {
  h, clear, session, hooks, api, qs, toast, modal, confirmModal, copyText, table, badge, download, APIError, pager, toDateEnd,
  fmtInt, fmtCompact, fmtUSD, fmtUSDText, fmtPct, fmtMs, fmtTime, dateInput,
} from './lib.js';
import { timeChart, disposeCharts, bucketFor, fmtUSDAxis, fmtPctAxis, fmtCountAxis, fmtMsAxis } from './charts.js';

const app = document.getElementById('app');

const pages = [
  { id: 'overview', label: 'Overview', render: overview },
  { id: 'usage', label: 'Usage', render: usage },
  { id: 'requests', label: 'Requests', render: requests },
  { id: 'keys', label: 'Keys', render: keysPage },
  { id: 'deployments', label: 'Deployments', render: deployments },
  { id: 'credits', label: 'Credits', render: credits },
  { id: 'audit', label: 'Audit log', render: audit },
];

// focus is the account the operator is looking at: the last one picked in
// any page's account filter or in Credits. The create-key form starts on
// it.
const focus = { account: '' };
const setFocus = (id) => { if (id) focus.account = id; };

// me is the signed-in admin key's role (GET /admin/v1/me). The server
// refuses what a role may not do (403 role_forbidden); the dashboard hides
// those controls so that an operator never meets the refusal.
const me = { role: '' };
const can = {
  manageKeys: () => me.role === 'owner' || me.role === 'operator',
  adminKeys: () => me.role === 'owner', // make or act on admin keys
  topUp: () => me.role === 'owner' || me.role === 'billing',
};

let cleanup = null; // the current page's timers
let generation = 0; // a page load's answers are dropped once the page changed

hooks.onAuthLost = (msg) => {
  session.key = '';
  me.role = '';
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
      me.role = (await api('GET', '/me')).role;
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
  disposeCharts(app);
}

function shell(active) {
  const nav = h('nav', { class: 'sidebar', 'aria-label': 'Pages' }, h('div', { class: 'side-inner' },
    h('div', { class: 'brand' }, h('span', { class: 'logo' }, 'x'), 'xroute'),
    h('ul', {}, pages.map((p) => h('li', {}, h('a', { href: '#/' + p.id, class: p.id === active ? 'active' : '', 'aria-current': p.id === active ? 'page' : null, 'data-page': p.id }, p.label)))),
    h('p', { class: 'muted small-text', id: 'role' }, 'Role: ' + me.role),
    h('button', { type: 'button', class: 'logout', onclick: () => { session.key = ''; me.role = ''; location.hash = ''; login('Signed out.'); } }, 'Sign out')));
  const main = h('main', { id: 'main' });
  clear(app, h('div', { class: 'layout' }, nav, main));
  return main;
}

function route() {
  if (!session.key) return login();
  if (!me.role) { // a reload keeps the key, not the role
    api('GET', '/me').then((r) => { me.role = r.role; route(); })
      .catch((e) => { if (!(e instanceof APIError && e.code === 'auth')) { session.key = ''; login(e.message); } });
    return;
  }
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


// ---------- Filters shared by the pages ----------

// Option lists for the filters: the first 200 accounts (and keys), kept
// for half a minute so that moving between pages does not refetch them.
const optionCache = new Map();
async function cached(path) {
  const hit = optionCache.get(path);
  if (hit && Date.now() - hit.at < 30000) return hit.data;
  const data = (await api('GET', path)).data || [];
  optionCache.set(path, { at: Date.now(), data });
  return data;
}
const accountList = () => cached('/accounts?limit=200');
const keyList = (account) => cached('/keys' + qs({ limit: 200, account_id: account, kind: 'caller' }));
async function modelList() {
  try {
    const deps = (await cached('/deployments'));
    return [...new Set(deps.flatMap((d) => d.public_models || []))].sort();
  } catch (e) { if (e.code === 'auth') throw e; return []; }
}

function accountSelect(accounts, value, label = 'All accounts') {
  return h('select', { name: 'account', 'aria-label': 'Account' },
    h('option', { value: '' }, label),
    accounts.map((a) => h('option', { value: a.id, selected: a.id === value }, a.name || a.id)));
}

function keySelect(keyRows, value) {
  return h('select', { name: 'key', 'aria-label': 'Key' },
    h('option', { value: '' }, 'All keys'),
    keyRows.map((k) => h('option', { value: k.id, selected: k.id === value }, (k.name || '(unnamed)') + ' · ' + k.hint)));
}

function modelInput(models, value) {
  const id = 'models-' + Math.random().toString(36).slice(2, 8);
  return [h('input', { type: 'text', name: 'model', list: id, value, placeholder: 'any model', 'aria-label': 'Model', size: 14 }),
    h('datalist', { id }, models.map((m) => h('option', { value: m })))];
}

const dateField = (name, value, label) => h('input', { type: 'date', name, value, 'aria-label': label });

// filterBar is a page's filter form: labelled fields, Apply and Clear.
function filterBar(fields, onApply, onClear) {
  return h('form', { class: 'toolbar filters', onsubmit: (e) => { e.preventDefault(); onApply(); } },
    fields.map(([label, el]) => h('label', {}, h('span', {}, label), el)),
    h('div', { class: 'filter-actions' },
      h('button', { type: 'submit', class: 'primary' }, 'Apply'),
      onClear ? h('button', { type: 'button', onclick: onClear }, 'Clear') : null));
}

// names maps account and key ids to names for the tables (the first 200
// of each; an id beyond them shows as the id).
async function nameIndex() {
  const [accounts, keyRows] = await Promise.all([accountList(), cached('/keys?limit=200')]);
  return { account: new Map(accounts.map((a) => [a.id, a.name])), key: new Map(keyRows.map((k) => [k.id, k.name])) };
}

function pagerError(e) { if (!(e instanceof APIError && e.code === 'auth')) toast(e.message, 'error'); }

// ---------- Overview ----------

const RANGES = [['24h', 'Last 24 hours', 24], ['48h', 'Last 48 hours', 48], ['7d', 'Last 7 days', 168], ['30d', 'Last 30 days', 720], ['90d', 'Last 90 days', 2160]];
const overviewState = { range: '24h', account: '' };

// bucketsFor is the range as whole buckets ending with the current one.
function bucketsFor(hours) {
  const group = bucketFor(hours);
  const step = group === 'hour' ? 3600e3 : 86400e3;
  const to = new Date(Math.ceil((Date.now() + 1) / step) * step);
  const from = new Date(to.getTime() - Math.ceil((hours * 3600e3) / step) * step);
  const buckets = [];
  for (let t = from.getTime(); t < to.getTime(); t += step) buckets.push(t);
  return { group, from, to, buckets };
}

async function overview(ctx) {
  const { main } = ctx;
  const accounts = await accountList();
  if (!ctx.live()) return;
  const body = h('div', { class: 'stack' }, h('p', { class: 'loading' }, 'Loading…'));
  const rangeSel = select('range', RANGES.map(([v, l]) => [v, l]), overviewState.range, (e) => { overviewState.range = e.target.value; route(); });
  const acctSel = accountSelect(accounts, overviewState.account);
  acctSel.addEventListener('change', () => { overviewState.account = acctSel.value; setFocus(acctSel.value); route(); });
  main.append(header('Overview', 'Traffic, tokens, spend, errors and latency' + (overviewState.account ? ' of one account.' : ' across every account.'),
    acctSel, rangeSel, h('button', { type: 'button', onclick: () => route() }, 'Refresh')), body);

  const hours = RANGES.find((r) => r[0] === overviewState.range)[2];
  const { group, from, to, buckets } = bucketsFor(hours);
  const q = { from: from.toISOString(), to: to.toISOString(), account_id: overviewState.account };
  const [series, total] = await Promise.all([
    api('GET', '/usage/report' + qs({ group_by: group, ...q })),
    api('GET', '/usage/report' + qs(q)),
  ]);
  if (!ctx.live()) return;

  const byT = new Map((series.data || []).map((row) => [new Date(row.bucket_start).getTime(), row]));
  const rows = buckets.map((t) => byT.get(t) || null);
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

  const per = group === 'hour' ? 'per hour' : 'per day';
  const chart = (title, opts, wide) => {
    const el = card(title + ' ' + per, timeChart({ label: title + ' ' + per, buckets, group, ...opts }));
    if (wide) el.classList.add('wide');
    return el;
  };
  clear(body, stats, h('div', { class: 'grid2' },
    chart('Requests', { kind: 'bar', fmt: fmtCountAxis,
      series: [{ label: 'Succeeded', values: val((x) => x.requests - x.errors) }, { label: 'Failed', values: val((x) => x.errors) }] }),
    chart('Tokens', { kind: 'bar', fmt: fmtCountAxis,
      series: [{ label: 'Prompt', values: val((x) => x.prompt_tokens) }, { label: 'Completion', values: val((x) => x.completion_tokens) }] }),
    chart('Spend', { kind: 'bar', fmt: fmtUSDAxis, series: [{ label: 'Spend', values: val((x) => x.cost_nano / 1e9) }] }),
    chart('Error rate', { kind: 'line', fmt: fmtPctAxis, series: [{ label: 'Error rate', values: opt((x) => x.errors / x.requests) }] }),
    chart('Latency', { kind: 'line', fmt: fmtMsAxis,
      series: [{ label: 'p50', values: opt((x) => x.latency_p50_us / 1000) }, { label: 'p95', values: opt((x) => x.latency_p95_us / 1000) }] }, true),
  ));
}

// ---------- Usage ----------

const usageState = { group: 'model', account: '', key: '', model: '', from: '', to: '' };
const DIMS = { account: 'account_id', key: 'key_id', model: 'model', provider: 'provider' };

async function usage(ctx) {
  const { main } = ctx;
  if (!usageState.from) {
    usageState.from = dateInput(new Date(Date.now() - 29 * 86400e3));
    usageState.to = dateInput(new Date());
  }
  const [accounts, keyRows, models, names] = await Promise.all([accountList(), keyList(usageState.account), modelList(), nameIndex()]);
  if (!ctx.live()) return;
  const f = {
    group: select('group_by', [['account', 'Account'], ['key', 'Key'], ['model', 'Model'], ['provider', 'Provider']], usageState.group),
    account: accountSelect(accounts, usageState.account),
    key: keySelect(keyRows, usageState.key),
    model: modelInput(models, usageState.model),
    from: dateField('from', usageState.from, 'From'),
    to: dateField('to', usageState.to, 'To (inclusive)'),
  };
  const apply = () => {
    Object.assign(usageState, { group: f.group.value, account: f.account.value, key: f.key.value, model: f.model[0].value.trim(), from: f.from.value, to: f.to.value });
    setFocus(usageState.account);
    route();
  };
  const filters = () => ({ from: usageState.from, to: toDateEnd(usageState.to), account_id: usageState.account, key_id: usageState.key, model: usageState.model });
  const csv = async () => {
    try {
      const res = await api('GET', '/usage/report' + qs({ group_by: usageState.group, ...filters(), format: 'csv' }), undefined, { raw: true });
      const cd = res.headers.get('Content-Disposition') || '';
      const m = /filename="([^"]+)"/.exec(cd);
      download(m ? m[1] : 'xroute-usage.csv', await res.blob());
      toast('CSV downloaded.');
    } catch (ex) { toast(ex.message, 'error'); }
  };
  const body = h('div', { class: 'stack' }, h('p', { class: 'loading' }, 'Loading…'));
  main.append(header('Usage', 'Requests, tokens and cost by account, key, model or provider (UTC days).',
    h('button', { type: 'button', id: 'csv', onclick: csv }, 'Download CSV')),
  filterBar([['Group by', f.group], ['Account', f.account], ['Key', f.key], ['Model', f.model], ['From', f.from], ['To', f.to]], apply,
    () => { Object.assign(usageState, { account: '', key: '', model: '', from: '', to: '' }); route(); }),
  body);

  const dim = usageState.group;
  const field = DIMS[dim];
  const label = (row) => {
    const id = row[field] || '(none)';
    const n = names[dim] && names[dim].get(id);
    return n ? `${n} (${id})` : id;
  };
  const hours = Math.max(24, (new Date(toDateEnd(usageState.to)) - new Date(usageState.from)) / 3600e3);
  const group = bucketFor(hours);
  // The totals, and the five largest groups (the report pages largest
  // cost first) over time, each its own small query: bounded however
  // many keys or accounts there are.
  const [tot, top, series] = await Promise.all([
    api('GET', '/usage/report' + qs(filters())),
    api('GET', '/usage/report' + qs({ group_by: dim, ...filters(), limit: 5 })),
    api('GET', '/usage/report' + qs({ group_by: group, ...filters() })),
  ]);
  if (!ctx.live()) return;
  const topRows = (top.data || []).filter((r) => r.cost_nano > 0 || r.requests > 0);
  const perGroup = await Promise.all(topRows.map((r) => api('GET', '/usage/report' + qs({ group_by: group, ...filters(), [field]: r[field] || '' }))));
  if (!ctx.live()) return;
  const start = new Date(usageState.from + 'T00:00:00Z').getTime();
  const end = new Date(toDateEnd(usageState.to) + 'T00:00:00Z').getTime();
  const step = group === 'hour' ? 3600e3 : 86400e3;
  const buckets = [];
  for (let t = start; t < end; t += step) buckets.push(t);
  const at = (rep) => { const m = new Map((rep.data || []).map((r) => [new Date(r.bucket_start).getTime(), r.cost_nano / 1e9])); return buckets.map((t) => m.get(t) || 0); };
  const totalSeries = at(series);
  const chartSeries = topRows.map((r, i) => ({ label: label(r), values: at(perGroup[i]) }));
  if (topRows.length && top.has_more) {
    chartSeries.push({ label: 'Other', values: totalSeries.map((v, i) => Math.max(0, v - chartSeries.reduce((a, s) => a + s.values[i], 0))) });
  }
  const sum = (tot.data && tot.data[0]) || { requests: 0, errors: 0, prompt_tokens: 0, completion_tokens: 0, cost_nano: 0 };

  const table = pager({
    name: 'usage',
    limit: 25,
    empty: 'No usage in this range.',
    rowClass: () => 'usage-row',
    fetchPage: (after, limit) => api('GET', '/usage/report' + qs({ group_by: dim, ...filters(), limit, after })),
    columns: [
      { label: dim[0].toUpperCase() + dim.slice(1), render: label, mono: dim === 'key' || dim === 'account' },
      { label: 'Requests', num: true, render: (r) => fmtInt(r.requests) },
      { label: 'Errors', num: true, render: (r) => fmtInt(r.errors) },
      { label: 'Prompt tok.', num: true, render: (r) => fmtInt(r.prompt_tokens) },
      { label: 'Completion tok.', num: true, render: (r) => fmtInt(r.completion_tokens) },
      { label: 'Cached tok.', num: true, render: (r) => fmtInt(r.cached_tokens) },
      { label: 'Cache writes', num: true, render: (r) => fmtInt(r.cache_write_tokens) },
      { label: 'Cached %', num: true, render: (r) => fmtPct(r.prompt_cache_hit_ratio) },
      { label: 'Cost', num: true, render: (r) => fmtUSDText(r.cost_usd) },
      { label: 'Prompt cache saved', num: true, render: (r) => fmtUSDText(r.prompt_cache_saved_usd) },
      { label: 'Cache hits', num: true, render: (r) => fmtInt(r.cache_hits || 0) },
      { label: 'Hit ratio', num: true, render: (r) => (r.requests ? fmtPct(r.response_cache_hit_ratio || 0) : '—') },
      { label: 'Hits saved', num: true, render: (r) => fmtUSDText(r.response_cache_saved_usd || '0') },
      { label: 'p50', num: true, render: (r) => fmtMs(r.latency_p50_us / 1000) },
      { label: 'p95', num: true, render: (r) => fmtMs(r.latency_p95_us / 1000) },
    ],
  });
  await table.load();
  if (!ctx.live()) return;
  clear(body,
    h('div', { class: 'stats' }, stat('Requests', fmtInt(sum.requests)), stat('Errors', fmtInt(sum.errors)),
      stat('Tokens', fmtCompact(sum.prompt_tokens + sum.completion_tokens)), stat('Spend', fmtUSD(sum.cost_nano)),
      stat('Prompt cache hit', fmtPct(sum.prompt_cache_hit_ratio || 0)), stat('Saved by prompt cache', fmtUSD(sum.prompt_cache_saved_nano || 0)),
      stat('Saved by the response cache', fmtUSD(sum.response_cache_saved_nano || 0), fmtInt(sum.cache_hits || 0) + ' hits · ' + (sum.requests ? fmtPct((sum.cache_hits || 0) / sum.requests) : '—'))),
    chartSeries.length ? card(`Spend by ${dim}, ${group === 'hour' ? 'per hour' : 'per day'}`,
      timeChart({ label: 'Spend by ' + dim, buckets, group, kind: 'bar', fmt: fmtUSDAxis, series: chartSeries, height: 240 })) : null,
    card('By ' + dim, table.el));
}

// ---------- Request log ----------

const requestsState = { account: '', key: '', model: '', provider: '', status: '', from: '', to: '', request_id: '' };
const STATUSES = [['', 'Any status'], ['ok', 'Succeeded (2xx)'], ['error', 'Failed'], ['4xx', '4xx'], ['5xx', '5xx'], ['429', '429'], ['499', '499 (caller left)']];

async function requests(ctx) {
  const { main } = ctx;
  const [accounts, keyRows, models] = await Promise.all([accountList(), keyList(requestsState.account), modelList()]);
  if (!ctx.live()) return;
  const f = {
    search: h('input', { type: 'search', name: 'request_id', value: requestsState.request_id, placeholder: 'Request id (req_…)', 'aria-label': 'Request id', spellcheck: 'false', class: 'mono' }),
    account: accountSelect(accounts, requestsState.account),
    key: keySelect(keyRows, requestsState.key),
    model: modelInput(models, requestsState.model),
    provider: h('input', { type: 'text', name: 'provider', value: requestsState.provider, placeholder: 'any provider', 'aria-label': 'Provider', size: 10 }),
    status: select('status', STATUSES, requestsState.status),
    from: dateField('from', requestsState.from, 'From'),
    to: dateField('to', requestsState.to, 'To (inclusive)'),
  };
  const apply = () => {
    Object.assign(requestsState, { request_id: f.search.value.trim(), account: f.account.value, key: f.key.value, model: f.model[0].value.trim(),
      provider: f.provider.value.trim(), status: f.status.value, from: f.from.value, to: f.to.value });
    setFocus(requestsState.account);
    route();
  };
  const search = h('form', { class: 'search', role: 'search', onsubmit: (e) => { e.preventDefault(); apply(); } }, f.search, h('button', { type: 'submit' }, 'Find'));
  const body = h('div', { class: 'stack' }, h('p', { class: 'loading' }, 'Loading…'));
  main.append(header('Requests', 'One row per request: who sent it, which deployment served it, how long it took and what it cost.', search),
    filterBar([['Account', f.account], ['Key', f.key], ['Model', f.model], ['Provider', f.provider], ['Status', f.status], ['From', f.from], ['To', f.to]], apply,
      () => { Object.keys(requestsState).forEach((k) => { requestsState[k] = ''; }); route(); }),
    body);

  const names = await nameIndex();
  const acctName = (r) => r.account_name || names.account.get(r.account_id) || r.account_id;
  const keyName = (r) => r.key_name || names.key.get(r.key_id) || r.key_id || '—';
  const list = pager({
    name: 'requests',
    limit: 50,
    empty: requestsState.request_id ? 'No request with this id.' : 'No requests match.',
    rowClass: (r) => 'request-row ' + (r.status >= 400 ? 'failed' : ''),
    fetchPage: (before, limit) => api('GET', '/requests' + qs({
      account: requestsState.account, key: requestsState.key, model: requestsState.model, provider: requestsState.provider,
      status: requestsState.status, request_id: requestsState.request_id,
      from: requestsState.from ? requestsState.from + 'T00:00:00Z' : '', to: requestsState.to ? toDateEnd(requestsState.to) + 'T00:00:00Z' : '',
      before, limit })),
    columns: [
      // Two lines a cell (the id under the time, the account under the
      // key, TTFT under latency, attempts under status): every field of
      // the row fits a 1280 px screen.
      { label: 'Time · request id', render: (r) => [h('div', { title: r.created_at + ' (UTC)' }, fmtSeconds(r.created_at)),
        h('button', { type: 'button', class: 'link mono small-text req-id', 'data-request': r.request_id, title: r.request_id, onclick: () => requestDetail(r.request_id) }, r.request_id)] },
      { label: 'Key · account', render: (r) => [h('div', {}, keyName(r)), h('div', { class: 'muted small-text' }, acctName(r))] },
      { label: 'Model', render: (r) => [h('div', {}, r.model), r.stream ? h('div', { class: 'muted small-text' }, 'stream') : null] },
      { label: 'Served by', render: (r) => {
        // provider/model deployments as the provider over the model.
        const dep = r.deployment || '';
        const rest = r.provider && dep.startsWith(r.provider + '/') ? dep.slice(r.provider.length + 1) : dep;
        return [h('div', { title: dep || null }, r.provider || dep || '—'), rest && rest !== r.provider ? h('div', { class: 'muted small-text' }, rest) : null];
      } },
      { label: 'Status', render: (r) => [statusBadge(r.status), h('div', { class: 'muted small-text' },
        [r.error_code, r.attempts === 1 ? '1 attempt' : fmtInt(r.attempts) + ' attempts'].filter(Boolean).join(' · '))] },
      { label: 'Latency', num: true, render: (r) => [h('div', {}, fmtMs(r.latency_ms)), r.ttft_ms ? h('div', { class: 'muted small-text nowrap' }, 'TTFT ' + fmtMs(r.ttft_ms)) : null] },
      { label: 'Tokens in/out', num: true, render: (r) => [h('div', {}, fmtInt(r.input_tokens) + ' / ' + fmtInt(r.output_tokens)),
        r.cached_tokens || r.cache_write_tokens ? h('div', { class: 'muted small-text nowrap', title: 'input tokens read from / written to the provider\'s prompt cache' },
          'cache ' + fmtInt(r.cached_tokens) + ' / ' + fmtInt(r.cache_write_tokens)) : null] },
      { label: 'Cost', num: true, render: (r) => h('span', { title: r.estimated ? 'estimated' : null }, fmtUSDText(r.cost_usd) + (r.estimated ? '*' : '')) },
    ],
  });
  try {
    await list.load();
  } catch (e) {
    if (e instanceof APIError && e.status === 404) {
      clear(body, h('div', { class: 'banner error', role: 'alert' }, 'This server does not keep a request log (GET /admin/v1/requests answered 404).'));
      return;
    }
    throw e;
  }
  if (!ctx.live()) return;
  clear(body, card('', h('div', { class: 'dense' }, list.el)));
}

const fmtSeconds = (t) => { const d = new Date(t); return isNaN(d) ? String(t) : d.toISOString().slice(5, 19).replace('T', ' '); };

function statusBadge(status) {
  const s = Number(status) || 0;
  return h('span', { class: 'badge ' + (s >= 200 && s < 300 ? 'ok' : s === 429 || s === 499 ? 'warn' : 'bad') }, String(status));
}

async function requestDetail(id) {
  let r;
  try {
    r = await api('GET', '/requests/' + encodeURIComponent(id));
  } catch (e) { if (e.code !== 'auth') toast(e.message, 'error'); return; }
  const facts = [
    ['Request id', r.request_id, true], ['Time', r.created_at], ['Account', `${r.account_name || ''} (${r.account_id})`],
    ['Key', `${r.key_name || ''} (${r.key_id || '—'})`], ['Endpoint', r.endpoint], ['Model asked', r.model],
    ['Served by', [r.provider, r.deployment].filter(Boolean).join(' · ') || '—'], ['Stream', r.stream ? 'yes' : 'no'],
    ['Attempts', fmtInt(r.attempts)], ['Status', String(r.status) + (r.error_code ? ' · ' + r.error_code : '')],
    ['Latency', fmtMs(r.latency_ms)], ['TTFT', r.ttft_ms ? fmtMs(r.ttft_ms) : '—'],
    ['Tokens', `${fmtInt(r.input_tokens)} in · ${fmtInt(r.output_tokens)} out`],
    ['Prompt cache', `${fmtInt(r.cached_tokens)} read · ${fmtInt(r.cache_write_tokens)} written · saved ${fmtUSDText(r.prompt_cache_saved_usd)}`],
    ['Cost', fmtUSDText(r.cost_usd) + (r.estimated ? ' (estimated)' : '')], ['Trace id', r.trace_id || '—', true],
  ];
  const cap = r.capture;
  modal('Request ' + r.request_id, [
    h('dl', { class: 'facts', id: 'request-detail' }, facts.map(([k, v, mono]) => [h('dt', {}, k), h('dd', { class: mono ? 'mono' : '' }, v)])),
    cap ? [h('h3', {}, 'Request body' + (cap.truncated ? ' (truncated)' : '')), h('pre', { class: 'capture' }, cap.request_body || ''),
      h('h3', {}, 'Response body'), h('pre', { class: 'capture' }, cap.response_body || '')]
      : h('p', { class: 'muted' }, r.captured ? 'The bodies were captured but are no longer kept.' : 'Bodies are not captured for this request.'),
  ], [{ label: 'Close', primary: true }]);
}

// ---------- Keys ----------

const keysState = { kind: '', account: '' };

async function keysPage(ctx) {
  const { main } = ctx;
  const accounts = await accountList();
  if (!ctx.live()) return;
  const acct = accountSelect(accounts, keysState.account);
  const kind = select('kind', [['', 'All kinds'], ['caller', 'Caller keys'], ['admin', 'Admin keys']], keysState.kind);
  const apply = () => { keysState.account = acct.value; keysState.kind = kind.value; setFocus(acct.value); route(); };
  const body = h('div', { class: 'stack' }, h('p', { class: 'loading' }, 'Loading…'));
  main.append(header('Keys', 'Caller and admin keys. A key is shown once, when it is created or rotated.',
    can.manageKeys() ? h('button', { type: 'button', class: 'primary', id: 'create-key', onclick: () => createKey() }, 'Create key') : null),
  filterBar([['Account', acct], ['Kind', kind]], apply, () => { keysState.account = ''; keysState.kind = ''; route(); }),
  body);
  const list = pager({
    name: 'keys',
    limit: 25,
    empty: 'No keys match.',
    rowClass: (k) => 'key-row status-' + (['active', 'suspended', 'revoked', 'expired'].includes(k.status) ? k.status : 'other'),
    fetchPage: (after, limit) => api('GET', '/keys' + qs({ kind: keysState.kind, account_id: keysState.account, limit, after })),
    columns: keyColumns(),
  });
  await list.load();
  if (!ctx.live()) return;
  clear(body, card('', list.el));
  if (me.role !== 'billing') main.append(await trustedIssuers(ctx)); // not billing's to read (403)
}

// trustedIssuers is the token exchange's issuers, read-only: those of the
// config file and those added with the admin API or `xroute issuers`.
async function trustedIssuers(ctx) {
  const res = await api('GET', '/issuers');
  if (!ctx.live()) return h('div');
  return card('Trusted issuers',
    h('p', { class: 'muted' }, 'Identity tokens these issuers sign are exchanged for short-lived keys at POST /v1/auth/token. Manage them with xroute issuers or the admin API.'),
    table([
      { label: 'Issuer', render: (i) => [h('div', { class: 'strong mono' }, i.issuer), h('div', { class: 'muted small-text mono' }, i.id)] },
      { label: 'Source', render: (i) => badge(i.source) },
      { label: 'Audiences', render: (i) => i.audiences.join(', ') },
      { label: 'Rules', render: (i) => i.rules.map((r) => h('div', { class: 'small-text' }, r.name + ' → ' + r.account)) },
      { label: 'Updated', render: (i) => (i.updated_at ? h('span', { title: i.updated_by || '' }, fmtTime(i.updated_at)) : '—') },
    ], res.data || [], { empty: 'No trusted issuers: every token exchange is refused. Add one under auth.issuers or with xroute issuers add.', rowClass: () => 'issuer-row' }));
}

const keyColumns = () => [
    { label: 'Name', render: (k) => [h('div', { class: 'strong' }, k.name || '(unnamed)'), h('div', { class: 'muted small-text' }, [k.role ? k.kind + ' (' + k.role + ')' : k.kind, k.account_id, limits(k)].filter(Boolean).join(' · '))] },
    { label: 'ID', key: 'id', mono: true },
    { label: 'Key', render: (k) => h('code', {}, k.hint || '—') },
    { label: 'Status', render: (k) => badge(k.status) },
    { label: 'Created', render: (k) => h('span', { title: fmtTime(k.created_at) + ' UTC' }, fmtTime(k.created_at).slice(0, 10)) },
    { label: 'Expires', render: (k) => h('span', { title: k.expires_at ? fmtTime(k.expires_at) + ' UTC' : null }, fmtTime(k.expires_at).slice(0, 10)) },
    { label: '', render: keyActions },
];

function limits(k) {
  return [k.rpm ? k.rpm + ' rpm' : '', k.tpm ? k.tpm + ' tpm' : '', k.max_concurrent ? k.max_concurrent + ' concurrent' : '',
    k.allowed_models.length ? k.allowed_models.join(', ') : ''].filter(Boolean).join(' · ');
}

function keyActions(k) {
  const act = (label, fn, cls = '') => h('button', { type: 'button', class: 'small ' + cls, 'data-action': label.toLowerCase(), 'data-key': k.id, onclick: fn }, label);
  if (k.status === 'revoked' || k.status === 'expired') return h('span', { class: 'muted' }, '—');
  if (!can.manageKeys() || (k.kind === 'admin' && !can.adminKeys())) return h('span', { class: 'muted' }, '');
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
      api('POST', `/keys/${encodeURIComponent(k.id)}/rotate`, body).then((res) => { optionCache.clear(); m.close(); route(); showSecret('Key rotated', res); })
        .catch((e) => { if (e.code !== 'auth') toast(e.message, 'error'); });
      return false;
    } },
  ]);
}

// defaultAccount picks the account a new key starts on: the one the
// operator is looking at, else the first with credit (a key on an account
// without credit gets 402/429 on its first call), else the first.
function defaultAccount(accounts, balances) {
  if (focus.account && accounts.some((a) => a.id === focus.account)) return focus.account;
  const funded = accounts.find((a, i) => balances[i] && balances[i].available_nano > 0);
  return funded ? funded.id : (accounts[0] ? accounts[0].id : '');
}

async function createKey() {
  let accounts = [];
  let balances = [];
  try {
    accounts = await accountList();
    // Balances, 25 accounts at a time: the first 50 (the form names the
    // ones without credit), then on only until one with credit is found.
    const balanceOf = (a) => api('GET', `/accounts/${encodeURIComponent(a.id)}/credits`).catch((e) => { if (e.code === 'auth') throw e; return null; });
    for (let i = 0; i < accounts.length; i += 25) {
      balances.push(...await Promise.all(accounts.slice(i, i + 25).map(balanceOf)));
      if (i + 25 >= 50 && balances.some((b) => b && b.available_nano > 0)) break;
    }
  } catch (e) { if (e.code === 'auth') return; }
  const chosen = defaultAccount(accounts, balances);
  const note = h('p', { class: 'form-hint', id: 'account-credit' });
  const f = {
    name: h('input', { type: 'text', name: 'name', required: true, placeholder: 'e.g. billing-service' }),
    account: h('select', { name: 'account_id' }, accounts.map((a, i) => h('option', { value: a.id, selected: a.id === chosen },
      `${a.name} (${a.id})` + (balances[i] ? (balances[i].available_nano > 0 ? ` · $${balances[i].available_usd}` : ' · no credit') : '')))),
    kind: select('kind', can.adminKeys() ? [['caller', 'Caller'], ['admin', 'Admin']] : [['caller', 'Caller']], 'caller'),
    role: select('role', [['owner', 'Owner'], ['operator', 'Operator'], ['billing', 'Billing'], ['viewer', 'Viewer']], 'owner'),
    models: h('input', { type: 'text', name: 'allowed_models', placeholder: 'all models (or gpt-4o-mini, gpt-4o)' }),
    rpm: h('input', { type: 'number', name: 'rpm', min: 0, placeholder: 'unlimited' }),
    tpm: h('input', { type: 'number', name: 'tpm', min: 0, placeholder: 'unlimited' }),
    expires: h('input', { type: 'text', name: 'expires_in', placeholder: 'never (or 720h)' }),
  };
  const explain = () => {
    const i = accounts.findIndex((a) => a.id === f.account.value);
    note.textContent = i >= 0 && balances[i] && !(balances[i].available_nano > 0)
      ? 'This account has no credit: the key\'s calls are refused until it is topped up.' : '';
  };
  f.account.addEventListener('change', explain);
  explain();
  const err = h('p', { class: 'form-error', role: 'alert' });
  f.kind.addEventListener('change', () => { const l = f.role.closest('label'); if (l) l.hidden = f.kind.value !== 'admin'; });
  const m = modal('Create key', h('div', { class: 'form-grid' },
    h('label', {}, 'Name', f.name), h('label', {}, 'Account', f.account, note), h('label', {}, 'Kind', f.kind),
    h('label', { class: 'role-field', hidden: true }, 'Role (admin keys)', f.role),
    h('label', {}, 'Allowed models', f.models), h('label', {}, 'Requests / min', f.rpm), h('label', {}, 'Tokens / min', f.tpm),
    h('label', {}, 'Expires in', f.expires), err), [
    { label: 'Cancel' },
    { label: 'Create', primary: true, onclick: () => {
      const body = { name: f.name.value.trim(), kind: f.kind.value };
      if (f.kind.value === 'admin') body.role = f.role.value;
      if (f.account.value) body.account_id = f.account.value;
      const models = f.models.value.split(',').map((s) => s.trim()).filter(Boolean);
      if (models.length) body.allowed_models = models;
      if (f.rpm.value) body.rpm = Number(f.rpm.value);
      if (f.tpm.value) body.tpm = Number(f.tpm.value);
      if (f.expires.value.trim()) body.expires_in = f.expires.value.trim();
      api('POST', '/keys', body).then((res) => { optionCache.clear(); m.close(); route(); showSecret('Key created', res); })
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
  if (!ctx.live()) return;
  main.append(await providerKeys(ctx));
  const timer = setInterval(() => load().catch((e) => { if (e.code !== 'auth') updated.textContent = e.message; }), 5000);
  ctx.onStop(() => clearInterval(timer));
}


// providerKeys is the vault's provider keys, paged, by provider and status.
const pkState = { provider: '', status: '' };
async function providerKeys(ctx) {
  const provider = h('input', { type: 'text', name: 'provider', value: pkState.provider, placeholder: 'any provider', 'aria-label': 'Provider', size: 12 });
  const status = select('status', [['', 'Any status'], ['active', 'Active'], ['disabled', 'Disabled']], pkState.status);
  const list = pager({
    name: 'provider-keys',
    limit: 10,
    empty: 'No provider keys in the vault (deployments use their configured keys).',
    rowClass: () => 'provider-key-row',
    fetchPage: (after, limit) => api('GET', '/provider-keys' + qs({ provider: pkState.provider, status: pkState.status, limit, after })),
    columns: [
      { label: 'Name', render: (k) => [h('div', { class: 'strong' }, k.name || '(unnamed)'), h('div', { class: 'muted small-text mono' }, k.id)] },
      { label: 'Provider', key: 'provider' },
      { label: 'Key', render: (k) => h('code', {}, k.hint || '—') },
      { label: 'Weight', num: true, render: (k) => fmtInt(k.weight) },
      { label: 'Status', render: (k) => [badge(k.status), k.disabled_reason ? h('div', { class: 'muted small-text' }, k.disabled_reason) : null] },
      { label: 'Updated', render: (k) => fmtTime(k.updated_at) },
    ],
  });
  const apply = () => { pkState.provider = provider.value.trim(); pkState.status = status.value; list.reset().catch(pagerError); };
  try {
    await list.load();
  } catch (e) {
    if (e instanceof APIError && e.status === 404) return h('div'); // no vault on this server
    throw e;
  }
  return card('Provider keys', filterBar([['Provider', provider], ['Status', status]], apply), list.el);
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


const creditsState = { name: '', status: '' };
const ledgerState = { key: '', kind: '', from: '', to: '' };

async function credits(ctx) {
  const { main } = ctx;
  const detail = h('div', { class: 'stack', id: 'account-detail' });
  const listBox = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
  const name = h('input', { type: 'search', name: 'name', value: creditsState.name, placeholder: 'name contains…', 'aria-label': 'Account name' });
  const status = select('status', [['', 'Any status'], ['active', 'Active'], ['suspended', 'Suspended']], creditsState.status);
  main.append(header('Credits', 'Prepaid balances per account, top-ups and the ledger.'), listBox, detail);

  const balances = new Map();
  const usd = (r, f) => (balances.get(r.id) ? fmtUSDText(balances.get(r.id)[f]) : '—');
  const pick = (r) => {
    creditsAccount = r.id;
    setFocus(r.id);
    for (const tr of accounts.el.querySelectorAll('tr[data-account]')) tr.classList.toggle('selected', tr.dataset.account === r.id);
    // The account shown (or being loaded) again: rendering it anew would
    // wipe an amount the operator is typing into its top-up form.
    if (detail.dataset.account === r.id) return;
    showAccount(ctx, r, detail, () => accounts.load()).catch((e) => {
      if (detail.dataset.account === r.id) delete detail.dataset.account; // a click may retry
      pagerError(e);
    });
  };
  const accounts = pager({
    name: 'accounts',
    limit: 10,
    sizes: [10, 25, 50],
    empty: 'No accounts match.',
    rowClass: (r) => 'account-row' + (r.id === creditsAccount ? ' selected' : ''),
    rowAttrs: (r) => ({ 'data-account': r.id }),
    fetchPage: async (after, limit) => {
      const page = await api('GET', '/accounts' + qs({ name: creditsState.name, status: creditsState.status, limit, after }));
      // The balances of this page's accounts only.
      const bal = await Promise.all(page.data.map((a) => api('GET', `/accounts/${encodeURIComponent(a.id)}/credits`).catch((e) => { if (e.code === 'auth') throw e; return null; })));
      page.data.forEach((a, i) => balances.set(a.id, bal[i]));
      return page;
    },
    columns: [
      { label: 'Account', render: (r) => h('a', { href: '#/credits', class: 'strong', 'data-account-link': r.id, onclick: (e) => { e.preventDefault(); pick(r); } }, r.name) },
      { label: 'ID', key: 'id', mono: true },
      { label: 'Status', render: (r) => badge(r.status) },
      { label: 'Balance', num: true, render: (r) => usd(r, 'balance_usd') },
      { label: 'Reserved', num: true, render: (r) => usd(r, 'reserved_usd') },
      { label: 'Available', num: true, render: (r) => h('span', { class: 'strong', 'data-available': r.id }, usd(r, 'available_usd')) },
    ],
  });
  const apply = () => { creditsState.name = name.value.trim(); creditsState.status = status.value; accounts.reset().catch(pagerError); };
  await accounts.load();
  if (!ctx.live()) return;
  clear(listBox, card('Accounts', filterBar([['Name', name], ['Status', status]], apply), accounts.el));
  const rows = accounts.rows();
  if (!creditsAccount) creditsAccount = focus.account;
  const current = rows.find((r) => r.id === creditsAccount) ||
    (creditsAccount ? await api('GET', '/accounts/' + encodeURIComponent(creditsAccount)).catch(() => null) : null) || rows[0];
  if (!current || !ctx.live()) return;
  creditsAccount = current.id;
  for (const tr of accounts.el.querySelectorAll('tr[data-account]')) tr.classList.toggle('selected', tr.dataset.account === current.id);
  await showAccount(ctx, current, detail, () => accounts.load());
}

// showAccount is one account's top-up form and its ledger, paged and
// filtered on the server (never the whole ledger).
async function showAccount(ctx, acct, detail, refreshBalances) {
  // Only the latest call renders: an account picked while another was
  // loading must not be replaced by the earlier one when it finishes.
  detail.dataset.account = acct.id;
  const gen = (detail.gen = (detail.gen || 0) + 1);
  const current = () => ctx.live() && detail.gen === gen;
  const keyRows = await keyList(acct.id);
  if (!current()) return;
  const amount = h('input', { type: 'text', name: 'amount', inputmode: 'decimal', placeholder: '10.00', required: true, 'aria-label': 'Amount (USD)' });
  const idem = h('input', { type: 'text', name: 'idempotency_key', value: newIdemKey(), required: true, 'aria-label': 'Idempotency key', class: 'mono' });
  const msg = h('p', { class: 'form-note', role: 'status' });
  const ledger = pager({
    name: 'ledger',
    limit: 25,
    empty: 'No ledger entries match.',
    rowClass: () => 'ledger-row',
    fetchPage: (before, limit) => api('GET', `/accounts/${encodeURIComponent(acct.id)}/ledger` + qs({
      key_id: ledgerState.key, kind: ledgerState.kind, from: ledgerState.from, to: toDateEnd(ledgerState.to), before, limit })),
    columns: [
      { label: '#', num: true, key: 'id' },
      { label: 'Time', render: (e) => fmtTime(e.created_at) },
      { label: 'Kind', render: (e) => h('span', { class: 'pill' }, e.kind) },
      { label: 'Amount', num: true, render: (e) => h('span', { class: e.amount_nano < 0 ? 'neg' : 'pos' }, fmtUSDText(e.amount_usd)) },
      { label: 'Reference', key: 'reference', mono: true },
      { label: 'Request', key: 'request_id', mono: true },
      { label: 'Key', key: 'key_id', mono: true },
      { label: 'Actor', key: 'actor' },
    ],
  });
  const topUp = h('form', { class: 'toolbar', id: 'topup', onsubmit: async (e) => {
    e.preventDefault();
    try {
      const res = await api('POST', `/accounts/${encodeURIComponent(acct.id)}/credits`, { amount: amount.value.trim(), idempotency_key: idem.value.trim() });
      toast(res.replayed ? 'Replayed: this idempotency key was already used; nothing changed.' : `Added ${fmtUSDText(res.entry.amount_usd)} to ${acct.name}.`);
      amount.value = '';
      if (!res.replayed) idem.value = newIdemKey();
      await Promise.all([refreshBalances(), ledger.reset()]);
    } catch (ex) { if (ex.code !== 'auth') msg.textContent = ex.message; }
  } },
  h('label', {}, 'Amount (USD) ', amount), h('label', { class: 'grow' }, 'Idempotency key ', idem),
  h('button', { type: 'submit', class: 'primary' }, 'Top up'));

  const lf = {
    key: keySelect(keyRows, ledgerState.key),
    kind: select('kind', [['', 'Any kind'], ['top_up', 'Top-up'], ['usage', 'Usage'], ['refund', 'Refund'], ['adjustment', 'Adjustment'], ['expiry', 'Expiry']], ledgerState.kind),
    from: dateField('from', ledgerState.from, 'From'),
    to: dateField('to', ledgerState.to, 'To (inclusive)'),
  };
  const apply = () => {
    Object.assign(ledgerState, { key: lf.key.value, kind: lf.kind.value, from: lf.from.value, to: lf.to.value });
    ledger.reset().catch(pagerError);
  };
  const reset = () => {
    Object.assign(ledgerState, { key: '', kind: '', from: '', to: '' });
    lf.key.value = lf.kind.value = lf.from.value = lf.to.value = '';
    ledger.reset().catch(pagerError);
  };
  await ledger.load();
  if (!current()) return;
  clear(detail,
    can.topUp() ? card(`Top up ${acct.name}`, h('p', { class: 'muted' }, 'Replaying a top-up with the same idempotency key changes nothing.'), topUp, msg) : null,
    card(`Ledger · ${acct.name}`, filterBar([['Key', lf.key], ['Kind', lf.kind], ['From', lf.from], ['To', lf.to]], apply, reset), ledger.el));
}

// ---------- Audit log ----------

const auditState = { kind: '', account: '', subject: '', from: '', to: '' };

async function audit(ctx) {
  const { main } = ctx;
  const accounts = await accountList();
  if (!ctx.live()) return;
  const kind = h('input', { type: 'text', name: 'kind', list: 'audit-kinds', value: auditState.kind, placeholder: 'all kinds (prefix, e.g. key.)', 'aria-label': 'Kind' });
  const kinds = h('datalist', { id: 'audit-kinds' }, ['key.', 'key.created', 'key.rotated', 'key.revoked', 'key.suspended', 'key.resumed', 'account.', 'credits.changed', 'provider_key.', 'vault.', 'auth.', 'anomaly.', 'admin.'].map((k) => h('option', { value: k })));
  const acct = accountSelect(accounts, auditState.account);
  const subject = h('input', { type: 'text', name: 'subject', value: auditState.subject, placeholder: 'key or object id', 'aria-label': 'Subject', class: 'mono', size: 16 });
  const from = dateField('from', auditState.from, 'From');
  const to = dateField('to', auditState.to, 'To (inclusive)');
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
  const apply = () => {
    Object.assign(auditState, { kind: kind.value.trim(), account: acct.value, subject: subject.value.trim(), from: from.value, to: to.value });
    setFocus(auditState.account);
    route();
  };
  const body = h('div', { class: 'stack' }, h('p', { class: 'loading' }, 'Loading…'));
  const any = Object.values(auditState).some(Boolean);
  main.append(header('Audit log', 'Every key, credit and provider-key change, chained under a key from the vault.',
    h('button', { type: 'button', id: 'verify', class: 'primary', onclick: verify }, 'Verify chain')),
  filterBar([['Kind', [kind, kinds]], ['Account', acct], ['Subject', subject], ['From', from], ['To', to]], apply,
    any ? () => { Object.keys(auditState).forEach((k) => { auditState[k] = ''; }); route(); } : null),
  result, body);

  const list = pager({
    name: 'audit',
    limit: 50,
    empty: any ? 'No events match.' : 'No events yet.',
    rowClass: () => 'audit-row',
    fetchPage: (before, limit) => api('GET', '/audit' + qs({ kind: auditState.kind, account_id: auditState.account, subject: auditState.subject,
      from: auditState.from, to: toDateEnd(auditState.to), limit, before })),
    columns: [
      { label: '#', num: true, key: 'seq' },
      { label: 'Time', render: (e) => fmtTime(e.at) },
      { label: 'Kind', render: (e) => h('span', { class: 'pill' }, e.kind) },
      { label: 'Actor', mono: true, render: (e) => [h('div', {}, e.actor), e.ip ? h('div', { class: 'muted small-text' }, 'from ' + e.ip) : null] },
      { label: 'Subject', mono: true, render: (e) => [h('div', {}, e.subject || '—'), e.account_id && e.account_id !== e.subject ? h('div', { class: 'muted small-text' }, 'account ' + e.account_id) : null] },
      { label: 'Details', render: (e) => details(e.details) },
    ],
  });
  await list.load();
  if (!ctx.live()) return;
  clear(body, card('', list.el));
}

function details(d) {
  const entries = Object.entries(d || {});
  if (!entries.length) return h('span', { class: 'muted' }, '—');
  return h('span', { class: 'details' }, entries.map(([k, v]) => h('span', { class: 'kv' }, h('b', {}, k), ' ', typeof v === 'string' ? v : JSON.stringify(v))));
}

window.addEventListener('hashchange', route);
route();
