// The README's browser example, in a real browser: a tiny Node server route
// holds a parent key (keys.mint) and mints a capped child per page; the page
// calls xroute directly with the official `openai` SDK
// (dangerouslyAllowBrowser) from another origin. Checks: without the origin
// allowed, the browser's CORS refuses the call; with it allowed
// (PUT /admin/v1/accounts/{id}/cors) the page streams an answer; past the
// child's request cap the SDK gets 429 ephemeral_key_cap.
//
//   node e2e/ephemeral.test.mjs        (XROUTE_BIN=path skips the build,
//                                       CHROMIUM=path picks the browser)
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const sdkDir = path.join(here, 'node_modules', 'openai');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const work = mkdtempSync(path.join(tmpdir(), 'xroute-e2e-ephem-'));
let server = null;
let browser = null;
let app = null;

function assert(cond, msg) {
  if (!cond) throw new Error('assertion failed: ' + msg);
}

function stopServer() {
  if (server && server.exitCode === null && server.signalCode === null) {
    try { process.kill(-server.pid, 'SIGTERM'); } catch { try { server.kill('SIGTERM'); } catch { /* gone */ } }
  }
}
process.on('exit', stopServer);

async function startXroute() {
  let bin = process.env.XROUTE_BIN;
  if (!bin) {
    bin = path.join(work, 'xroute');
    execFileSync('go', ['build', '-o', bin, './cmd/xroute'], { cwd: root, stdio: 'inherit' });
  }
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('XROUTE_')));
  server = spawn(bin, ['serve', '--demo', '--addr', '127.0.0.1:0', '--data', path.join(work, 'data')], { cwd: work, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the demo server printed no keys within 60 s\n' + out)), 60000);
    server.on('exit', (code) => reject(new Error(`the server exited (${code})\n${out}`)));
    server.stdout.on('data', (d) => {
      out += d;
      const base = /export OPENAI_BASE_URL=(http:\/\/\S+)\/v1/.exec(out);
      const admin = /export XROUTE_ADMIN_KEY=(\S+)/.exec(out);
      if (base && admin) {
        clearTimeout(timer);
        resolve({ base: base[1], adminKey: admin[1] });
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
  return { status: res.status, text, json: (() => { try { return JSON.parse(text); } catch { return null; } })() };
}

// The page: the README's snippet, with the results kept for the test.
const page = (xroute) => `<!doctype html><meta charset="utf-8"><title>child key</title>
<script type="importmap">{"imports":{"openai":"/sdk/index.mjs"}}</script>
<script type="module">
import OpenAI from "openai";
async function run() {
  const { key } = await (await fetch("/api/xroute-key", { method: "POST" })).json();
  const client = new OpenAI({ baseURL: ${JSON.stringify(xroute + '/v1')}, apiKey: key, dangerouslyAllowBrowser: true, maxRetries: 0 });
  const ask = () => client.chat.completions.create({ model: "gpt-4o-mini", stream: true,
    messages: [{ role: "user", content: "Hello from a page!" }] });
  const out = { text: "" };
  try {
    for await (const chunk of await ask()) out.text += chunk.choices[0]?.delta?.content ?? "";
  } catch (e) { out.first = { name: e.constructor.name, status: e.status ?? null }; }
  try { await ask(); out.second = "served"; }
  catch (e) { out.second = { name: e.constructor.name, status: e.status ?? null, code: e.code ?? e.error?.code ?? null }; }
  return out;
}
window.result = run().catch((e) => ({ crash: String(e) }));
</script>`;

function startApp(xroute, parentKey) {
  const html = page(xroute);
  const srv = http.createServer(async (req, res) => {
    if (req.method === 'POST' && req.url === '/api/xroute-key') {
      // The README's server route, with a cap of one request.
      const r = await fetch(`${xroute}/v1/keys/ephemeral`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${parentKey}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ models: ['gpt-4o-mini'], endpoints: ['chat.completions'], ttl_seconds: 600, max_spend_usd: '0.05', max_requests: 1 }),
      });
      const child = await r.json();
      res.writeHead(r.status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
      res.end(JSON.stringify(r.ok ? { key: child.key, expires_at: child.expires_at } : child));
      return;
    }
    if (req.method === 'GET' && req.url.startsWith('/sdk/')) {
      const file = path.join(sdkDir, path.normalize(req.url.slice(5)).replace(/^(\.\.[/\\])+/, ''));
      if (file.startsWith(sdkDir) && (file.endsWith('.mjs') || file.endsWith('.js')) && existsSync(file)) {
        res.writeHead(200, { 'Content-Type': 'text/javascript' });
        res.end(readFileSync(file));
        return;
      }
      res.writeHead(404).end();
      return;
    }
    if (req.method === 'GET' && req.url === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end(html);
      return;
    }
    res.writeHead(404).end();
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(srv)));
}

async function main() {
  const { base, adminKey } = await startXroute();
  const parent = await call(base, adminKey, 'POST', '/admin/v1/keys', { name: 'web-server', allowed_endpoints: ['chat.completions', 'keys.mint'] });
  assert(parent.status === 201, 'parent key: ' + parent.text);
  app = await startApp(base, parent.json.key);
  const origin = `http://127.0.0.1:${app.address().port}`;
  const context = await chromium.launchPersistentContext(mkdtempSync(path.join(work, 'chromium-')), {
    executablePath: chromiumPath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  browser = context;
  const tab = context.pages()[0] || await context.newPage();
  tab.setDefaultTimeout(20000);
  const errors = [];
  tab.on('pageerror', (e) => errors.push(e.message));
  tab.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  tab.on('response', (r) => { if (r.status() === 404) errors.push('404 ' + r.url()); });
  const visit = async () => {
    await tab.goto(origin + '/');
    try {
      await tab.waitForFunction(() => window.result !== undefined);
    } catch (e) {
      throw new Error('the page never ran: ' + errors.join('; '));
    }
    return await tab.evaluate(() => window.result);
  };

  // 1. The origin is not allowed yet: the browser's CORS check fails the call.
  const refused = await visit();
  console.log('origin not allowed:', JSON.stringify(refused));
  assert(!refused.crash, 'page crashed: ' + refused.crash);
  assert(refused.first && refused.first.name === 'APIConnectionError' && refused.text === '', 'the first call is blocked by CORS');

  // 2. The operator allows the page's origin for the account.
  const cors = await call(base, adminKey, 'PUT', '/admin/v1/accounts/acct_default/cors', { origins: [origin] });
  assert(cors.status === 200, 'put cors: ' + cors.text);
  const served = await visit();
  console.log('origin allowed:', JSON.stringify(served));
  assert(!served.first && served.text.length > 0, 'the page streamed an answer through the SDK');
  assert(served.second && served.second.status === 429 && served.second.code === 'ephemeral_key_cap', 'the child stops at its request cap');
  console.log('PASS ephemeral keys in the browser');
}

main().then(
  async () => { await browser?.close(); app?.close(); stopServer(); rmSync(work, { recursive: true, force: true }); process.exit(0); },
  async (e) => { console.error(e); await browser?.close().catch(() => {}); app?.close(); stopServer(); process.exit(1); },
);
