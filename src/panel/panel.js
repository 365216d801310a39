// berth panel: a small single-page app over berthd's JSON API (/api/v1/). Pages are
// chosen by the URL's hash (#/sites, #/site/NAME, ...). Everything a user typed or the
// API returned is put on the page as text (textContent), never as HTML, and the
// Content-Security-Policy forbids inline scripts besides.
'use strict';

const state = { user: null, admin: false, csrf: null, base: '' };
const $ = (sel) => document.querySelector(sel);

// h('tag.class', {attr: value, onclick: fn}, children...): builds an element.
function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split('.');
  const el = document.createElement(tag);
  if (classes.length) el.className = classes.join(' ');
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

class ApiError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: 'same-origin' };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  if (method !== 'GET' && state.csrf) opts.headers['X-CSRF-Token'] = state.csrf;
  let r;
  try {
    r = await fetch('/api/v1/' + path, opts);
  } catch (e) {
    throw new ApiError(0, 'berth cannot be reached: check your connection and try again');
  }
  let data = null;
  try { data = await r.json(); } catch (e) { /* not JSON: the message below says so */ }
  if (r.status === 401 && path !== 'login' && state.user) {
    state.user = null;
    announce('Your session has ended: sign in again.');
    location.hash = '#/login';
  }
  if (!r.ok) {
    const msg = data && data.error && data.error.message ? data.error.message : `the server answered ${r.status}`;
    throw new ApiError(r.status, msg, r.headers.get('Retry-After'));
  }
  return data;
}

function announce(text) {
  const s = $('#status');
  s.textContent = '';
  // A fresh text node, so screen readers announce a repeated message too.
  setTimeout(() => { s.textContent = text; }, 30);
}

