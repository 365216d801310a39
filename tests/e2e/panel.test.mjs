// The panel in a real browser: Debian's headless Chromium driven by playwright-core,
// against the real berthd (BERTH_BUILD_DIR) in temp dirs on a free port, reached
// through the front at http://panel.test.berth:PORT/ (every name resolves to
// 127.0.0.1 inside the browser). Screenshots of each page go to artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const buildDir = path.resolve(process.env.BERTH_BUILD_DIR || path.join(here, '../../build-test'));
const BERTHD = path.join(buildDir, 'berthd');
const BERTH = path.join(buildDir, 'berth');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const BASE = 'test.berth';
const artifacts = path.join(here, 'artifacts');
const PASSWORDS = { alice: 'alice-e2e-password', bob: 'bob-e2e-password' };
const SANITIZER_MARKS = ['ERROR: AddressSanitizer', 'ERROR: LeakSanitizer', 'runtime error:'];

let root, daemon, port, browser;

function berth(args, input) {
  const r = spawnSync(BERTH, ['--socket', path.join(root, 'run/api.sock'), ...args], { input, encoding: 'utf8' });
  return r;
}

function berthOk(args, input) {
  const r = berth(['--json', ...args], input);
  assert.equal(r.status, 0, `berth ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

async function startDaemon() {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-e2e-'));
  // The front's workers (an unprivileged user) must walk down to the sites' trees.
  fs.chmodSync(root, 0o711);
  const first = 380000 + (process.pid % 900) * 10;
  fs.writeFileSync(path.join(root, 'berth.yaml'), `site_uid_range: ${first}-${first + 9}\n`);
  // The scheduler's clock is the test's (clock file): automatic backups fire when it says.
  fs.writeFileSync(path.join(root, 'clock'), String(Math.floor(Date.now() / 1000)));
  const log = fs.openSync(path.join(artifacts, 'berthd.log'), 'w');
  daemon = spawn(BERTHD, ['--state-dir', path.join(root, 'state'), '--run-dir', path.join(root, 'run'),
    '--config', path.join(root, 'berth.yaml'), '--base-domain', BASE, '--http', '127.0.0.1:0',
    '--ssh', '127.0.0.1:0'],
  { stdio: ['ignore', log, log],
    env: { ...process.env, BERTH_TEST_BACKUP_TICK_MS: '200', BERTH_TEST_BACKUP_CLOCK_FILE: path.join(root, 'clock') } });
  fs.closeSync(log);
  for (let i = 0; i < 300; i++) {
    if (daemon.exitCode !== null) throw new Error(`berthd exited with ${daemon.exitCode}: see artifacts/berthd.log`);
    const r = berth(['--json', 'status']);
    if (r.status === 0) {
      const http = JSON.parse(r.stdout).listeners.find((l) => l.kind === 'http');
      port = Number(http.address.split(':').pop());
      return;
    }
    await sleep(50);
  }
  throw new Error('berthd did not become ready');
}

async function stopDaemon() {
  if (!daemon || daemon.exitCode !== null) return daemon ? daemon.exitCode : 0;
  const exited = new Promise((res) => daemon.once('exit', (code) => res(code)));
  daemon.kill('SIGTERM');
  const code = await Promise.race([exited, sleep(20000).then(() => 'timeout')]);
  if (code === 'timeout') {
    daemon.kill('SIGKILL');
    throw new Error('berthd did not stop on SIGTERM');
  }
  return code;
}

function makeZip(file, html) {
  // python3's zipfile: no zip(1) needed. A single top folder, which upload unwraps.
  const py = 'import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], "w") as z:\n' +
    '    z.writestr("site/index.html", sys.argv[2])\n    z.writestr("site/style.css", "h1 { color: teal }")\n';
  const r = spawnSync('python3', ['-c', py, file, html], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

const panelUrl = () => `http://panel.${BASE}:${port}/`;
const siteUrl = (name) => `http://${name}.${BASE}:${port}/`;

async function shot(page, name) {
  await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
}

async function signIn(context, user) {
  const page = await context.newPage();
  await page.goto(panelUrl());
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(PASSWORDS[user]);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: /^(My|All) sites$/ }).waitFor();
  return page;
}

before(async () => {
  fs.rmSync(artifacts, { recursive: true, force: true });
  fs.mkdirSync(artifacts, { recursive: true });
  await startDaemon();
  for (const name of Object.keys(PASSWORDS)) berthOk(['user', 'add', name, '--password-stdin'], PASSWORDS[name] + '\n');
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-gpu',
      '--headless', '--host-resolver-rules=MAP * 127.0.0.1'],
  });
});

