// End-to-end test of the /ui dashboard: builds xroute, starts `xroute serve
// --demo` in a temporary directory, sends some traffic with the demo caller
// key, then drives Debian's Chromium (headless, through playwright-core)
// through every page, asserting what is visible (uPlot charts on canvas,
// currency axes, server-side pages and filters, the create-key form's
// account), and saving a screenshot of each page at 1280 px and at 390 px
// (a phone) to docs/screenshots/. Exits non-zero on any failure and always
// stops the server.
//
//   node e2e/dashboard.test.mjs        (XROUTE_BIN=path skips the build,
//                                       CHROMIUM=path picks the browser)
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const shots = path.join(root, 'docs', 'screenshots');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const t0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);

function assert(cond, msg) {
  if (!cond) throw new Error('assertion failed: ' + msg);
}

const work = mkdtempSync(path.join(tmpdir(), 'xroute-e2e-'));
let server = null;
let browser = null;
let currentPage = null;
let serverLog = '';

function stopServer() {
  if (server && server.exitCode === null && server.signalCode === null) {
    try { process.kill(-server.pid, 'SIGTERM'); } catch { try { server.kill('SIGTERM'); } catch { /* gone */ } }
  }
}
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { stopServer(); process.exit(130); });
process.on('exit', stopServer);

async function startServer() {
  let bin = process.env.XROUTE_BIN;
  if (!bin) {
    bin = path.join(work, 'xroute');
    log('building xroute');
    execFileSync('go', ['build', '-o', bin, './cmd/xroute'], { cwd: root, stdio: 'inherit' });
  }
  // A clean environment for the server: no XROUTE_* settings leak in.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('XROUTE_')));
  // A fresh data directory: the demo's own per-user one would carry state between runs.
  server = spawn(bin, ['serve', '--demo', '--addr', '127.0.0.1:0', '--data', path.join(work, 'data')], { cwd: work, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stderr.on('data', (d) => { serverLog += d; });
  let out = '';
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the demo server printed no keys within 60 s\n' + out + serverLog)), 60000);
    server.on('exit', (code) => reject(new Error(`the server exited (${code})\n${out}${serverLog}`)));
    server.stdout.on('data', (d) => {
      out += d;
      const base = /export OPENAI_BASE_URL=(http:\/\/\S+)\/v1/.exec(out);
      const caller = /export OPENAI_API_KEY=(\S+)/.exec(out);
      const admin = /export XROUTE_ADMIN_KEY=(\S+)/.exec(out);
      if (base && caller && admin) {
        clearTimeout(timer);
        resolve({ base: base[1], callerKey: caller[1], adminKey: admin[1] });
      }
    });
  });
}