function fmtBytes(n) {
  if (n === null || n === undefined) return null;
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n < 10 && i ? n.toFixed(1) : Math.round(n)} ${u[i]}`;
}

function fmtTime(unix) {
  return unix ? new Date(unix * 1000).toLocaleString() : 'never';
}

// A page: clears main, sets the title, focuses the heading so that keyboard and
// screen-reader users start at the top of what changed.
function page(title, ...content) {
  stopRefresh();
  const main = $('#main');
  const h1 = h('h1', { tabindex: '-1' }, title);
  main.replaceChildren(h1, ...content.filter((c) => c !== null && c !== undefined));
  document.title = `${title} · berth`;
  h1.focus();
  for (const a of document.querySelectorAll('nav a')) {
    if (a.getAttribute('href') === location.hash) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

// A labelled field with its hint and its error line, tied together by ids.
function field(id, label, input, hint) {
  input.id = id;
  const err = h('p.error', { id: id + '-error', 'aria-live': 'polite' });
  const described = [id + '-error'];
  let hintEl = null;
  if (hint) {
    hintEl = h('p.hint', { id: id + '-hint' }, hint);
    described.unshift(id + '-hint');
  }
  input.setAttribute('aria-describedby', described.join(' '));
  return h('div.field', {}, h('label', { for: id }, label), input, hintEl, err);
}

function setError(id, message) {
  const input = document.getElementById(id);
  const err = document.getElementById(id + '-error');
  if (err) err.textContent = message || '';
  if (input) {
    if (message) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }
}

function formError(form, message) {
  let el = form.querySelector('.form-error');
  if (!el) {
    el = h('p.error.form-error', { role: 'alert' });
    form.prepend(el);
  }
  el.textContent = message || '';
}

// Runs a request with the button that sent it disabled until the answer is in, so
// that a double click or a second Enter does not send it twice.
async function busy(button, fn) {
  if (!button || button.disabled) return;
  button.disabled = true;
  try {
    await fn();
  } finally {
    button.disabled = false;
  }
}

function stateBadge(site) {
  const s = site.state || 'unknown';
  return h('span.badge.' + s, {}, s);
}

const known = (v) => v !== null && v !== undefined;

// The figures the API has for a site; whatever is missing is left out.
function figures(site) {
  const items = [];
  const usage = site.runtime && site.runtime.usage;
  if (usage) {
    if (known(usage.cpu_seconds)) items.push(['CPU', `${usage.cpu_seconds.toFixed(1)} s`, 'cpu']);
    if (known(usage.memory_current)) items.push(['Memory', fmtBytes(usage.memory_current), 'memory']);
    if (known(usage.processes)) items.push(['Processes', usage.processes, 'processes']);
  } else if (site.runtime) {
    items.push(['CPU', '–', 'cpu'], ['Memory', '–', 'memory']);
  }
  const req = site.requests;
  if (req && known(req.last_hour)) items.push(['Requests (last hour)', req.last_hour, 'requests']);
  if (!items.length) return h('p.meta', {}, 'No usage figures yet.');
  return h('ul.figures', {}, items.map(([k, v, cls]) => h('li.fig-' + cls, {}, `${k}: `, h('b', {}, String(v)))));
}

// ---- the last hour as a chart (inline SVG, no library) ----

const SVG_NS = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (known(v)) el.setAttribute(k, String(v));
  for (const c of children) if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function fmtClock(unix) {
  return new Date(unix * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

// Requests per minute as bars (left scale), memory as a line (right scale). The
// figures are also said in words (the SVG's title and a summary) and listed in a
// table that only screen readers see.
function statsChart(stats) {
  const mins = stats.minutes || [];
  const W = 600, H = 180, L = 44, R = 64, T = 12, B = 24;
  const pw = W - L - R, ph = H - T - B;
  const maxReq = Math.max(1, ...mins.map((m) => m.requests));
  const mems = mins.filter((m) => known(m.memory)).map((m) => m.memory);
  const maxMem = Math.max(1, ...mems);
  const total = mins.reduce((a, m) => a + m.requests, 0);
  const errors = mins.reduce((a, m) => a + m.errors, 0);
  const busiest = mins.reduce((b, m) => (m.requests > (b ? b.requests : 0) ? m : b), null);
  const slot = pw / Math.max(1, mins.length);
  let summary = `Last hour: ${total} request${total === 1 ? '' : 's'}, ${errors} server error${errors === 1 ? '' : 's'}`;
  if (busiest) summary += `; busiest minute ${fmtClock(busiest.time)} with ${busiest.requests}`;
  summary += mems.length ? `; memory up to ${fmtBytes(maxMem)}.` : '; no memory figures (the site ran no code).';

  const titleId = 'chart-title', descId = 'chart-desc';
  const chart = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': `${titleId} ${descId}`,
    'data-total': total },
  svg('title', { id: titleId }, 'Requests and memory over the last hour'),
  svg('desc', { id: descId }, summary));
  // Axes and labels.
  chart.append(svg('line', { class: 'axis', x1: L, y1: T + ph, x2: L + pw, y2: T + ph }));
  chart.append(svg('text', { class: 'label', x: L - 4, y: T + 10, 'text-anchor': 'end' }, String(maxReq)));
  chart.append(svg('text', { class: 'label', x: L - 4, y: T + ph, 'text-anchor': 'end' }, '0'));
  if (mems.length) chart.append(svg('text', { class: 'label mem', x: L + pw + 4, y: T + 10 }, fmtBytes(maxMem)));
  if (mins.length) {
    chart.append(svg('text', { class: 'label', x: L, y: H - 6 }, fmtClock(mins[0].time)));
    chart.append(svg('text', { class: 'label', x: L + pw, y: H - 6, 'text-anchor': 'end' }, 'now'));
  }
  mins.forEach((m, i) => {
    if (!m.requests) return;
    const bh = Math.max(1, (m.requests / maxReq) * ph);
    chart.append(svg('rect', { class: m.errors ? 'bar has-errors' : 'bar', x: (L + i * slot + 1).toFixed(1), y: (T + ph - bh).toFixed(1),
      width: Math.max(1, slot - 2).toFixed(1), height: bh.toFixed(1), 'data-requests': m.requests },
    svg('title', {}, `${fmtClock(m.time)}: ${m.requests} requests`)));
  });
  const pts = [];
  mins.forEach((m, i) => {
    if (known(m.memory)) pts.push(`${(L + i * slot + slot / 2).toFixed(1)},${(T + ph - (m.memory / maxMem) * ph).toFixed(1)}`);
  });
  if (pts.length > 1) chart.append(svg('polyline', { class: 'memory', points: pts.join(' ') }));
  for (const p of pts) {
    const [x, y] = p.split(',');
    chart.append(svg('circle', { class: 'memory-point', cx: x, cy: y, r: 2.5 }));
  }

  const rows = mins.filter((m) => m.requests || known(m.memory)).map((m) => h('tr', {},
    h('th', { scope: 'row' }, fmtClock(m.time)), h('td', {}, String(m.requests)), h('td', {}, String(m.errors)),
    h('td', {}, known(m.memory) ? fmtBytes(m.memory) : '–'), h('td', {}, `${m.cpu_seconds.toFixed(2)} s`)));
  // Hidden through a wrapper: a table keeps its content's width whatever its own.
  const table = h('div.visually-hidden', {}, h('table', {},
    h('caption', {}, 'Minutes of the last hour with requests or memory figures'),
    h('thead', {}, h('tr', {}, ['Minute', 'Requests', 'Server errors', 'Memory', 'CPU'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows)));
  const legend = h('p.legend', { 'aria-hidden': 'true' },
    h('span.key.key-requests', {}), 'requests per minute ', h('span.key.key-memory', {}), 'memory');
  return h('div.chart-box', {}, chart, legend, h('p.chart-summary', { id: 'chart-summary' }, summary), table);
}

// One timer for whatever the current page refreshes; page() stops it.
let refreshTimer = null;
function stopRefresh() {
  if (refreshTimer) clearInterval(refreshTimer);
  refreshTimer = null;
}

async function loadStats(name, box) {
  try {
    const stats = await api('GET', `sites/${encodeURIComponent(name)}/stats`);
    box.replaceChildren(statsChart(stats));
    box.removeAttribute('aria-busy');
  } catch (e) {
    box.replaceChildren(h('p.error', {}, `Cannot read the figures: ${e.message}`));
  }
}

async function siteAction(name, action, after) {
  try {
    await api('POST', `sites/${encodeURIComponent(name)}/${action}`);
    announce(`${name}: ${action === 'stop' ? 'stopped' : action === 'start' ? 'started' : 'restarted'}.`);
    if (after) await after();
  } catch (e) {
    announce(`Cannot ${action} ${name}: ${e.message}`);
  }
}

function actionButtons(site, after) {
  const stopped = site.desired_state === 'stopped';
  return h('div.actions', {},
    h('button', { type: 'button', disabled: !stopped, onclick: (ev) => busy(ev.currentTarget, () => siteAction(site.name, 'start', after)),
      'aria-label': `Start ${site.name}` }, 'Start'),
    h('button.secondary', { type: 'button', disabled: stopped, onclick: (ev) => busy(ev.currentTarget, () => siteAction(site.name, 'stop', after)),
      'aria-label': `Stop ${site.name}` }, 'Stop'),
    h('button.secondary', { type: 'button', onclick: (ev) => busy(ev.currentTarget, () => siteAction(site.name, 'restart', after)),
      'aria-label': `Restart ${site.name}` }, 'Restart'));
}

function siteLinks(site) {
  const urls = site.urls || [];
  if (!urls.length) return h('p.meta', {}, site.host);
  return h('p.meta', {}, urls.map((u, i) => [i ? ' · ' : '', h('a', { href: u, rel: 'noopener' }, u)]));
}

// ---- pages ----

async function showLogin() {
  $('#nav').hidden = true;
  const form = h('form.stack', { novalidate: true },
    field('login-name', 'User name', h('input', { type: 'text', name: 'name', autocomplete: 'username', required: true })),
    field('login-password', 'Password', h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true })),
    h('div.actions', {}, h('button', { type: 'submit' }, 'Sign in')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    formError(form, '');
    const name = form.elements.name.value.trim(), password = form.elements.password.value;
    setError('login-name', name ? '' : 'Type your user name.');
    setError('login-password', password ? '' : 'Type your password.');
    if (!name || !password) return;
    const button = form.querySelector('button');
    button.disabled = true;
    try {
      const me = await api('POST', 'login', { name, password });
      Object.assign(state, { user: me.user, admin: me.admin, csrf: me.csrf, base: me.base_domain });
      location.hash = '#/sites';
    } catch (e) {
      formError(form, e.status === 429 ? `Too many failed attempts. Try again in ${e.retryAfter || 'a few'} seconds.`
        : e.status === 401 ? 'Wrong user name or password.' : e.message);
      form.elements.password.value = '';
      form.elements.password.focus();
    } finally {
      button.disabled = false;
    }
  });
  page('Sign in', h('div.card', {}, form));
  form.elements.name.focus();
}

async function showSites() {
  const data = await api('GET', 'sites');
  const sites = data.sites || [];
  const list = sites.length ? h('div.grid', {}, sites.map((s) => h('section.card.site', { 'aria-labelledby': `site-${s.name}` },
    h('h2', { id: `site-${s.name}` }, h('a', { href: `#/site/${encodeURIComponent(s.name)}` }, s.name), stateBadge(s)),
    siteLinks(s),
    h('p.meta', {}, `${s.type} site`, state.admin ? ` · owner: ${s.owner || 'none'}` : ''),
    figures(s),
    actionButtons(s, showSites))))
    : h('p', {}, 'You have no sites yet. ', h('a', { href: '#/new' }, 'Create your first site.'));
  page(state.admin ? 'All sites' : 'My sites', h('p', {}, h('a.button', { href: '#/new' }, 'Create a site')), list);
}