after(async () => {
  if (browser) await browser.close();
  const code = await stopDaemon();
  const log = fs.readFileSync(path.join(artifacts, 'berthd.log'), 'utf8');
  if (root) fs.rmSync(root, { recursive: true, force: true });
  for (const mark of SANITIZER_MARKS) assert.ok(!log.includes(mark), `sanitizer report in artifacts/berthd.log`);
  assert.equal(code, 0, 'berthd exited with an error: see artifacts/berthd.log');
});

test('a user signs in, creates a site, uploads, stops, starts and deletes it', async () => {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  await page.goto(panelUrl());
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await shot(page, '01-sign-in');

  // A wrong password is said plainly, beside the form.
  await page.getByLabel('User name').fill('alice');
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('Wrong user name or password.').waitFor();

  await page.getByLabel('Password').fill(PASSWORDS.alice);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'My sites' }).waitFor();
  await shot(page, '02-my-sites-empty');

  // Create: the address is shown live; a bad name is explained beside the field.
  await page.getByRole('link', { name: 'Create a site' }).first().click();
  await page.getByRole('heading', { name: 'Create a site' }).waitFor();
  await page.getByLabel('Name').fill('Hello_World');
  await page.getByText('Use lowercase letters only.').waitFor();
  await page.getByLabel('Name').fill('hello');
  assert.equal(await page.locator('#new-address').textContent(), `hello.${BASE}`);
  await page.getByLabel('Type').selectOption('static');
  await shot(page, '03-create-site');
  await page.getByRole('button', { name: 'Create the site' }).click();
  await page.getByRole('heading', { name: 'hello' }).waitFor();
  await shot(page, '04-site-page');

  // Creating it again: the API's conflict shows beside the name.
  await page.goto(panelUrl() + '#/new');
  await page.getByLabel('Name').fill('hello');
  await page.getByRole('button', { name: 'Create the site' }).click();
  await page.locator('#new-name-error').getByText('already exists').waitFor();
  await shot(page, '05-create-site-error');

  // Upload a zip through the panel's form, with its progress bar.
  const zip = path.join(root, 'hello.zip');
  makeZip(zip, '<!doctype html><title>hello</title><h1>Hello from the e2e upload</h1>');
  await page.goto(panelUrl() + '#/site/hello');
  await page.getByRole('heading', { name: 'hello' }).waitFor();
  await page.getByLabel('Archive (zip or tar)').setInputFiles(zip);
  await page.getByRole('button', { name: 'Upload', exact: true }).click();
  await page.locator('#upload-result').getByText('Uploaded').waitFor({ timeout: 30000 });
  assert.equal(await page.locator('#upload-progress').getAttribute('value'), '100');
  await shot(page, '06-uploaded');

  // The site's own address serves the uploaded page. The visitor asks the server
  // every time: a page with a Last-Modified and no Cache-Control may be taken from
  // the browser's cache for a moment (heuristic freshness), which would show a
  // stopped or deleted site as still there. Routing turns Playwright's cache off.
  const visitor = await context.newPage();
  await visitor.route('**/*', (route) => route.continue());
  let r = await visitor.goto(siteUrl('hello'));
  assert.equal(r.status(), 200);
  await visitor.getByRole('heading', { name: 'Hello from the e2e upload' }).waitFor();
  await shot(visitor, '07-site-served');

  // The site's page shows the visit in its access log (the front writes it within
  // a second or so: its log lines are buffered).
  let seen = false;
  for (let i = 0; i < 40 && !seen; i++) {
    await page.getByRole('button', { name: 'Refresh logs' }).click();
    await sleep(250);
    seen = (await page.locator('#log-access').textContent()).includes('GET / ');
  }
  assert.ok(seen, 'the visit is not in the access log shown by the panel');
  await shot(page, '07b-access-log');

  // Stop: the address answers 503. Start: served again.
  await page.getByRole('button', { name: 'Stop hello', exact: true }).click();
  await page.getByRole('button', { name: 'Start hello', exact: true }).and(page.locator(':enabled')).waitFor();
  r = await visitor.goto(siteUrl('hello'));
  assert.equal(r.status(), 503);
  await shot(visitor, '08-site-stopped-503');
  await shot(page, '09-site-page-stopped');
  await page.getByRole('button', { name: 'Start hello', exact: true }).click();
  await page.getByRole('button', { name: 'Stop hello', exact: true }).and(page.locator(':enabled')).waitFor();
  r = await visitor.goto(siteUrl('hello'));
  assert.equal(r.status(), 200);

  // Delete, typing the name to confirm.
  const del = page.getByRole('button', { name: 'Delete hello' });
  assert.equal(await del.isDisabled(), true);
  await page.getByLabel('Type hello to confirm').fill('hello');
  await shot(page, '10-delete-confirm');
  await del.click();
  await page.getByRole('heading', { name: 'My sites' }).waitFor();
  await page.getByText('You have no sites yet.').waitFor();
  r = await visitor.goto(siteUrl('hello'));
  assert.equal(r.status(), 404);
  await shot(page, '11-deleted');

  // Phone width: the same page, one column, nothing cut off.
  await page.setViewportSize({ width: 375, height: 800 });
  await page.goto(panelUrl() + '#/new');
  await page.getByRole('heading', { name: 'Create a site' }).waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  assert.equal(overflow, false, 'the page is wider than a phone');
  await shot(page, '12-phone-create');
  await context.close();
});