async function call(base, key, method, p, body) {
  const res = await fetch(base + p, {
    method,
    headers: { Authorization: 'Bearer ' + key, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text };
}

async function traffic(base, key) {
  const models = ['gpt-4o-mini', 'gpt-4o', 'gpt-4.1-nano'];
  const one = async (i) => {
    const model = models[i % models.length];
    const stream = i % 4 === 3;
    // Two requests fail on purpose (400 from the provider) so the error
    // rate has something to show; the rest vary in length (streams stay
    // short: the mock streams 30 tokens a second).
    const tokens = stream ? 12 : 20 + 15 * i;
    const content = i === 5 || i === 11 ? 'fail please #mock:status=400' : `Hello number ${i}, tell me a story. #mock:tokens=${tokens}`;
    const res = await fetch(base + '/v1/chat/completions', {
      method: 'POST',
      headers: { Authorization: 'Bearer ' + key, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model, stream, messages: [{ role: 'user', content }] }),
    });
    await res.text();
    return res.ok;
  };
  const results = await Promise.all(Array.from({ length: 18 }, (_, i) => one(i)));
  const ok = results.filter(Boolean).length;
  assert(ok === 16, `16 of 18 chat requests succeed, 2 fail on purpose (got ${ok})`);
  return ok;
}

async function waitFor(what, fn, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function main() {
  mkdirSync(shots, { recursive: true });
  const { base, callerKey, adminKey } = await startServer();
  log('server up at', base);

  const sent = await traffic(base, callerKey);
  log(`sent traffic: ${sent} successful chat requests`);
  await waitFor('usage records', async () => {
    const r = await call(base, adminKey, 'GET', '/admin/v1/usage/report');
    return r.status === 200 && r.json.data.length && r.json.data[0].requests >= 18;
  });

  // A second account, so the account lists have more than one row.
  const acme = await call(base, adminKey, 'POST', '/admin/v1/accounts', { name: 'acme-research' });
  assert(acme.status === 201, 'create an account: ' + acme.text);
  const acmeTop = await call(base, adminKey, 'POST', `/admin/v1/accounts/${acme.json.id}/credits`, { amount: '50.00', idempotency_key: 'e2e-acme-initial' });
  assert(acmeTop.status === 201, 'top up the account: ' + acmeTop.text);
  // An account without credit: the create-key form must not start on it.
  const empty = await call(base, adminKey, 'POST', '/admin/v1/accounts', { name: 'empty-co' });
  assert(empty.status === 201, 'create an empty account: ' + empty.text);
  const requestLog = (await call(base, adminKey, 'GET', '/admin/v1/requests?limit=1')).status !== 404;

  log('usage recorded');
  const ui = await fetch(base + '/ui/');
  assert(ui.status === 200, '/ui/ answers 200');
  assert((ui.headers.get('content-security-policy') || '').includes("default-src 'none'"), '/ui/ sends a CSP');

  // A fresh, empty profile (--user-data-dir) every run.
  const context = await chromium.launchPersistentContext(mkdtempSync(path.join(work, 'chromium-')), {
    executablePath: chromiumPath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
    acceptDownloads: true,
    deviceScaleFactor: 1,
  });
  browser = context;
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(15000);
  currentPage = page;
  log('chromium started');
  const problems = [];
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => {
    // A wrong key is answered 401 on purpose below; Chromium logs it.
    // A 404 is judged by its address below (Chromium's line lacks it).
    if (m.type() === 'error' && !/status of 40[14]/.test(m.text())) problems.push('console error: ' + m.text());
  });
  page.on('response', (r) => {
    // Only the request log may be missing, until branch h-reqlog is in.
    if (r.status() === 404 && (requestLog || !new URL(r.url()).pathname.startsWith('/admin/v1/requests'))) problems.push('404: ' + r.url());
  });
  page.on('requestfailed', (r) => { if (!r.url().startsWith('blob:')) problems.push('request failed: ' + r.url()); });
  const shot = async (name) => {
    // Toasts are transient: they are not part of the page's picture.
    await page.evaluate(() => document.getElementById('toasts')?.remove());
    await page.screenshot({ path: path.join(shots, name + '.png'), fullPage: true });
    log('screenshot', `docs/screenshots/${name}.png`);
  };
  // chartsFit waits until every chart has followed its box's width (the
  // ResizeObserver), so that a screenshot shows them laid out.
  const chartsFit = () => page.waitForFunction(() => [...document.querySelectorAll('.chart-box')]
    .every((b) => b.uplot && Math.abs(b.uplot.width - Math.floor(b.getBoundingClientRect().width)) <= 1));
  // shotBoth saves the page at 1280 px and at 390 px (a phone), and checks
  // that at 390 px nothing but a table's own scroller is wider than the
  // screen.
  const shotBoth = async (name) => {
    await chartsFit();
    await shot(name + '-1280');
    await page.setViewportSize({ width: 390, height: 844 });
    await chartsFit();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
    assert(overflow <= 390, `${name}: the page is ${overflow} px wide at 390 px (only tables may scroll sideways)`);
    await shot(name + '-390');
    await page.setViewportSize({ width: 1280, height: 900 });
    await chartsFit();
  };
  const nav = async (label) => {
    await page.locator('nav.sidebar').getByRole('link', { name: label, exact: true }).click();
    await page.locator('main h1', { hasText: label }).waitFor();
    await page.locator('main .loading').waitFor({ state: 'detached' });
  };
  const rowOf = (text) => page.locator('tbody tr', { hasText: text });

  // Login: a wrong key is refused, the demo admin key gets in.
  await page.goto(base + '/ui');
  await page.locator('#admin-key').waitFor();
  await page.fill('#admin-key', 'xra-not-a-real-key');
  await page.click('button[type=submit]');
  await page.locator('.form-error', { hasText: /./ }).waitFor();
  await shotBoth('login');
  await page.fill('#admin-key', adminKey);
  await page.click('button[type=submit]');
  await page.locator('main h1', { hasText: 'Overview' }).waitFor();
  log('logged in');

  // Overview: the totals and five charts with data.
  await page.locator('.stat-value[data-stat="Requests"]', { hasText: /^[1-9]/ }).waitFor();
  const reqs = await page.textContent('.stat-value[data-stat="Requests"]');
  assert(Number(reqs.replace(/,/g, '')) >= 18, 'overview counts the requests sent: ' + reqs);
  await page.locator('.chart-box .uplot canvas').first().waitFor();
  assert(await page.evaluate(() => typeof window.uPlot === 'function' && window.uPlot.paths !== undefined), 'uPlot is loaded from the vendored file');
  assert(await page.locator('main .chart-box .uplot canvas').count() === 5, 'overview draws five uPlot charts on canvas');
  assert(await page.locator('main svg').count() === 0, 'no hand-drawn SVG charts are left');
  const spend = page.locator('.chart-box[data-chart^="Spend"]');
  const yLabels = (await spend.getAttribute('data-y-labels')).split('|');
  assert(yLabels.length >= 2 && yLabels.every((l) => /^\$\d/.test(l)), 'the spend axis is labelled in dollars: ' + yLabels.join(' '));
  const errLabels = (await page.locator('.chart-box[data-chart^="Error rate"]').getAttribute('data-y-labels')).split('|');
  assert(errLabels.every((l) => /%$/.test(l)), 'the error-rate axis is in percent: ' + errLabels.join(' '));
  assert(await spend.getAttribute('data-bucket') === 'hour', 'a 24 h view buckets by the hour');
  // Nothing clips: the y axis is at least as wide as its widest label.
  const fits = await page.evaluate(() => [...document.querySelectorAll('.chart-box')].every((b) => {
    const u = b.uplot; const ctx = document.createElement('canvas').getContext('2d'); ctx.font = u.axes[1].font[0];
    const widest = Math.max(...b.dataset.yLabels.split('|').map((l) => ctx.measureText(l).width));
    return u.axes[1]._size >= widest + u.axes[1].gap;
  }));
  assert(fits, 'every y axis is wide enough for its widest label');
  // The tooltip: hover the spend chart where the traffic is (the last hour).
  const over = spend.locator('.u-over');
  const box = await over.boundingBox();
  await page.mouse.move(box.x + box.width - 4, box.y + box.height / 2);
  const tip = spend.locator('.u-tooltip');
  await tip.waitFor({ state: 'visible' });
  assert(/UTC/.test(await tip.textContent()) && /Spend: \$/.test(await tip.textContent()), 'the tooltip shows the bucket and the spend: ' + await tip.textContent());
  assert(await spend.locator('.u-legend').count() === 1, 'the chart has a legend');
  await page.mouse.move(0, 0);
  const errRate = await page.textContent('.stat-value[data-stat="Error rate"]');
  assert(errRate !== '0.0%' && errRate !== '—', 'the error rate shows the failed requests: ' + errRate);
  // A 30-day range is drawn in days.
  await page.selectOption('select[name=range]', '30d');
  await page.locator('.chart-box[data-chart^="Spend"][data-bucket="day"]').waitFor();
  await page.selectOption('select[name=range]', '24h');
  await page.locator('.chart-box[data-chart^="Spend"][data-bucket="hour"]').waitFor();
  // The charts follow the window's width.
  const wide = await spend.evaluate((b) => b.uplot.width);
  await page.setViewportSize({ width: 900, height: 900 });
  await page.waitForFunction((w) => document.querySelector('.chart-box[data-chart^="Spend"]').uplot.width !== w, wide);
  await chartsFit();
  await page.setViewportSize({ width: 1280, height: 900 });
  await chartsFit();

  // Usage: by model, with a CSV download; then by key.
  await nav('Usage');
  for (const m of ['gpt-4o-mini', 'gpt-4o', 'gpt-4.1-nano']) await rowOf(m).first().waitFor();
  await page.locator('main .chart-box[data-chart="Spend by model"] .uplot canvas').waitFor();
  assert(await page.locator('tr.usage-row').count() === 3, 'usage lists a row per model');
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#csv')]);
  const csv = readFileSync(await dl.path(), 'utf8');
  assert(/^model,/m.test(csv.split('\n')[0]) || csv.split('\n')[0].includes('model'), 'the CSV has a model column: ' + csv.split('\n')[0]);
  assert(csv.includes('gpt-4o-mini'), 'the CSV holds the rows');
  assert(dl.suggestedFilename().endsWith('.csv'), 'the download is a .csv file: ' + dl.suggestedFilename());
  log('CSV downloaded:', dl.suggestedFilename(), csv.trim().split('\n').length - 1, 'rows');
  await page.selectOption('select[name=group_by]', 'key');
  await page.click('form.toolbar button[type=submit]');
  await rowOf('demo (').first().waitFor();

  // Keys: create one (shown once, copied), use it, rotate, suspend, resume, revoke.
  await nav('Keys');
  await rowOf('demo-admin').waitFor();
  // The create-key form's account: with none picked yet, one with credit
  // (never empty-co, which has none); once the operator looks at an
  // account (the keys filter here), that one.
  const accountOf = async () => {
    await page.click('#create-key');
    const sel = page.locator('.modal select[name=account_id]');
    await sel.waitFor();
    await page.locator('.modal select[name=account_id] option', { hasText: 'no credit' }).first().waitFor({ state: 'attached' });
    const v = await sel.inputValue();
    return v;
  };
  const firstDefault = await accountOf();
  const credit = (await call(base, adminKey, 'GET', `/admin/v1/accounts/${firstDefault}/credits`)).json;
  assert(firstDefault !== empty.json.id && credit.available_nano > 0, `the form starts on an account with credit (${firstDefault}: ${credit.available_usd})`);
  await page.locator('.modal').getByRole('button', { name: 'Cancel' }).click();
  await page.selectOption('form.filters select[name=account]', acme.json.id);
  await page.click('form.filters button[type=submit]');
  await page.locator('[data-pager=keys] .empty, [data-pager=keys] tbody').first().waitFor();
  assert(await accountOf() === acme.json.id, 'the form starts on the account the operator is looking at');
  await page.locator('.modal').getByRole('button', { name: 'Cancel' }).click();
  await page.selectOption('form.filters select[name=account]', empty.json.id);
  await page.click('form.filters button[type=submit]');
  assert(await accountOf() === empty.json.id, 'picking the empty account is the operator\'s choice');
  await page.locator('#account-credit', { hasText: 'no credit' }).waitFor();
  await page.locator('.modal').getByRole('button', { name: 'Cancel' }).click();
  await page.locator('form.filters').getByRole('button', { name: 'Clear' }).click();
  await rowOf('demo-admin').waitFor();
  await page.selectOption('form.filters select[name=account]', 'acct_default');
  await page.click('form.filters button[type=submit]');
  await rowOf('demo-admin').waitFor();
  assert(await accountOf() === 'acct_default', 'the default account once it is the one in view');
  await page.locator('.modal').getByRole('button', { name: 'Cancel' }).click();
  log('create-key form: starts on an account with credit, then on the one in view');
  await page.click('#create-key');
  await page.fill('.modal input[name=name]', 'e2e-dashboard');
  await page.fill('.modal input[name=rpm]', '600');
  await page.locator('.modal').getByRole('button', { name: 'Create' }).click();
  await page.locator('#new-key').waitFor();
  const created = await page.inputValue('#new-key');
  assert(/^xr-[A-Za-z0-9]{20,}/.test(created), 'the modal shows the new caller key');
  await page.click('#copy-key');
  await page.locator('.copied', { hasText: 'Copied.' }).waitFor();
  assert(await page.evaluate(() => navigator.clipboard.readText()) === created, 'Copy puts the key on the clipboard');
  await shot('key-created');
  await page.locator('.modal').getByRole('button', { name: 'Done' }).click();
  // The key starts on the default account (the one in view): its first
  // call is served, not refused for credit.
  const first = await call(base, created, 'POST', '/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi #mock:tokens=5' }] });
  assert(first.status === 200, 'the new key\'s first call is served: ' + first.status + ' ' + first.text);
  assert((await call(base, created, 'GET', '/v1/models')).status === 200, 'the new key works');
  const row = rowOf('e2e-dashboard');
  await row.locator('.badge', { hasText: 'active' }).waitFor();
  assert(!(await page.locator('main').textContent()).includes(created), 'the list never shows the key itself');

  await row.locator('[data-action=rotate]').click();
  await page.fill('.modal input[name=overlap]', '0s');
  await page.locator('.modal').getByRole('button', { name: 'Rotate' }).click();
  await page.locator('.modal h2', { hasText: 'Key rotated' }).waitFor();
  const rotated = await page.inputValue('#new-key');
  assert(rotated.startsWith('xr-') && rotated !== created, 'rotation shows a new key');
  await page.locator('.modal').getByRole('button', { name: 'Done' }).click();
  assert((await call(base, created, 'GET', '/v1/models')).status === 401, 'the old key stops at once (overlap 0s)');
  assert((await call(base, rotated, 'GET', '/v1/models')).status === 200, 'the rotated key works');
  const live = rowOf('e2e-dashboard').filter({ has: page.locator('.badge', { hasText: 'active' }) });
  await live.waitFor();

  await live.locator('[data-action=suspend]').click();
  await page.fill('.modal input[name=reason]', 'e2e test');
  await page.locator('.modal').getByRole('button', { name: 'Suspend' }).click();
  const suspended = rowOf('e2e-dashboard').filter({ has: page.locator('.badge', { hasText: 'suspended' }) });
  await suspended.waitFor();
  assert((await call(base, rotated, 'GET', '/v1/models')).status === 401, 'a suspended key is refused');
  await suspended.locator('[data-action=resume]').click();
  await live.waitFor();
  assert((await call(base, rotated, 'GET', '/v1/models')).status === 200, 'a resumed key works again');

  await live.locator('[data-action=revoke]').click();
  await page.locator('.modal').getByRole('button', { name: 'Revoke' }).click();
  await rowOf('e2e-dashboard').filter({ has: page.locator('.badge', { hasText: 'revoked' }) }).first().waitFor();
  await waitFor('the revoked key refused', async () => (await call(base, rotated, 'GET', '/v1/models')).status === 401, 5000);
  // A second key, left active, so the list shows every state.
  await page.click('#create-key');
  await page.fill('.modal input[name=name]', 'analytics-batch');
  await page.fill('.modal input[name=allowed_models]', 'gpt-4o-mini');
  await page.fill('.modal input[name=expires_in]', '720h');
  await page.locator('.modal').getByRole('button', { name: 'Create' }).click();
  await page.locator('#new-key').waitFor();
  await page.locator('.modal').getByRole('button', { name: 'Done' }).click();
  await rowOf('analytics-batch').locator('.badge', { hasText: 'active' }).waitFor();
  log('keys: created, copied, rotated, suspended, resumed, revoked');

  // Deployments: nine (four models, embeddings included, on two mock providers, and
  // claude-sonnet-4-6 on mock-claude), breakers closed.
  await nav('Deployments');
  await page.locator('tr.deployment-row').first().waitFor();
  assert(await page.locator('tr.deployment-row').count() === 9, 'nine deployments: ' + await page.locator('tr.deployment-row').count());
  assert(await page.locator('tr.deployment-row .badge', { hasText: 'closed' }).count() >= 1, 'breaker states shown');
  const served = await page.textContent('.stat-value[data-stat="Requests"]');
  assert(Number(served.replace(/,/g, '')) >= 18, 'deployments count requests: ' + served);
  assert(/\d ms/.test((await page.locator('tr.deployment-row').allTextContents()).join(' ')), 'latency shown');

  // Credits: top up the default account; the balance and ledger follow.
  await nav('Credits');
  const before = (await call(base, adminKey, 'GET', '/admin/v1/accounts/acct_default/credits')).json;
  const avail = page.locator('[data-available="acct_default"]');
  const shownBefore = await avail.textContent();
  assert(shownBefore === '$' + before.available_usd, `the balance shown (${shownBefore}) is the API's (${before.available_usd})`);
  await rowOf('acme-research').waitFor();
  await page.locator('tbody a', { hasText: /^default$/ }).click();
  await page.locator('h2', { hasText: 'Top up default' }).waitFor();
  const idem = await page.inputValue('input[name=idempotency_key]');
  await page.fill('input[name=amount]', '25.00');
  await page.click('#topup button[type=submit]');
  await page.locator('.toast', { hasText: 'Added $25.00' }).waitFor();
  await avail.filter({ hasNotText: shownBefore }).waitFor();
  const after = (await call(base, adminKey, 'GET', '/admin/v1/accounts/acct_default/credits')).json;
  assert(after.balance_nano - before.balance_nano === 25e9, 'the top-up added 25 USD');
  assert(await avail.textContent() === '$' + after.available_usd, 'the page shows the new balance');
  await page.locator('tr.ledger-row .pos', { hasText: '$25.00' }).first().waitFor();
  // The same idempotency key again changes nothing.
  await page.fill('input[name=idempotency_key]', idem);
  await page.fill('input[name=amount]', '25.00');
  await page.click('#topup button[type=submit]');
  await page.locator('.toast', { hasText: 'Replayed' }).waitFor();
  const again = (await call(base, adminKey, 'GET', '/admin/v1/accounts/acct_default/credits')).json;
  assert(again.balance_nano === after.balance_nano, 'a replayed top-up changes nothing');
  await page.locator('tr.ledger-row').first().waitFor();
  assert(await page.locator('tr.ledger-row').count() >= 2, 'the ledger lists the top-ups');
  // The ledger pages on the server: 10 rows, then the next 10 through the
  // cursor (the demo account has a debit per request and the top-ups).
  const ledgerPager = page.locator('[data-pager=ledger]');
  await ledgerPager.locator('select[name=page_size]').selectOption('10');
  await page.waitForFunction(() => document.querySelectorAll('[data-pager=ledger] tr.ledger-row').length === 10);
  const firstPage = await ledgerPager.locator('tr.ledger-row td:first-child').allTextContents();
  const [second] = await Promise.all([
    page.waitForRequest((r) => /\/ledger\?.*before=\d+/.test(r.url()) && /limit=10/.test(r.url())),
    ledgerPager.locator('[data-action=next]').click(),
  ]);
  await ledgerPager.locator('[data-page="2"]').waitFor();
  const secondPage = await ledgerPager.locator('tr.ledger-row td:first-child').allTextContents();
  assert(secondPage.length > 0 && Number(secondPage[0]) < Number(firstPage[firstPage.length - 1]),
    `the second page continues below the first (${firstPage.at(-1)} then ${secondPage[0]}; ${second.url()})`);
  await ledgerPager.locator('[data-action=prev]').click();
  await ledgerPager.locator('[data-page="1"]').waitFor();
  // A filter narrows on the server: top-ups only.
  const [filtered] = await Promise.all([
    page.waitForRequest((r) => /\/ledger\?.*kind=top_up/.test(r.url())),
    (async () => { await page.selectOption('#account-detail form.filters select[name=kind]', 'top_up'); await page.click('#account-detail form.filters button[type=submit]'); })(),
  ]);
  await page.waitForFunction(() => { const k = [...document.querySelectorAll('[data-pager=ledger] tr.ledger-row .pill')]; return k.length > 0 && k.every((e) => e.textContent === 'top_up'); });
  const topUps = await ledgerPager.locator('tr.ledger-row').count();
  assert(topUps === 2, `the kind filter leaves the two top-ups (${topUps} rows; ${filtered.url()})`);
  await page.locator('#account-detail form.filters').getByRole('button', { name: 'Clear' }).click();
  await page.waitForFunction(() => [...document.querySelectorAll('[data-pager=ledger] tr.ledger-row .pill')].some((e) => e.textContent === 'usage'));
  log('ledger: paged 10 at a time through the cursor, filtered by kind');

  // Audit log: the key events above, a kind filter, and the chain verified.
  await nav('Audit log');
  await page.locator('tr.audit-row').first().waitFor();
  for (const k of ['key.created', 'key.rotated', 'key.suspended', 'key.resumed', 'key.revoked', 'credits.changed']) {
    assert(await page.locator('tr.audit-row .pill', { hasText: k }).count() >= 1, 'the audit log shows ' + k);
  }
  await page.fill('input[name=kind]', 'key.revoked');
  await page.click('form.toolbar button[type=submit]');
  await page.waitForFunction(() => { const k = [...document.querySelectorAll('tr.audit-row .pill')]; return k.length > 0 && k.every((e) => e.textContent === 'key.revoked'); });
  assert(await page.locator('tr.audit-row').count() === 1, 'the kind filter leaves one revocation');
  await page.locator('form.toolbar').getByRole('button', { name: 'Clear' }).click();
  await page.locator('tr.audit-row .pill', { hasText: 'key.created' }).first().waitFor();
  await page.click('#verify');
  await page.locator('#verify-result .banner.ok', { hasText: 'Chain intact' }).waitFor();

  // The request log: a row per request, searchable by id, filtered on the
  // server, with a detail view.
  if (requestLog) {
    await nav('Requests');
    await page.locator('tr.request-row').first().waitFor();
    const shown = await page.locator('tr.request-row').count();
    assert(shown >= 18, `the request log lists the requests (${shown})`);
    const [filteredReq] = await Promise.all([
      page.waitForRequest((r) => /\/admin\/v1\/requests\?.*model=gpt-4o-mini/.test(r.url())),
      (async () => { await page.fill('form.filters input[name=model]', 'gpt-4o-mini'); await page.click('form.filters button[type=submit]'); })(),
    ]);
    await page.waitForFunction(() => { const r = [...document.querySelectorAll('tr.request-row')]; return r.length > 0 && r.length < 18; });
    assert((await page.locator('tr.request-row').allTextContents()).every((t) => t.includes('gpt-4o-mini')), 'the model filter leaves only that model: ' + filteredReq.url());
    const id = await page.locator('tr.request-row [data-request]').first().getAttribute('data-request');
    await page.fill('input[name=request_id]', id);
    await page.locator('form.search button[type=submit]').click();
    await page.waitForFunction(() => document.querySelectorAll('tr.request-row').length === 1);
    await page.locator('tr.request-row [data-request]').click();
    await page.locator('#request-detail', { hasText: id }).waitFor();
    await shot('request-detail-1280');
    await page.locator('.modal').getByRole('button', { name: 'Close' }).click();
    await page.fill('input[name=request_id]', '');
    await page.locator('form.filters').getByRole('button', { name: 'Clear' }).click();
    await page.locator('tr.request-row').nth(17).waitFor();
    log('request log: listed, filtered by model, found by id, detail shown');
  } else {
    log('PENDING: the request log (GET /admin/v1/requests answers 404 on this branch; it comes with branch h-reqlog)');
  }

  // Every main view at both widths, from a fresh load (filters reset).
  await page.reload();
  await page.locator('main h1').waitFor();
  for (const [label, name] of [['Overview', 'overview'], ['Usage', 'usage'], ['Requests', 'requests'], ['Keys', 'keys'], ['Deployments', 'deployments'], ['Credits', 'credits'], ['Audit log', 'audit']]) {
    await nav(label);
    if (name === 'overview' || name === 'usage') await page.locator('.chart-box .uplot canvas').first().waitFor();
    if (name === 'credits') {
      await page.locator('tbody a', { hasText: /^default$/ }).click();
      await page.locator('h2', { hasText: 'Top up default' }).waitFor();
      await page.locator('tr.ledger-row').first().waitFor();
    }
    await shotBoth(name);
  }

  // A viewer (an admin key with the read-only role) sees every page but
  // no control it could not use, and no key hint.
  const made = await fetch(base + '/admin/v1/keys', { method: 'POST', headers: { Authorization: 'Bearer ' + adminKey, 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: 'e2e-viewer', kind: 'admin', role: 'viewer' }) }).then((r) => r.json());
  assert(made.role === 'viewer' && made.key, 'viewer key created: ' + JSON.stringify(made));
  await page.evaluate((k) => sessionStorage.setItem('xroute.adminKey', k), made.key);
  await page.reload();
  await page.locator('#role', { hasText: 'Role: viewer' }).waitFor();
  await nav('Keys');
  await page.locator('tr.key-row').first().waitFor();
  assert(await page.locator('#create-key').count() === 0, 'a viewer has no Create key button');
  assert(await page.locator('[data-action]').count() === 0, 'a viewer has no key actions');
  const hints = await page.locator('tr.key-row code').allTextContents();
  assert(hints.length > 0 && hints.every((t) => t === '—'), 'a viewer sees no key hint: ' + hints.join(', '));
  await nav('Credits');
  await page.locator('tbody a', { hasText: /^default$/ }).click();
  // The page may show the first account's ledger before the one picked:
  // wait for the picked one's, so that no request of the page is still to
  // go out when the key changes below.
  await page.locator('h2', { hasText: 'Ledger · default' }).waitFor();
  await page.locator('tr.ledger-row').first().waitFor();
  assert(await page.locator('#topup').count() === 0, 'a viewer has no top-up form');
  log('viewer: every control it cannot use hidden, no key hints');

  // A key that stops working sends the operator back to the login form.
  await page.evaluate(() => sessionStorage.setItem('xroute.adminKey', 'xra-revoked-or-wrong'));
  await page.locator('nav.sidebar').getByRole('link', { name: 'Overview', exact: true }).click();
  await page.locator('#admin-key').waitFor();
  await page.locator('.form-error', { hasText: /./ }).waitFor();
  assert(await page.evaluate(() => sessionStorage.getItem('xroute.adminKey')) === null, 'the bad key is forgotten');

  assert(problems.length === 0, 'no page errors:\n' + problems.join('\n'));
  log('PASS: every dashboard page checked');
}

let failed = false;
try {
  await main();
} catch (e) {
  failed = true;
  console.error('FAIL:', e.stack || e);
  if (currentPage) {
    const p = path.join(tmpdir(), 'xroute-e2e-failure.png');
    await currentPage.screenshot({ path: p, fullPage: true }).then(() => console.error('page at the failure:', p), () => {});
  }
  if (serverLog) console.error('--- server log (tail) ---\n' + serverLog.split('\n').slice(-30).join('\n'));
} finally {
  if (browser) await browser.close().catch(() => {});
  stopServer();
  await new Promise((r) => setTimeout(r, 300));
  rmSync(work, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