const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

function nameProblem(name) {
  if (!name) return 'Give the site a name.';
  if (name.length > 63) return 'The name is too long: use at most 63 characters.';
  if (/[A-Z]/.test(name)) return 'Use lowercase letters only.';
  if (!/^[a-z0-9-]+$/.test(name)) return 'Use only lowercase letters, digits and hyphens (-).';
  if (!NAME_RE.test(name)) return 'The name cannot start or end with a hyphen.';
  return '';
}

// Which field an API error is about, from its wording.
function fieldOf(message) {
  const m = message.toLowerCase();
  if (m.includes('domain')) return 'new-domains';
  if (m.includes('command') || m.includes('cmd')) return 'new-cmd';
  if (m.includes('type')) return 'new-type';
  if (m.includes('name') || m.includes('site named') || m.includes('reserved')) return 'new-name';
  return null;
}

function showNew() {
  const address = h('span.address', { id: 'new-address' });
  const nameInput = h('input', { type: 'text', name: 'name', autocomplete: 'off', spellcheck: 'false', required: true, maxlength: '63' });
  const typeSelect = h('select', { name: 'type' },
    h('option', { value: 'static' }, 'Static files (HTML, CSS, images)'),
    h('option', { value: 'php' }, 'PHP'),
    h('option', { value: 'app' }, 'A program that speaks HTTP (app)'));
  const cmdField = field('new-cmd', 'Command', h('input', { type: 'text', name: 'cmd', autocomplete: 'off' }),
    'The program to run, e.g. "python3 app.py". It gets its socket as file descriptor 3.');
  cmdField.hidden = true;
  typeSelect.addEventListener('change', () => { cmdField.hidden = typeSelect.value !== 'app'; });
  const form = h('form.stack', { novalidate: true },
    field('new-name', 'Name', nameInput, h('span', {}, 'Its address will be ', address)),
    field('new-type', 'Type', typeSelect),
    cmdField,
    field('new-domains', 'Extra domains (optional)', h('textarea', { name: 'domains', rows: '3', spellcheck: 'false' }),
      'One per line, e.g. www.example.org. Point their DNS at this server.'),
    h('div.actions', {}, h('button', { type: 'submit' }, 'Create the site')));
  const update = () => {
    const n = nameInput.value.trim();
    address.textContent = `${n || 'NAME'}.${state.base}`;
    setError('new-name', n ? nameProblem(n) : '');
  };
  nameInput.addEventListener('input', update);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    for (const id of ['new-name', 'new-type', 'new-cmd', 'new-domains']) setError(id, '');
    formError(form, '');
    const name = nameInput.value.trim();
    const problem = nameProblem(name);
    if (problem) {
      setError('new-name', problem);
      nameInput.focus();
      return;
    }
    const body = { name, type: typeSelect.value };
    const domains = form.elements.domains.value.split(/[\s,]+/).filter(Boolean);
    if (domains.length) body.domains = domains;
    if (body.type === 'app') body.cmd = form.elements.cmd.value.trim();
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      await api('POST', 'sites', body);
      announce(`Created ${name}.`);
      location.hash = `#/site/${encodeURIComponent(name)}`;
    } catch (e) {
      const id = fieldOf(e.message);
      if (id) {
        setError(id, e.message);
        document.getElementById(id).focus();
      } else {
        formError(form, e.message);
      }
    } finally {
      button.disabled = false;
    }
  });
  page('Create a site', h('div.card', {}, form));
  update();
  nameInput.focus();
}

function uploadForm(site) {
  const progress = h('progress', { id: 'upload-progress', max: '100', value: '0', hidden: true, 'aria-label': 'Upload progress' });
  const result = h('p', { id: 'upload-result', 'aria-live': 'polite' });
  const form = h('form.stack', { novalidate: true },
    field('upload-file', 'Archive (zip or tar)', h('input', { type: 'file', name: 'file', accept: '.zip,.tar,.tgz,.tar.gz,.tar.zst,.tar.xz' }),
      'It replaces the whole public/ folder at once; a single top folder is unwrapped.'),
    progress, result,
    h('div.actions', {}, h('button', { type: 'submit' }, 'Upload')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    setError('upload-file', '');
    const file = form.elements.file.files[0];
    if (!file) {
      setError('upload-file', 'Choose a zip or tar file first.');
      form.elements.file.focus();
      return;
    }
    const button = form.querySelector('button');
    button.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    result.textContent = 'Uploading…';
    // XMLHttpRequest rather than fetch: only it reports upload progress.
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', `/api/v1/sites/${encodeURIComponent(site.name)}/content`);
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.setRequestHeader('X-CSRF-Token', state.csrf || '');
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) progress.value = Math.round((e.loaded / e.total) * 100);
    });
    xhr.addEventListener('loadend', () => {
      button.disabled = false;
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) {
        progress.value = 100;
        const files = data && (data.files ?? (data.stats && data.stats.files));
        result.textContent = `Uploaded: the site now serves the new content${files !== undefined ? ` (${files} files)` : ''}.`;
        announce(`Uploaded ${file.name} to ${site.name}.`);
      } else {
        const msg = data && data.error ? data.error.message : xhr.status ? `the server answered ${xhr.status}` : 'the upload was interrupted';
        result.textContent = '';
        setError('upload-file', `Not uploaded: ${msg}. The old content is still served.`);
      }
    });
    xhr.send(file);
  });
  return form;
}

async function loadLog(name, kind, pre) {
  try {
    const data = await api('GET', `sites/${encodeURIComponent(name)}/logs?kind=${kind}&lines=50`);
    pre.textContent = data.lines.length ? data.lines.join('\n') : `The ${kind} log is empty.`;
  } catch (e) {
    pre.textContent = `Cannot read the ${kind} log: ${e.message}`;
  }
}