test("a second user cannot see the first user's sites", async () => {
  const aliceContext = await browser.newContext();
  const alice = await signIn(aliceContext, 'alice');
  await alice.goto(panelUrl() + '#/new');
  await alice.getByLabel('Name').fill('alices-secret');
  await alice.getByRole('button', { name: 'Create the site' }).click();
  await alice.getByRole('heading', { name: 'alices-secret' }).waitFor();

  const bobContext = await browser.newContext();
  const bob = await signIn(bobContext, 'bob');
  await bob.getByText('You have no sites yet.').waitFor();
  await shot(bob, '13-second-user-sites');
  // Through the API, with bob's own session: a 404, as for a site that does not exist.
  for (const [method, url] of [['GET', 'api/v1/sites/alices-secret'], ['DELETE', 'api/v1/sites/alices-secret'],
    ['POST', 'api/v1/sites/alices-secret/stop']]) {
    const status = await bob.evaluate(async ([m, u]) => {
      const me = await (await fetch('/api/v1/me')).json();
      const res = await fetch('/' + u, { method: m, headers: { 'X-CSRF-Token': me.csrf } });
      return res.status;
    }, [method, url]);
    assert.equal(status, 404, `${method} ${url}`);
  }
  await bob.goto(panelUrl() + '#/site/alices-secret');
  await bob.getByRole('heading', { name: 'Site not found' }).waitFor();
  await shot(bob, '14-second-user-404');
  // Still there for alice.
  assert.ok(berthOk(['site', 'ls']).sites.some((s) => s.name === 'alices-secret' && s.owner === 'alice'));
  await aliceContext.close();
  await bobContext.close();
});

test('a forged cross-site POST is refused', async () => {
  const context = await browser.newContext();
  const alice = await signIn(context, 'alice');
  // A page on another site, open in the same browser as alice's session, posts a
  // site-creating form to the panel.
  const evilUrl = `http://evil.example:${port}/`;
  await context.route(`${evilUrl}**`, (route) => route.fulfill({
    contentType: 'text/html',
    body: `<!doctype html><title>win a prize</title>
      <form method="POST" action="${panelUrl()}api/v1/sites" enctype="text/plain">
      <input name='{"name":"forged","x":"' value='"}'></form>
      <script>document.forms[0].submit()</script>`,
  }));
  const evil = await context.newPage();
  const answer = evil.waitForResponse((res) => res.url().startsWith(panelUrl() + 'api/v1/sites'));
  await evil.goto(evilUrl);
  const res = await answer;
  assert.equal(res.status(), 403);
  await evil.waitForLoadState();
  await shot(evil, '15-forged-post-refused');
  // And a script on that page cannot do it with fetch either.
  await evil.goto(evilUrl).catch(() => {});
  const fetched = await evil.evaluate(async (u) => {
    try {
      await fetch(u + 'api/v1/sites', { method: 'POST', credentials: 'include', mode: 'no-cors',
        headers: { 'Content-Type': 'text/plain' }, body: '{"name":"forged2"}' });
      return 'sent';
    } catch (e) {
      return 'blocked';
    }
  }, panelUrl());
  assert.ok(['sent', 'blocked'].includes(fetched));
  const names = berthOk(['site', 'ls']).sites.map((s) => s.name);
  assert.ok(!names.includes('forged') && !names.includes('forged2'), names.join(','));
  // Alice's own session still works.
  await alice.reload();
  await alice.getByRole('heading', { name: 'My sites' }).waitFor();
  await context.close();
});