function settingsForm(site, reload) {
  const l = site.limits || {};
  const form = h('form.stack', { novalidate: true },
    field('set-memory', 'Memory limit', h('input', { type: 'text', name: 'memory', value: l.memory || '' }), 'Such as 256M or 1G, or "unlimited".'),
    field('set-cpu', 'CPU limit', h('input', { type: 'text', name: 'cpu', value: l.cpu || '' }), 'Number of CPUs, such as 0.5 or 2, or "unlimited".'),
    field('set-pids', 'Process limit', h('input', { type: 'number', name: 'pids', min: '0', value: String(l.pids ?? '') })),
    // Disk bandwidth is shared by every site: only an admin sets it (the API says so too).
    state.admin ? [
      field('set-io-read', 'Disk read limit', h('input', { type: 'text', name: 'io_read', value: (l.io_read || '').replace(/\/s$/, '') }), 'Per second, such as 50M, or "unlimited".'),
      field('set-io-write', 'Disk write limit', h('input', { type: 'text', name: 'io_write', value: (l.io_write || '').replace(/\/s$/, '') }), 'Per second, such as 20M, or "unlimited".'),
    ] : h('p', { id: 'set-io' }, `Disk: read ${l.io_read || 'unlimited'}, write ${l.io_write || 'unlimited'} (set by an admin).`),
    field('set-idle', 'Stop after idle (seconds)', h('input', { type: 'number', name: 'idle', min: '0', value: String(site.idle_seconds ?? '') })),
    h('div.field', {}, h('label.check', {}, h('input', { type: 'checkbox', name: 'always_on', checked: site.always_on }), 'Always on (never stopped when idle)')),
    h('div.actions', {}, h('button', { type: 'submit' }, 'Save settings')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    formError(form, '');
    const f = form.elements;
    const body = { memory: f.memory.value.trim(), cpu: f.cpu.value.trim(), always_on: f.always_on.checked };
    if (f.pids.value !== '') body.pids = Number(f.pids.value);
    if (f.idle.value !== '') body.idle_seconds = Number(f.idle.value);
    for (const k of ['io_read', 'io_write']) {
      if (f[k] && f[k].value.trim() !== (l[k] || '').replace(/\/s$/, '')) body[k] = f[k].value.trim();
    }
    await busy(form.querySelector('button[type=submit]'), async () => {
      try {
        await api('PATCH', `sites/${encodeURIComponent(site.name)}`, body);
        announce('Settings saved.');
        await reload();
      } catch (e) {
        const m = e.message.toLowerCase();
        const id = m.includes('memory') ? 'set-memory' : m.includes('cpu') ? 'set-cpu' : m.includes('pids') ? 'set-pids'
          : m.includes('io_read') ? 'set-io-read' : m.includes('io_write') || m.includes('disk') ? 'set-io-write'
          : m.includes('idle') ? 'set-idle' : null;
        if (id) setError(id, e.message); else formError(form, e.message);
      }
    });
  });
  return form;
}

// ---- PHP settings (type php sites) ----

// The keys an owner may change (GET php/settings), each with its current override
// (site.php) or its default. An empty field means "the default"; Reset removes the
// override at once. An error names its key: it is shown beside that field.
function phpSection(site, reload) {
  const body = h('div', { id: 'php-settings' }, 'Loading…');
  const section = h('section.card', { 'aria-labelledby': 'h-php' }, h('h2', { id: 'h-php' }, 'PHP settings'), body);
  loadPhp(site, body, reload);
  return section;
}

const phpId = (key) => 'php-' + key.replace(/[^a-zA-Z0-9_-]/g, '-');

function phpKeyOf(message, keys) {
  // The longest key named in the message, quoted or not ("upload_max_filesize" also
  // holds no shorter key, but "post_max_size" and "max_size" could).
  let best = null;
  for (const k of keys) if (message.includes(k) && (!best || k.length > best.length)) best = k;
  return best;
}

async function savePhp(site, changes, keys, form, reload) {
  formError(form, '');
  for (const k of keys) setError(phpId(k), '');
  try {
    await api('PATCH', `sites/${encodeURIComponent(site.name)}`, { php: changes });
    announce('PHP settings saved.');
    await reload();
    const h2 = document.getElementById('h-php');
    if (h2) h2.scrollIntoView({ block: 'nearest' });
  } catch (e) {
    const key = phpKeyOf(e.message, keys);
    if (key) {
      setError(phpId(key), e.message);
      document.getElementById(phpId(key)).focus();
    } else {
      formError(form, e.message);
    }
  }
}

async function loadPhp(site, box, reload) {
  let list;
  try {
    const data = await api('GET', 'php/settings');
    list = Array.isArray(data) ? data : (data && data.settings) || [];
  } catch (e) {
    box.replaceChildren(h('p.meta', {}, `PHP settings cannot be changed here: ${e.message}`));
    return;
  }
  const current = site.php || {};
  const keys = list.map((s) => s.key);
  const form = h('form', { novalidate: true, id: 'php-form' });
  const rows = list.map((s) => {
    const id = phpId(s.key);
    const overridden = Object.prototype.hasOwnProperty.call(current, s.key);
    const input = h('input', { type: 'text', id, name: s.key, value: overridden ? current[s.key] : '', placeholder: s.default,
      autocomplete: 'off', spellcheck: 'false', 'aria-describedby': `${id}-help ${id}-error` });
    return h('tr', { 'data-key': s.key },
      h('th', { scope: 'row' }, h('label', { for: id }, s.key),
        h('p.hint', { id: `${id}-help` }, [s.help, s.accepts ? `Accepts: ${s.accepts}` : null].filter(Boolean)
          .map((t) => (/[.!?]$/.test(t) ? t : t + '.')).join(' '))),
      h('td.hide-narrow', {}, h('span.php-default', {}, s.default)),
      h('td', {}, input, h('p.error', { id: `${id}-error`, 'aria-live': 'polite' }),
        overridden ? h('button.secondary.php-reset', { type: 'button', 'aria-label': `Reset ${s.key} to its default, ${s.default}`,
          onclick: (ev) => busy(ev.currentTarget, () => savePhp(site, { [s.key]: null }, keys, form, reload)) }, 'Reset to default') : null));
  });
  form.append(
    h('p.hint', {}, 'Leave a field empty to use the default.'),
    h('div.table-wrap', {}, h('table.php', {},
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Setting'), h('th.hide-narrow', { scope: 'col' }, 'Default'),
        h('th', { scope: 'col' }, 'Value'))),
      h('tbody', {}, rows))),
    h('div.actions', {}, h('button', { type: 'submit' }, 'Save PHP settings')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const changes = {};
    for (const k of keys) {
      const v = form.elements[k].value.trim();
      const had = Object.prototype.hasOwnProperty.call(current, k);
      if (v === '' && had) changes[k] = null;
      else if (v !== '' && (!had || current[k] !== v)) changes[k] = v;
    }
    if (!Object.keys(changes).length) {
      announce('Nothing to save: no PHP setting was changed.');
      return;
    }
    busy(form.querySelector('button[type=submit]'), () => savePhp(site, changes, keys, form, reload));
  });
  box.replaceChildren(form);
}