test('admin pages and sign out', async () => {
  const r = berth(['user', 'add', 'boss', '--admin', '--password-stdin'], 'boss-e2e-password\n');
  assert.equal(r.status, 0, r.stderr);
  PASSWORDS.boss = 'boss-e2e-password';
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(panelUrl());
  await page.getByLabel('User name').fill('boss');
  await page.getByLabel('Password').fill(PASSWORDS.boss);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'All sites' }).waitFor();
  await page.getByText('owner: alice').first().waitFor();
  await page.getByRole('link', { name: 'Admin' }).click();
  await page.getByRole('heading', { name: 'Admin' }).waitFor();
  await page.getByRole('button', { name: 'Disable bob' }).click();
  await page.getByRole('button', { name: 'Enable bob' }).waitFor();
  await page.getByRole('cell', { name: 'user.disable' }).first().waitFor();
  await shot(page, '16-admin');
  const locked = await browser.newContext();
  const bob = await locked.newPage();
  await bob.goto(panelUrl());
  await bob.getByLabel('User name').fill('bob');
  await bob.getByLabel('Password').fill(PASSWORDS.bob);
  await bob.getByRole('button', { name: 'Sign in' }).click();
  await bob.getByText('Wrong user name or password.').waitFor();
  await page.getByRole('button', { name: 'Enable bob' }).click();
  await page.getByRole('button', { name: 'Disable bob' }).waitFor();

  await page.getByRole('link', { name: 'Account' }).click();
  await page.getByRole('heading', { name: 'Account' }).waitFor();
  await page.getByLabel('Token name').fill('ci');
  await page.getByRole('button', { name: 'Create a token' }).click();
  const token = await page.locator('.secret').textContent();
  assert.match(token, /^berth_/);
  await shot(page, '17-account-token');

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  const me = await page.evaluate(async () => (await fetch('/api/v1/me')).status);
  assert.equal(me, 401);
  await locked.close();
  await context.close();
});

// Requests to a site through the front, as a visitor's browser would send them.
async function visit(name, urlPath, n) {
  for (let i = 0; i < n; i++) {
    await new Promise((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port, path: urlPath, headers: { Host: `${name}.${BASE}` } }, (res) => {
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
    });
  }
}

async function waitFor(check, what, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

test('figures: cards, the chart of the last hour, the admin table', async () => {
  berthOk(['site', 'create', 'busy', '--owner', 'alice']);
  await visit('busy', '/', 9);
  await visit('busy', '/missing', 3);
  await waitFor(() => berthOk(['site', 'show', 'busy']).requests.last_hour >= 12, 'the front to report the requests');

  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await signIn(context, 'alice');
  // The card shows state, address and the requests of the last hour.
  const card = page.locator('section.site', { has: page.getByRole('heading', { name: 'busy' }) });
  await card.getByRole('link', { name: `http://busy.${BASE}:${port}/` }).waitFor();
  assert.equal(await card.locator('.fig-requests b').textContent(), '12');
  await card.locator('.badge').getByText('running').waitFor();
  await shot(page, '18-cards-with-figures');

  await card.getByRole('link', { name: 'busy', exact: true }).click();
  await page.getByRole('heading', { name: 'busy', exact: true }).waitFor();
  const chart = page.locator('#site-chart svg.chart');
  await chart.waitFor();
  // Data points: at least one bar, whose counts add up to what was sent.
  const bars = await chart.locator('rect.bar').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-requests'))));
  assert.ok(bars.length >= 1, 'no bars in the chart');
  assert.equal(bars.reduce((a, b) => a + b, 0), 12);
  // Labelled for screen readers: the SVG names its title and its summary, and the
  // figures are also in words and in a table only they see.
  assert.equal(await chart.getAttribute('role'), 'img');
  const labelledBy = (await chart.getAttribute('aria-labelledby')).split(' ');
  assert.ok(labelledBy.length === 2);
  assert.match(await page.locator(`#${labelledBy[1]}`).textContent(), /Last hour: 12 requests/);
  assert.match(await page.locator('#chart-summary').textContent(), /Last hour: 12 requests, 0 server errors/);
  const rows = await page.locator('#site-chart .visually-hidden table tbody tr').count();
  assert.ok(rows >= 1);
  await shot(page, '19-site-chart');

  // It refreshes by itself (every 10 s): more requests show without a reload.
  await visit('busy', '/', 5);
  await page.locator('#chart-summary').getByText('Last hour: 17 requests').waitFor({ timeout: 30000 });

  // Phone width: the chart fits.
  await page.setViewportSize({ width: 375, height: 800 });
  const wide = await page.evaluate(() => [...document.querySelectorAll('main *')]
    .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
    .map((e) => `${e.tagName}#${e.id}.${e.className && e.className.baseVal === undefined ? e.className : ''}`).slice(0, 5));
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  assert.equal(overflow, false, `the site page is wider than a phone: ${wide.join(', ')}`);
  await shot(page, '20-site-chart-phone');
  await context.close();

  // The admin sees every site with its owner, state and usage.
  if (!PASSWORDS.boss) {   // when run alone, without the admin test before
    PASSWORDS.boss = 'boss-e2e-password';
    berthOk(['user', 'add', 'boss', '--admin', '--password-stdin'], PASSWORDS.boss + '\n');
  }
  const admin = await browser.newContext();
  const boss = await signIn(admin, 'boss');
  await boss.goto(panelUrl() + '#/admin');
  const row = boss.locator('#admin-sites tr', { has: boss.getByRole('link', { name: 'busy', exact: true }) });
  await row.waitFor();
  const cells = await row.locator('td').allTextContents();
  assert.equal(cells[1], 'alice');
  assert.equal(cells[2], 'running');
  assert.equal(cells[5], '17');
  await shot(boss, '21-admin-usage');
  await admin.close();
});

test('PHP settings: change a value, a bad one explained beside it, reset to default', async () => {
  berthOk(['site', 'create', 'phpsite', '--type', 'php', '--owner', 'alice']);
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await signIn(context, 'alice');
  await page.goto(panelUrl() + '#/site/phpsite');
  await page.getByRole('heading', { name: 'PHP settings' }).waitFor();
  const input = () => page.getByLabel('memory_limit', { exact: true });
  await input().waitFor();
  // The default is shown, and an empty field means "the default".
  const row = page.locator('#php-form tr[data-key="memory_limit"]');
  const def = await row.locator('.php-default').textContent();
  assert.ok(def.length > 0);
  assert.equal(await input().inputValue(), '');
  await shot(page, '22-php-settings');

  await input().fill('256M');
  await page.getByRole('button', { name: 'Save PHP settings' }).click();
  await waitFor(() => (berthOk(['site', 'show', 'phpsite']).php || {}).memory_limit === '256M', 'the setting to be saved');
  await page.getByRole('button', { name: `Reset memory_limit to its default, ${def}` }).waitFor();
  assert.equal(await input().inputValue(), '256M');

  // A bad value: the API's sentence beside the field, nothing changed.
  await input().fill('lots');
  await page.getByRole('button', { name: 'Save PHP settings' }).click();
  const err = page.locator('#php-memory_limit-error');
  await err.getByText('memory_limit').waitFor();
  assert.equal(await input().getAttribute('aria-invalid'), 'true');
  assert.equal(berthOk(['site', 'show', 'phpsite']).php.memory_limit, '256M');
  await shot(page, '23-php-settings-error');

  // Reset to the default removes the override.
  await page.getByRole('button', { name: `Reset memory_limit to its default, ${def}` }).click();
  await waitFor(() => !('memory_limit' in (berthOk(['site', 'show', 'phpsite']).php || {})), 'the override to go');
  await page.getByRole('heading', { name: 'PHP settings' }).waitFor();
  await waitFor(async () => (await input().inputValue()) === '', 'the field to show the default again');

  // A static site has no PHP section.
  await page.goto(panelUrl() + '#/site/busy');
  await page.getByRole('heading', { name: 'busy', exact: true }).waitFor();
  assert.equal(await page.getByRole('heading', { name: 'PHP settings' }).count(), 0);
  await context.close();
});

// GET on api.sock, as root: what the store holds, whatever the panel shows.
function rootGet(urlPath) {
  return new Promise((resolve, reject) => {
    http.get({ socketPath: path.join(root, 'run/api.sock'), path: '/api/v1/' + urlPath }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(JSON.parse(body)));
    }).on('error', reject);
  });
}