// The site's domains: its own address (which stays) and the extra ones, each with a
// Remove button, and a field to add one. Each change is one PATCH; the page is then
// drawn again from what the API answers.
function domainsSection(site, reload) {
  const url = `sites/${encodeURIComponent(site.name)}`;
  const extra = site.domains || [];
  const list = h('ul.domains', { id: 'domain-list', 'aria-label': `Domains of ${site.name}` },
    h('li', {}, h('span.address', {}, site.host), h('span.meta', {}, 'its own address, which cannot be removed')),
    extra.map((d) => h('li', {}, h('span.address', {}, d),
      h('button.secondary', { type: 'button', 'aria-label': `Remove ${d}`,
        onclick: (ev) => busy(ev.currentTarget, async () => {
          try {
            await api('PATCH', url, { remove_domains: [d] });
            announce(`Removed ${d} from ${site.name}.`);
            await reload();
          } catch (e) {
            announce(`Cannot remove ${d}: ${e.message}`);
          }
        }) }, 'Remove'))));
  const input = h('input', { type: 'text', name: 'domain', autocomplete: 'off', spellcheck: 'false' });
  const form = h('form.stack', { novalidate: true },
    field('domain-new', 'Domain to add', input, 'e.g. www.example.org. Point its DNS at this server.'),
    h('div.actions', {}, h('button', { type: 'submit' }, 'Add domain')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    setError('domain-new', '');
    const d = input.value.trim();
    if (!d) {
      setError('domain-new', 'Type a domain, e.g. www.example.org.');
      input.focus();
      return;
    }
    await busy(form.querySelector('button[type=submit]'), async () => {
      try {
        await api('PATCH', url, { add_domains: [d] });
        announce(`Added ${d} to ${site.name}.`);
        await reload();
      } catch (e) {
        // What was typed stays, to be corrected.
        setError('domain-new', e.message);
        input.focus();
      }
    });
  });
  return [list, form];
}

// SFTP: how to connect (host, port, user, the server's key to check), the site's SSH
// keys with a Remove button each, and a field to add one. Passwords work too: the
// owner's own berth password, which suits FileZilla users.
async function loadSftp(site, box, reload) {
  const url = `sites/${encodeURIComponent(site.name)}/keys`;
  let data;
  try {
    data = await api('GET', url);
  } catch (e) {
    box.replaceChildren(h('p.error', {}, `Cannot load the SSH keys: ${e.message}`));
    box.removeAttribute('aria-busy');
    return;
  }
  const s = data.sftp;
  const how = s
    ? h('dl.sftp', {},
      h('dt', {}, 'Host'), h('dd', {}, h('code', {}, location.hostname.replace(/^panel\./, ''))),
      h('dt', {}, 'Port'), h('dd', {}, h('code', {}, s.port)),
      h('dt', {}, 'User'), h('dd', {}, h('code', {}, s.user)),
      h('dt', {}, 'Password'), h('dd', {}, 'your own berth password, or a key below'),
      h('dt', {}, 'Server key'), h('dd', {}, h('code', {}, s.host_key)))
    : h('p', {}, 'This server does not offer SFTP.');
  const keys = data.keys || [];
  const list = h('ul.keys', { id: 'key-list', 'aria-label': `SSH keys of ${site.name}` },
    keys.length ? null : h('li', {}, h('span.meta', {}, 'No keys yet: add the contents of your .pub file.')),
    keys.map((k) => h('li', {}, h('code.address', {}, k.fingerprint),
      h('span.meta', {}, ` ${k.algorithm}${k.comment ? ' · ' + k.comment : ''} · added ${fmtTime(k.created_at)}`),
      h('button.secondary', { type: 'button', 'aria-label': `Remove key ${k.comment || k.fingerprint}`,
        onclick: (ev) => busy(ev.currentTarget, async () => {
          try {
            await api('DELETE', `${url}/${k.id}`);   // URL-safe already; the API does not decode %3A
            announce(`Removed the key ${k.fingerprint}; its open sessions were ended.`);
            await reload();
          } catch (e) {
            announce(`Cannot remove the key: ${e.message}`);
          }
        }) }, 'Remove'))));
  const input = h('textarea', { name: 'key', rows: '3', spellcheck: 'false', autocomplete: 'off' });
  const form = h('form.stack', { novalidate: true },
    field('key-new', 'Public key to add', input, 'One line such as "ssh-ed25519 AAAA… you@laptop": the contents of ~/.ssh/id_ed25519.pub.'),
    h('div.actions', {}, h('button', { type: 'submit' }, 'Add key')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    setError('key-new', '');
    const key = input.value.trim();
    if (!key) {
      setError('key-new', 'Paste a public key.');
      input.focus();
      return;
    }
    await busy(form.querySelector('button[type=submit]'), async () => {
      try {
        const added = await api('POST', url, { key });
        announce(`Added the key ${added.fingerprint}.`);
        await reload();
      } catch (e) {
        setError('key-new', e.message);
        input.focus();
      }
    });
  });
  box.replaceChildren(how, h('h3', {}, 'SSH keys'), list, form);
  box.removeAttribute('aria-busy');
}

// Automatic backups: how often berthd makes them (UTC), how many it keeps, when
// the next is due and how the last one went. Saving is one PATCH; the answer (the
// site as stored) redraws the status.
function scheduleForm(site) {
  const b = site.backups || { every: 'off', hour: 3, keep: 7, last: null };
  const url = `sites/${encodeURIComponent(site.name)}`;
  const status = h('div', { id: 'backup-schedule-status', 'aria-live': 'polite' });
  const showStatus = (bk) => {
    const lines = [];
    if (bk.every === 'off') lines.push(h('p', {}, 'Automatic backups are off.'));
    else if (bk.running) lines.push(h('p', {}, 'An automatic backup is being made now.'));
    else if (bk.next_due) lines.push(h('p', {}, `Next automatic backup: ${fmtTime(bk.next_due)}.`));
    if (bk.last) {
      lines.push(bk.last.ok
        ? h('p', { id: 'backup-last' }, `Last automatic backup: ${fmtTime(bk.last.at)}, made.`)
        : h('p.error', { id: 'backup-last' }, `Last automatic backup: ${fmtTime(bk.last.at)}, failed: ${bk.last.error}`));
    }
    status.replaceChildren(...lines);
  };
  const every = h('select', { name: 'every' },
    h('option', { value: 'off' }, 'Off'),
    h('option', { value: 'daily' }, 'Every day'),
    h('option', { value: 'weekly' }, 'Every week (Sundays)'));
  every.value = b.every;
  const hour = h('select', { name: 'hour' },
    Array.from({ length: 24 }, (_, i) => h('option', { value: String(i) }, `${String(i).padStart(2, '0')}:00 UTC`)));
  hour.value = String(b.hour);
  const keep = h('input', { type: 'number', name: 'keep', min: '1', max: '1000', value: String(b.keep) });
  const form = h('form.stack', { novalidate: true, 'aria-labelledby': 'h-backup-schedule' },
    h('h3', { id: 'h-backup-schedule' }, 'Schedule'),
    field('backup-every', 'Make a backup', every),
    field('backup-hour', 'At', hour, 'Hours are UTC.'),
    field('backup-keep', 'Automatic backups to keep', keep,
      'The oldest automatic ones beyond this many are removed; backups made by hand are never removed.'),
    h('div.actions', {}, h('button', { type: 'submit' }, 'Save schedule')), status);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    formError(form, '');
    setError('backup-keep', '');
    const n = Number(keep.value);
    if (!Number.isInteger(n) || n < 1 || n > 1000) {
      setError('backup-keep', 'Keep from 1 to 1000 backups.');
      keep.focus();
      return;
    }
    await busy(form.querySelector('button[type=submit]'), async () => {
      try {
        const s = await api('PATCH', url, { backups: { every: every.value, hour: Number(hour.value), keep: n } });
        announce('Backup schedule saved.');
        showStatus(s.backups);
      } catch (e) {
        if (e.message.includes('keep')) setError('backup-keep', e.message); else formError(form, e.message);
      }
    });
  });
  showStatus(b);
  return form;
}

// Backups: the site's snapshots, newest first, each to download, restore or delete,
// and a button that makes one now. Restoring and deleting ask first, in the page
// (window.confirm is a poor fit for screen readers), and say what they change.
function backupsSection(site) {
  const url = `sites/${encodeURIComponent(site.name)}`;
  const box = h('div', { id: 'backup-list' }, 'Loading…');
  const result = h('p', { id: 'backup-result', 'aria-live': 'polite' });
  const say = (text) => { result.textContent = text; announce(text); };

  function confirmRow(cell, question, extra, label, action) {
    const yes = h('button.danger', { type: 'button' }, label);
    const no = h('button.secondary', { type: 'button' }, 'Cancel');
    const old = [...cell.childNodes];
    const restoreCell = () => { cell.replaceChildren(...old); old[0].focus(); };
    no.addEventListener('click', restoreCell);
    yes.addEventListener('click', () => busy(yes, async () => {
      no.disabled = true;
      try { await action(); } finally { no.disabled = false; }
    }));
    cell.replaceChildren(h('div.confirm', { role: 'group', 'aria-label': question },
      h('p', {}, question), extra, h('div.actions', {}, yes, no)));
    yes.focus();
  }

  function row(a) {
    const when = fmtTime(a.created_at);
    const link = h('a', { href: `/api/v1/${url}/archives/${encodeURIComponent(a.name)}`, download: a.name,
      'aria-label': `Download the backup of ${when}` }, 'Download');
    const restore = h('button.secondary', { type: 'button', 'aria-label': `Restore the backup of ${when}` }, 'Restore');
    const del = h('button.secondary', { type: 'button', 'aria-label': `Delete the backup of ${when}` }, 'Delete');
    const cell = h('td', {}, h('div.actions', {}, link, restore, del));
    restore.addEventListener('click', () => {
      const settings = h('input', { type: 'checkbox', id: 'restore-settings' });
      confirmRow(cell, `Replace the site's files (public/ and private/) with the backup of ${when}?`,
        h('p', {}, h('label', { for: 'restore-settings' }, settings, ' Restore its settings too (domains, limits, PHP settings)')),
        'Restore now', async () => {
          result.textContent = 'Restoring…';
          try {
            const r = await api('POST', `${url}/restore`, { snapshot: a.name, settings: settings.checked });
            const files = known(r.files) ? ` (${r.files} files)` : '';
            say(`Restored the backup of ${when}${files}${r.settings ? ', with its settings' : ''}: the site now serves it.`);
          } catch (e) {
            say(`Not restored: ${e.message}. The site keeps its files.`);
          }
          await load();
        });
    });
    del.addEventListener('click', () => {
      confirmRow(cell, `Delete the backup of ${when} for good?`, null, 'Delete now', async () => {
        try {
          await api('DELETE', `${url}/archives/${encodeURIComponent(a.name)}`);
          say(`Deleted the backup of ${when}.`);
        } catch (e) {
          say(`Not deleted: ${e.message}`);
        }
        await load();
      });
    });
    return h('tr', {}, h('td', {}, when), h('td', {}, fmtBytes(a.size)), cell);
  }

  async function load() {
    let data;
    try {
      data = await api('GET', `${url}/archives`);
    } catch (e) {
      box.textContent = `Cannot list the backups: ${e.message}`;
      return;
    }
    if (!data.archives.length) {
      box.replaceChildren(h('p', {}, 'No backups yet.'));
      return;
    }
    box.replaceChildren(h('div.table-wrap', {}, h('table.backups', { 'aria-label': `Backups of ${site.name}` },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Made'), h('th', { scope: 'col' }, 'Size'),
        h('th', { scope: 'col' }, h('span.visually-hidden', {}, 'Actions')))),
      h('tbody', {}, data.archives.map(row)))));
  }

  const make = h('button', { type: 'button' }, 'Make a backup now');
  make.addEventListener('click', () => busy(make, async () => {
    result.textContent = 'Making a backup…';
    try {
      const a = await api('POST', `${url}/archives`, {});
      say(`Made a backup of ${site.name} (${fmtBytes(a.size)}).`);
    } catch (e) {
      say(`No backup made: ${e.message}`);
    }
    await load();
  }));
  load();
  return [h('p.hint', {}, 'A backup holds the site\'s files (public/ and private/) and its settings.'),
    h('div.actions', {}, make), result, box, scheduleForm(site)];
}

function deleteForm(site) {
  const input = h('input', { type: 'text', name: 'confirm', autocomplete: 'off', spellcheck: 'false' });
  const button = h('button.danger', { type: 'submit', disabled: true }, `Delete ${site.name}`);
  input.addEventListener('input', () => { button.disabled = input.value !== site.name; });
  const form = h('form.stack', { novalidate: true },
    field('delete-confirm', `Type ${site.name} to confirm`, input, 'Its files, logs and settings are removed. Its backups stay on the server: an admin can bring the site back from them.'),
    h('div.actions', {}, button));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (input.value !== site.name) return;
    await busy(button, async () => {
      try {
        await api('DELETE', `sites/${encodeURIComponent(site.name)}`);
        announce(`Deleted ${site.name}.`);
        location.hash = '#/sites';
      } catch (e) {
        setError('delete-confirm', e.message);
      }
    });
  });
  return form;
}