test('a double click sends a form or an action once', async () => {
  berthOk(['site', 'create', 'twice', '--owner', 'alice']);
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await signIn(context, 'alice');

  // Restart a site: one restart.
  const restarts = async () => (await rootGet('events?limit=1000')).events
    .filter((e) => e.action === 'site.update' && e.target === 'twice').length;
  const before = await restarts();
  await page.goto(panelUrl() + '#/site/twice');
  await page.getByRole('heading', { name: 'twice', exact: true }).waitFor();
  await page.getByRole('button', { name: 'Restart twice' }).dblclick();
  await page.locator('#status').getByText('twice: restarted.').waitFor();
  await sleep(1000);
  assert.equal(await restarts(), before + 1, 'a double click restarted the site twice');

  // Create a token: one token, the one shown.
  await page.goto(panelUrl() + '#/account');
  await page.getByLabel('Token name').fill('double-click');
  await page.getByRole('button', { name: 'Create a token' }).dblclick();
  const token = await page.locator('.secret').textContent();
  assert.match(token, /^berth_/);
  await sleep(1000);
  const made = berthOk(['token', 'ls', '--user', 'alice']).tokens.filter((t) => t.name === 'double-click');
  assert.equal(made.length, 1, 'a double click made more than one token');
  await context.close();
});