async function showSite(name) {
  let site;
  try {
    site = await api('GET', `sites/${encodeURIComponent(name)}`);
  } catch (e) {
    page('Site not found', h('p', {}, e.status === 404 ? `There is no site named ${name} that you can see.` : e.message),
      h('p', {}, h('a', { href: '#/sites' }, 'Back to your sites')));
    return;
  }
  const reload = () => showSite(name);
  const chartBox = h('div', { id: 'site-chart', 'aria-busy': 'true', 'aria-live': 'off' }, 'Loading…');
  const php = site.type === 'php' ? phpSection(site, reload) : null;
  const access = h('pre.log', { id: 'log-access', tabindex: '0', 'aria-label': 'Access log' }, 'Loading…');
  const error = h('pre.log', { id: 'log-error', tabindex: '0', 'aria-label': 'Error log' }, 'Loading…');
  const sftpBox = h('div', { id: 'site-sftp', 'aria-busy': 'true' }, 'Loading…');
  page(site.name,
    h('div.card', {},
      h('p', {}, stateBadge(site), ` ${site.type} site`, site.owner ? ` · owner: ${site.owner}` : ''),
      siteLinks(site),
      h('div', { id: 'site-figures' }, figures(site)),
      site.runtime && site.runtime.error ? h('p.error', {}, site.runtime.error) : null,
      actionButtons(site, reload)),
    h('section.card', { 'aria-labelledby': 'h-chart' }, h('h2', { id: 'h-chart' }, 'Requests and memory, last hour'), chartBox),
    h('section.card', { 'aria-labelledby': 'h-domains' }, h('h2', { id: 'h-domains' }, 'Domains'), domainsSection(site, reload)),
    h('section.card', { 'aria-labelledby': 'h-upload' }, h('h2', { id: 'h-upload' }, 'Upload content'), uploadForm(site)),
    h('section.card', { 'aria-labelledby': 'h-sftp' }, h('h2', { id: 'h-sftp' }, 'SFTP access'), sftpBox),
    h('section.card', { 'aria-labelledby': 'h-logs' }, h('h2', { id: 'h-logs' }, 'Logs'),
      h('h3', {}, 'Access log (last 50 lines)'), access,
      h('h3', {}, 'Error log (last 50 lines)'), error,
      h('div.actions', {}, h('button.secondary', { type: 'button', onclick: () => { loadLog(name, 'access', access); loadLog(name, 'error', error); } }, 'Refresh logs'))),
    h('section.card', { 'aria-labelledby': 'h-settings' }, h('h2', { id: 'h-settings' }, 'Settings'), settingsForm(site, reload)),
    php,
    h('section.card', { 'aria-labelledby': 'h-backups' }, h('h2', { id: 'h-backups' }, 'Backups'), backupsSection(site)),
    h('section.card', { 'aria-labelledby': 'h-delete' }, h('h2', { id: 'h-delete' }, 'Delete this site'), deleteForm(site)));
  loadLog(name, 'access', access);
  loadLog(name, 'error', error);
  loadStats(name, chartBox);
  loadSftp(site, sftpBox, reload);
  // Every 10 s: the chart and the figures of the card, not the forms (which may be
  // half-filled) nor the page's focus.
  refreshTimer = setInterval(async () => {
    loadStats(name, chartBox);
    try {
      const fresh = await api('GET', `sites/${encodeURIComponent(name)}`);
      const old = document.querySelector('#site-figures');
      if (old) old.replaceChildren(figures(fresh));
    } catch (e) { /* the next round tries again */ }
  }, 10000);
}

async function showAccount() {
  const pw = h('form.stack', { novalidate: true },
    field('pw-current', 'Current password', h('input', { type: 'password', name: 'current', autocomplete: 'current-password' })),
    field('pw-new', 'New password', h('input', { type: 'password', name: 'new', autocomplete: 'new-password' }), 'At least 8 characters.'),
    h('div.actions', {}, h('button', { type: 'submit' }, 'Change password')));
  pw.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    setError('pw-current', '');
    setError('pw-new', '');
    await busy(pw.querySelector('button[type=submit]'), async () => {
      try {
        await api('PUT', 'me/password', { current: pw.elements.current.value, new: pw.elements.new.value });
        pw.reset();
        announce('Password changed. Your other sessions were signed out.');
      } catch (e) {
        setError(e.message.includes('current') ? 'pw-current' : 'pw-new', e.message);
      }
    });
  });

  const tokens = (await api('GET', 'tokens')).tokens || [];
  const shown = h('div', { 'aria-live': 'polite' });
  const create = h('form.stack', { novalidate: true },
    field('token-name', 'Token name', h('input', { type: 'text', name: 'name', autocomplete: 'off' }), 'What it is for, e.g. "deploy from CI".'),
    h('div.actions', {}, h('button', { type: 'submit' }, 'Create a token')));
  create.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    setError('token-name', '');
    await busy(create.querySelector('button[type=submit]'), async () => {
      try {
        const t = await api('POST', 'tokens', { name: create.elements.name.value.trim() });
        await showAccount();
        const box = document.getElementById('token-shown');
        box.replaceChildren(h('p', {}, 'Copy this token now: it is shown only once.'), h('p.secret', { tabindex: '0' }, t.token));
        box.querySelector('.secret').focus();
      } catch (e) {
        setError('token-name', e.message);
      }
    });
  });
  shown.id = 'token-shown';
  const rows = tokens.map((t) => h('tr', {},
    h('td', {}, t.name), h('td.hide-narrow', {}, fmtTime(t.created_at)), h('td.hide-narrow', {}, fmtTime(t.last_used)),
    h('td', {}, t.revoked ? 'revoked' : h('button.secondary', { type: 'button', 'aria-label': `Revoke token ${t.name}`,
      onclick: (ev) => busy(ev.currentTarget, async () => {
        try { await api('DELETE', `tokens/${t.id}`); announce(`Revoked ${t.name}.`); await showAccount(); } catch (e) { announce(e.message); }
      }) }, 'Revoke'))));
  page('Account',
    h('section.card', { 'aria-labelledby': 'h-pw' }, h('h2', { id: 'h-pw' }, 'Password'), pw),
    h('section.card', { 'aria-labelledby': 'h-tokens' }, h('h2', { id: 'h-tokens' }, 'API tokens'),
      h('p.hint', {}, 'Scripts send a token as "Authorization: Bearer TOKEN".'),
      shown,
      tokens.length ? h('div.table-wrap', {}, h('table', {}, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'),
        h('th.hide-narrow', { scope: 'col' }, 'Created'), h('th.hide-narrow', { scope: 'col' }, 'Last used'), h('th', { scope: 'col' }, 'State'))),
      h('tbody', {}, rows))) : h('p', {}, 'No tokens yet.'),
      create));
}

async function showAdmin() {
  if (!state.admin) {
    page('Admin', h('p', {}, 'Only an admin can see this page.'));
    return;
  }
  const [sites, users, events] = await Promise.all([api('GET', 'sites'), api('GET', 'users'), api('GET', 'events?limit=50')]);
  const mem = (s) => {
    const u = s.runtime && s.runtime.usage;
    return u && known(u.memory_current) ? fmtBytes(u.memory_current) : '–';
  };
  const cpu = (s) => {
    const u = s.runtime && s.runtime.usage;
    return u && known(u.cpu_seconds) ? `${u.cpu_seconds.toFixed(1)} s` : '–';
  };
  const reqs = (s) => (s.requests && known(s.requests.last_hour) ? String(s.requests.last_hour) : '–');
  const siteTable = h('div.table-wrap', {}, h('table', { id: 'admin-sites' },
    h('thead', {}, h('tr', {}, ['Site', 'Owner', 'State', 'CPU', 'Memory', 'Requests (last hour)'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, (sites.sites || []).map((s) => h('tr', {},
      h('td', {}, h('a', { href: `#/site/${encodeURIComponent(s.name)}` }, s.name)), h('td', {}, s.owner || 'none'),
      h('td', {}, stateBadge(s)), h('td', {}, cpu(s)), h('td', {}, mem(s)), h('td', {}, reqs(s)))))));

  const userRows = (users.users || []).map((u) => h('tr', {},
    h('td', {}, u.name), h('td', {}, u.admin ? 'admin' : 'user'), h('td', {}, u.disabled ? 'disabled' : 'active'),
    h('td', {}, h('div.actions', {},
      u.name === state.user ? null : h('button.secondary', { type: 'button', 'aria-label': `${u.disabled ? 'Enable' : 'Disable'} ${u.name}`,
        onclick: (ev) => busy(ev.currentTarget, async () => {
          try { await api('PATCH', `users/${encodeURIComponent(u.name)}`, { disabled: !u.disabled }); announce(`${u.name} ${u.disabled ? 'enabled' : 'disabled'}.`); await showAdmin(); } catch (e) { announce(e.message); }
        }) }, u.disabled ? 'Enable' : 'Disable'),
      h('button.secondary', { type: 'button', 'aria-label': `Reset the password of ${u.name}`, onclick: () => resetPassword(u.name) }, 'Reset password')))));
  const add = h('form.stack', { novalidate: true },
    field('user-name', 'User name', h('input', { type: 'text', name: 'name', autocomplete: 'off' })),
    field('user-password', 'Password', h('input', { type: 'password', name: 'password', autocomplete: 'new-password' }), 'At least 8 characters; they can change it later.'),
    h('div.field', {}, h('label.check', {}, h('input', { type: 'checkbox', name: 'admin' }), 'Admin')),
    h('div.actions', {}, h('button', { type: 'submit' }, 'Create the user')));
  add.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    setError('user-name', '');
    setError('user-password', '');
    const f = add.elements;
    await busy(add.querySelector('button[type=submit]'), async () => {
      try {
        await api('POST', 'users', { name: f.name.value.trim(), password: f.password.value, admin: f.admin.checked });
        announce(`Created user ${f.name.value.trim()}.`);
        await showAdmin();
      } catch (e) {
        setError(e.message.includes('password') ? 'user-password' : 'user-name', e.message);
      }
    });
  });
  const eventRows = (events.events || []).map((e) => h('tr', {},
    h('td', {}, fmtTime(e.at)), h('td', {}, e.actor), h('td', {}, e.action), h('td', {}, e.target || ''),
    h('td.hide-narrow', {}, e.detail || '')));
  page('Admin',
    h('section.card', { 'aria-labelledby': 'h-all' }, h('h2', { id: 'h-all' }, 'Every site'), siteTable),
    h('section.card', { 'aria-labelledby': 'h-users' }, h('h2', { id: 'h-users' }, 'Users'),
      h('div.table-wrap', {}, h('table', {}, h('thead', {}, h('tr', {}, ['Name', 'Role', 'State', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, userRows))),
      h('h3', {}, 'Add a user'), add),
    h('section.card', { 'aria-labelledby': 'h-events' }, h('h2', { id: 'h-events' }, 'Event log (newest first)'),
      h('div.table-wrap', {}, h('table', {}, h('thead', {}, h('tr', {}, ['When', 'Who', 'What', 'On', 'Detail'].map((c, i) => h(i === 4 ? 'th.hide-narrow' : 'th', { scope: 'col' }, c)))),
        h('tbody', {}, eventRows)))));
}

function resetPassword(name) {
  const form = h('form.stack', { novalidate: true },
    field('reset-password', `New password for ${name}`, h('input', { type: 'password', name: 'password', autocomplete: 'new-password' })),
    h('div.actions', {}, h('button', { type: 'submit' }, 'Set the password'),
      h('button.secondary', { type: 'button', onclick: () => showAdmin() }, 'Cancel')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    await busy(form.querySelector('button[type=submit]'), async () => {
      try {
        await api('PUT', `users/${encodeURIComponent(name)}/password`, { password: form.elements.password.value });
        announce(`Changed the password of ${name}.`);
        await showAdmin();
      } catch (e) {
        setError('reset-password', e.message);
      }
    });
  });
  page(`Reset the password of ${name}`, h('div.card', {}, form));
  form.elements.password.focus();
}

// ---- routing ----

async function whoami() {
  try {
    const me = await api('GET', 'me');
    Object.assign(state, { user: me.user, admin: me.admin, csrf: me.csrf, base: me.base_domain });
  } catch (e) {
    state.user = null;
  }
}

async function route() {
  const hash = location.hash || '#/sites';
  if (!state.user && hash !== '#/login') await whoami();
  if (!state.user) {
    if (hash !== '#/login') {
      location.hash = '#/login';
      return;
    }
    await showLogin();
    return;
  }
  $('#nav').hidden = false;
  $('#nav-admin').hidden = !state.admin;
  $('#whoami').textContent = `Signed in as ${state.user}${state.admin ? ' (admin)' : ''}`;
  try {
    const m = hash.match(/^#\/site\/([^/]+)$/);
    if (hash === '#/login') location.hash = '#/sites';
    else if (m) await showSite(decodeURIComponent(m[1]));
    else if (hash === '#/new') showNew();
    else if (hash === '#/account') await showAccount();
    else if (hash === '#/admin') await showAdmin();
    else await showSites();
  } catch (e) {
    if (state.user) page('Something went wrong', h('p.error', { role: 'alert' }, e.message));
  }
}

async function signOut() {
  try { await api('POST', 'logout'); } catch (e) { /* signed out anyway below */ }
  Object.assign(state, { user: null, admin: false, csrf: null });
  $('#nav').hidden = true;
  announce('You are signed out.');
  location.hash = '#/login';
}

document.addEventListener('DOMContentLoaded', () => {
  $('#signout').addEventListener('click', signOut);
  window.addEventListener('hashchange', route);
  route();
});