test('an upload refused before its body arrives gets its reason, not a 502', async () => {
  berthOk(['site', 'create', 'refused', '--owner', 'alice']);
  // Larger than the socket buffers between the front and berthd: still being sent
  // when berthd answers.
  const big = path.join(root, 'big.zip');
  fs.writeFileSync(big, Buffer.alloc(4 << 20, 'x'));

  // Bob's session: alice's site is as unknown to an upload as to everything else.
  const bobContext = await browser.newContext();
  const bob = await signIn(bobContext, 'bob');
  const status = await bob.evaluate(async () => {
    const me = await (await fetch('/api/v1/me')).json();
    const res = await fetch('/api/v1/sites/refused/content', { method: 'PUT', headers: { 'X-CSRF-Token': me.csrf },
      body: new Uint8Array(4 << 20) });
    return res.status;
  });
  assert.equal(status, 404);
  await bobContext.close();

  // Alice's session ends (signed out in another tab) while her site's page is open.
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await signIn(context, 'alice');
  await page.goto(panelUrl() + '#/site/refused');
  await page.getByRole('heading', { name: 'refused', exact: true }).waitFor();
  await context.clearCookies();
  await page.getByLabel('Archive (zip or tar)').setInputFiles(big);
  await page.getByRole('button', { name: 'Upload', exact: true }).click();
  const err = page.locator('#upload-file-error');
  await err.getByText('Not uploaded').waitFor({ timeout: 30000 });
  const text = await err.textContent();
  assert.match(text, /sign in/, text);
  await shot(page, '24-upload-session-ended');
  await context.close();
});

// GET / through the front with a given Host, as a visitor of that domain would.
function front(host) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/', headers: { Host: host } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    }).on('error', reject);
  });
}

test("domains: add one, one another site holds is refused beside the field, remove one", async () => {
  berthOk(['site', 'create', 'doms', '--owner', 'alice']);
  berthOk(['site', 'create', 'holder', '--owner', 'alice', '--domain', 'taken.example']);
  const content = fs.mkdtempSync(path.join(root, 'doms-'));
  fs.writeFileSync(path.join(content, 'index.html'), '<!doctype html><title>doms</title><h1>Served for doms</h1>');
  berthOk(['site', 'upload', 'doms', content]);
  await waitFor(async () => (await front(`doms.${BASE}`)).body.includes('Served for doms'), 'the site to serve its page');
  assert.equal((await front('shop.example')).status, 404);

  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await signIn(context, 'alice');
  await page.goto(panelUrl() + '#/site/doms');
  await page.getByRole('heading', { name: 'Domains' }).waitFor();
  const list = page.locator('#domain-list');
  // The site's own address is listed, without a Remove button.
  await list.getByText(`doms.${BASE}`, { exact: true }).waitFor();
  assert.equal(await page.getByRole('button', { name: `Remove doms.${BASE}` }).count(), 0);

  // Add: listed once the page is drawn again, and the front routes it to the site.
  await page.getByLabel('Domain to add').fill('shop.example');
  await page.getByRole('button', { name: 'Add domain' }).click();
  await page.getByRole('button', { name: 'Remove shop.example' }).waitFor();
  await list.getByText('shop.example', { exact: true }).waitFor();
  await page.locator('#status').getByText('Added shop.example to doms.').waitFor();
  assert.deepEqual(berthOk(['site', 'show', 'doms']).domains, ['shop.example']);
  await waitFor(async () => {
    const r = await front('shop.example');
    return r.status === 200 && r.body.includes('Served for doms');
  }, 'the front to route shop.example to doms');
  await shot(page, '25-domain-added');

  // A domain another site holds: the API's sentence beside the field, what was
  // typed kept, nothing changed.
  await page.getByLabel('Domain to add').fill('taken.example');
  await page.getByRole('button', { name: 'Add domain' }).click();
  await page.locator('#domain-new-error').getByText('domain taken.example already belongs to site holder').waitFor();
  assert.equal(await page.getByLabel('Domain to add').inputValue(), 'taken.example');
  assert.equal(await page.getByLabel('Domain to add').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.getByRole('button', { name: 'Remove taken.example' }).count(), 0);
  assert.deepEqual(berthOk(['site', 'show', 'doms']).domains, ['shop.example']);
  await shot(page, '26-domain-taken');

  // Remove: gone from the list, and the front no longer knows the name.
  await page.getByRole('button', { name: 'Remove shop.example' }).click();
  await page.locator('#status').getByText('Removed shop.example from doms.').waitFor();
  await waitFor(async () => (await page.getByRole('button', { name: 'Remove shop.example' }).count()) === 0, 'the Remove button to go');
  assert.equal(await list.getByText('shop.example', { exact: true }).count(), 0);
  assert.deepEqual(berthOk(['site', 'show', 'doms']).domains, []);
  await waitFor(async () => (await front('shop.example')).status === 404, 'the front to answer 404 for shop.example');
  // The site's own address still serves it.
  assert.ok((await front(`doms.${BASE}`)).body.includes('Served for doms'));
  await shot(page, '27-domain-removed');
  await context.close();
});

test('backups: make one, restore it over newer content, download it, delete it', async () => {
  berthOk(['site', 'create', 'keep', '--owner', 'alice']);
  const content = fs.mkdtempSync(path.join(root, 'keep-'));
  fs.writeFileSync(path.join(content, 'index.html'), '<!doctype html><h1>First version</h1>');
  berthOk(['site', 'upload', 'keep', content]);
  await waitFor(async () => (await front(`keep.${BASE}`)).body.includes('First version'), 'the first version');

  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await signIn(context, 'alice');
  await page.goto(panelUrl() + '#/site/keep');
  await page.getByRole('heading', { name: 'Backups' }).waitFor();
  await page.locator('#backup-list').getByText('No backups yet.').waitFor();
  // Disk limits are an admin's to set: the user sees them, with no field to change them.
  await page.locator('#set-io').getByText('Disk: read unlimited, write unlimited (set by an admin).').waitFor();
  assert.equal(await page.getByLabel('Disk write limit').count(), 0);

  await page.getByRole('button', { name: 'Make a backup now' }).click();
  await page.locator('#backup-result').getByText(/^Made a backup of keep/).waitFor();
  const table = page.getByRole('table', { name: 'Backups of keep' });
  await table.waitFor();
  assert.equal(await table.locator('tbody tr').count(), 1);
  const [snap] = berthOk(['site', 'archives', 'keep']).archives;
  assert.match(snap.name, /^keep-\d{8}-\d{6}\.tar\.zst$/);
  await shot(page, '28-backup-made');

  // Newer content, then back to the backup: the page asks first, Cancel changes nothing.
  fs.writeFileSync(path.join(content, 'index.html'), '<!doctype html><h1>Second version</h1>');
  berthOk(['site', 'upload', 'keep', content]);
  await waitFor(async () => (await front(`keep.${BASE}`)).body.includes('Second version'), 'the second version');
  await page.getByRole('button', { name: /^Restore the backup of / }).click();
  await page.getByRole('group', { name: /^Replace the site's files/ }).waitFor();
  await shot(page, '29-backup-restore-asks');
  await page.getByRole('button', { name: 'Cancel' }).click();
  await page.getByRole('button', { name: /^Restore the backup of / }).waitFor();
  assert.ok((await front(`keep.${BASE}`)).body.includes('Second version'));

  await page.getByRole('button', { name: /^Restore the backup of / }).click();
  await page.getByRole('button', { name: 'Restore now' }).click();
  await page.locator('#backup-result').getByText(/^Restored the backup of .*: the site now serves it\.$/).waitFor();
  await waitFor(async () => (await front(`keep.${BASE}`)).body.includes('First version'), 'the restored version');

  // The download is the snapshot itself (zstd), sent with the session's cookie.
  const href = await page.getByRole('link', { name: /^Download the backup of / }).getAttribute('href');
  const fetchFrom = (p, url) => p.evaluate(async (u) => {
    const r = await fetch(u, { credentials: 'same-origin' });
    const b = new Uint8Array(await r.arrayBuffer());
    return { status: r.status, head: [...b.subarray(0, 4)], length: b.length };
  }, url);
  const got = await fetchFrom(page, href);
  assert.equal(got.status, 200);
  assert.deepEqual(got.head, [0x28, 0xb5, 0x2f, 0xfd]);
  assert.equal(got.length, snap.size);

  await page.getByRole('button', { name: /^Delete the backup of / }).click();
  await page.getByRole('button', { name: 'Delete now' }).click();
  await page.locator('#backup-result').getByText(/^Deleted the backup of /).waitFor();
  await page.locator('#backup-list').getByText('No backups yet.').waitFor();
  assert.deepEqual(berthOk(['site', 'archives', 'keep']).archives, []);

  // The schedule: off at first; a keep count out of range is explained beside its field.
  await page.locator('#backup-schedule-status').getByText('Automatic backups are off.').waitFor();
  const hour = (new Date().getUTCHours() + 12) % 24;
  await page.getByLabel('Make a backup').selectOption('daily');
  await page.getByLabel('At', { exact: true }).selectOption(String(hour));
  await page.getByLabel('Automatic backups to keep').fill('0');
  await page.getByRole('button', { name: 'Save schedule' }).click();
  await page.locator('#backup-keep-error').getByText('Keep from 1 to 1000 backups.').waitFor();
  assert.equal(berthOk(['site', 'show', 'keep']).backups.every, 'off');
  await page.getByLabel('Automatic backups to keep').fill('3');
  await page.getByRole('button', { name: 'Save schedule' }).click();
  await page.locator('#status').getByText('Backup schedule saved.').waitFor();
  await page.locator('#backup-schedule-status').getByText(/^Next automatic backup: /).waitFor();
  let bk = berthOk(['site', 'show', 'keep']).backups;
  assert.deepEqual([bk.every, bk.hour, bk.keep, bk.last], ['daily', hour, 3, null]);
  // berthd makes it when it is due (the test's clock); the page shows how it went.
  fs.writeFileSync(path.join(root, 'clock'), String(bk.next_due));
  await waitFor(async () => berthOk(['site', 'show', 'keep']).backups.last !== null, 'the automatic backup');
  bk = berthOk(['site', 'show', 'keep']).backups;
  assert.ok(bk.last.ok && /^keep-\d{8}-\d{6}-auto\.tar\.zst$/.test(bk.last.snapshot), JSON.stringify(bk));
  await page.reload();
  await page.locator('#backup-last').getByText(/^Last automatic backup: .*, made\.$/).waitFor();
  assert.equal(await page.getByRole('table', { name: 'Backups of keep' }).locator('tbody tr').count(), 1);
  assert.equal(await page.getByLabel('Make a backup').inputValue(), 'daily');
  await shot(page, '29b-backup-schedule');
  await page.getByLabel('Make a backup').selectOption('off');
  await page.getByRole('button', { name: 'Save schedule' }).click();
  await page.locator('#backup-schedule-status').getByText('Automatic backups are off.').waitFor();
  assert.equal(berthOk(['site', 'show', 'keep']).backups.every, 'off');

  // Another user gets nothing of it.
  const bobContext = await browser.newContext();
  const bobPage = await signIn(bobContext, 'bob');
  assert.equal((await fetchFrom(bobPage, '/api/v1/sites/keep/archives')).status, 404);
  await bobContext.close();

  // An admin sets the disk limits from the same card; a bad value is explained beside its field.
  const bossContext = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const boss = await signIn(bossContext, 'boss');
  await boss.goto(panelUrl() + '#/site/keep');
  await boss.getByLabel('Disk write limit').fill('20M');
  await boss.getByRole('button', { name: 'Save settings' }).click();
  await boss.locator('#status').getByText('Settings saved.').waitFor();
  assert.equal(berthOk(['site', 'show', 'keep']).limits.io_write_bps, 20 * 1024 * 1024);
  await waitFor(async () => (await boss.getByLabel('Disk write limit').inputValue()) === '20M', 'the field to show 20M');
  await boss.getByLabel('Disk read limit').fill('fast');
  await boss.getByRole('button', { name: 'Save settings' }).click();
  await boss.locator('#set-io-read-error').getByText(/invalid io_read limit/).waitFor();
  assert.equal(berthOk(['site', 'show', 'keep']).limits.io_read_bps, 0);
  await bossContext.close();
  await context.close();
});

test('SFTP access: how to connect, add a key, a bad one explained, remove it', async () => {
  berthOk(['site', 'create', 'files', '--owner', 'alice']);
  const keyDir = fs.mkdtempSync(path.join(root, 'key-'));
  const gen = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'alice@laptop', '-f', path.join(keyDir, 'id')]);
  assert.equal(gen.status, 0, String(gen.stderr));
  const pub = fs.readFileSync(path.join(keyDir, 'id.pub'), 'utf8').trim();
  const fp = spawnSync('ssh-keygen', ['-l', '-f', path.join(keyDir, 'id.pub')], { encoding: 'utf8' }).stdout.split(' ')[1];
  const sshPort = berthOk(['status']).listeners.find((l) => l.kind === 'ssh').address.split(':').pop();

  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await signIn(context, 'alice');
  await page.goto(panelUrl() + '#/site/files');
  await page.getByRole('heading', { name: 'SFTP access' }).waitFor();
  const box = page.locator('#site-sftp');
  await box.getByText(sshPort, { exact: true }).waitFor();
  await box.getByText('files', { exact: true }).waitFor();
  await box.getByText('No keys yet: add the contents of your .pub file.').waitFor();

  // Not a key: the API's sentence beside the field, nothing added.
  await page.getByLabel('Public key to add').fill('ssh-dss AAAAB3NzaC1kc3M= old');
  await page.getByRole('button', { name: 'Add key' }).click();
  await page.locator('#key-new-error').waitFor();
  assert.notEqual((await page.locator('#key-new-error').textContent()).trim(), '');
  assert.equal(berthOk(['site', 'key', 'ls', 'files']).keys.length, 0);

  await page.getByLabel('Public key to add').fill(pub);
  await page.getByRole('button', { name: 'Add key' }).click();
  await page.locator('#key-list').getByText(fp, { exact: true }).waitFor();
  const [key] = berthOk(['site', 'key', 'ls', 'files']).keys;
  assert.equal(key.fingerprint, fp);
  await shot(page, '30-sftp-key-added');

  await page.getByRole('button', { name: 'Remove key alice@laptop' }).click();
  await page.locator('#status').getByText(`Removed the key ${fp}; its open sessions were ended.`).waitFor();
  await box.getByText('No keys yet: add the contents of your .pub file.').waitFor();
  assert.equal(berthOk(['site', 'key', 'ls', 'files']).keys.length, 0);
  await context.close();
});
