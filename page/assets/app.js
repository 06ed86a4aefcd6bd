// archy's marketplace page. Plain JavaScript, no dependencies: it reads the
// node's API (/api/v1/...) and follows operations' event streams.
'use strict';

const $ = (sel, el = document) => el.querySelector(sel);
const h = (tag, attrs = {}, ...kids) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
};

// The token: from the fragment `archy node page` prints (never sent to a
// server), kept for this tab only.
const TOKEN_KEY = 'archy-token';
(function takeToken() {
  const m = location.hash.match(/token=([A-Za-z0-9._~-]+)/);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, m[1]);
    history.replaceState(null, '', location.pathname + location.search);
  }
})();

const state = {
  status: null, discovered: [], installed: [], catalogs: [], peers: [],
  ops: new Map(), // app id -> {fraction, stage, message, done, error}
  detail: null,   // app key shown in detail
  browseOnly: false,
};

function token() { return sessionStorage.getItem(TOKEN_KEY); }
function readOnly() { return state.browseOnly || (state.status && state.status.read_only); }

async function errText(r) {
  const t = (await r.text()).trim();
  return `${r.status} ${r.statusText}${t ? ': ' + t.slice(0, 300) : ''}`;
}

async function get(path) {
  const headers = token() ? { Authorization: 'Bearer ' + token() } : {};
  const r = await fetch(path, { headers });
  if (!r.ok) throw new Error(await errText(r));
  return r.json();
}

// change sends a request that changes the node; without a token it asks
// for one first.
async function change(method, path, body) {
  if (readOnly()) throw new Error('this page is read-only');
  if (!token()) {
    askToken();
    throw new Error('enter the API token first');
  }
  const init = { method, headers: { Authorization: 'Bearer ' + token() } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  if (r.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    askToken();
  }
  if (!r.ok) throw new Error(await errText(r));
  const text = await r.text();
  return text ? JSON.parse(text) : {};
}

function askToken() {
  $('#token-box').hidden = false;
  $('#token-input').focus();
}

function banner(msg) {
  const b = $('#banner');
  b.textContent = msg || '';
  b.hidden = !msg;
}

// decodeManifest reads the manifest out of a release's DSSE envelope
// (JSON bytes, which the API sends as base64).
function b64bytes(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
function decodeManifest(rel) {
  if (rel._manifest !== undefined) return rel._manifest;
  rel._manifest = null;
  try {
    if (rel.envelope) {
      const env = JSON.parse(new TextDecoder().decode(b64bytes(rel.envelope)));
      rel._manifest = JSON.parse(new TextDecoder().decode(b64bytes(env.payload)));
    }
  } catch (e) { /* a CID-only release: its manifest comes from the swarm */ }
  return rel._manifest;
}

// cidStr reads a CID as the API writes it: a string, or IPLD's {"/": "…"}.
function cidStr(c) { return c && typeof c === 'object' ? c['/'] : String(c || ''); }
function shortDID(d) { return d && d.length > 28 ? d.slice(0, 16) + '…' + d.slice(-8) : (d || ''); }
function size(n) {
  if (!n) return '';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(n < 10 && i ? 1 : 0)} ${u[i]}`;
}
function imagesSize(m) {
  if (!m || !m.containers) return 0;
  return m.containers.reduce((s, c) => s + ((c.image && (c.image.size || c.image.archive_size)) || 0), 0);
}
function semverCmp(a, b) {
  const pa = String(a).split(/[.+-]/).map(x => (isNaN(+x) ? x : +x));
  const pb = String(b).split(/[.+-]/).map(x => (isNaN(+x) ? x : +x));
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    if (pa[i] === undefined) return -1;
    if (pb[i] === undefined) return 1;
    if (pa[i] < pb[i]) return -1;
    if (pa[i] > pb[i]) return 1;
  }
  return 0;
}

// groups discovered releases by app id and publisher, newest first.
function groups() {
  const by = new Map();
  for (const r of state.discovered) {
    const key = r.app_id + ' ' + r.publisher;
    if (!by.has(key)) by.set(key, { key, id: r.app_id, publisher: r.publisher, releases: [] });
    by.get(key).releases.push(r);
  }
  const out = [...by.values()];
  for (const g of out) {
    g.releases.sort((a, b) => semverCmp(b.version, a.version));
    g.latest = g.releases.find(r => r.latest) || g.releases[0];
    g.manifest = decodeManifest(g.latest);
    g.trust = g.latest.trust || null;
  }
  out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return out;
}

function installedApp(id) { return state.installed.find(a => a.id === id); }

function trustBadge(t) {
  if (!t) return h('span', { class: 'badge', title: 'the node has not scored this publisher' }, 'unscored');
  const cls = t.decision === 'selected' || t.decision === 'pinned' ? 'ok' : t.decision === 'refused' ? 'bad' : '';
  const score = typeof t.score === 'number' ? ` ${t.score.toFixed(3)}` : '';
  return h('span', { class: 'badge ' + cls, title: (t.reasons || []).join('\n') }, `${t.decision || 'trust'}${score}`);
}

function progressBar(op) {
  const el = $('#progress-tpl').content.firstElementChild.cloneNode(true);
  const pct = Math.round((op.fraction || 0) * 100);
  el.dataset.fraction = String(op.fraction || 0);
  $('.fill', el).style.width = pct + '%';
  $('.label', el).textContent = op.error ? `failed: ${op.error}` : op.done ? 'done' : `${pct}% ${op.stage || ''} ${op.message || ''}`;
  if (op.done) el.classList.add(op.error ? 'failed' : 'done');
  return el;
}

// follow streams an operation's events into state.ops[app].
function follow(app, op) {
  const cur = { fraction: 0, stage: 'queued', message: '', done: false, error: '' };
  state.ops.set(app, cur);
  render();
  const es = new EventSource(op.events);
  const onEvent = (ev) => {
    const e = JSON.parse(ev.data);
    cur.fraction = Math.max(cur.fraction, e.fraction || 0);
    cur.stage = e.stage || cur.stage;
    cur.message = e.message || '';
    if (e.type === 'end') {
      cur.done = true;
      if (e.ok) cur.fraction = 1;
      else cur.error = e.error || 'failed';
      es.close();
      refresh();
    }
    render();
  };
  es.addEventListener('progress', onEvent);
  es.addEventListener('end', onEvent);
  es.onerror = () => { if (cur.done) es.close(); }; // EventSource reconnects with Last-Event-ID by itself
}

async function act(app, method, path, body) {
  try {
    banner('');
    const op = await change(method, path, body);
    if (op && op.events) follow(app, op);
    else refresh();
  } catch (e) {
    banner(`${app}: ${e.message}`);
  }
}

function install(rel) { return act(rel.app_id, 'POST', '/api/v1/apps', { cid: cidStr(rel.cid) }); }

function uninstall(id, purge) {
  const what = purge ? `Uninstall ${id} and DELETE its data and secrets? This cannot be undone.` : `Uninstall ${id}, keeping its data for a reinstall?`;
  if (!confirm(what)) return;
  return act(id, 'DELETE', `/api/v1/apps/${encodeURIComponent(id)}${purge ? '?purge=1' : ''}`);
}

function renderMarket() {
  const q = $('#search').value.trim().toLowerCase();
  const list = $('#market-list');
  list.replaceChildren();
  const gs = groups().filter(g => {
    if (!q) return true;
    const m = g.manifest || {};
    return [g.id, g.publisher, m.name, m.description].some(s => s && String(s).toLowerCase().includes(q));
  });
  if (!gs.length) {
    list.append(h('p', { class: 'muted' }, state.discovered.length ? 'No app matches.' : 'No apps discovered yet: the node reads its relays and catalogs for announcements.'));
  }
  for (const g of gs) {
    const m = g.manifest || {};
    const inst = installedApp(g.id);
    const op = state.ops.get(g.id);
    let button = null;
    if (!readOnly()) {
      if (!inst) button = h('button', { class: 'primary', 'data-action': 'install', onclick: () => install(g.latest) }, 'Install');
      else if (semverCmp(g.latest.version, inst.version) > 0) button = h('button', { class: 'primary', 'data-action': 'update', onclick: () => install(g.latest) }, `Update to ${g.latest.version}`);
    }
    list.append(h('div', { class: 'card', 'data-app': g.id },
      h('h3', {}, m.name || g.id),
      h('div', { class: 'muted' }, `${g.id} ${g.latest.version}`, inst ? ' · installed ' + inst.version : ''),
      h('div', { class: 'muted' }, 'by ', h('span', { class: 'mono', title: g.publisher }, shortDID(g.publisher)), ' ', trustBadge(g.trust)),
      imagesSize(m) ? h('div', { class: 'muted' }, 'images ' + size(imagesSize(m))) : null,
      h('div', { class: 'actions' }, button, h('button', { onclick: () => { state.detail = g.key; render(); } }, 'Details')),
      op ? progressBar(op) : null));
  }
  for (const c of state.catalogs) {
    list.append(h('div', { class: 'card', 'data-catalog': c.name },
      h('h3', {}, `Catalog ${c.name}`),
      h('div', { class: 'muted' }, `version ${c.status.version}`, c.status.expires ? ` · expires ${c.status.expires}` : '', c.status.stale ? ' · STALE' : ''),
      h('ul', {}, (c.entries || []).map(e => h('li', {}, e)))));
  }
  renderDetail();
}

function renderDetail() {
  const box = $('#app-detail');
  const g = state.detail && groups().find(x => x.key === state.detail);
  box.hidden = !g;
  if (!g) return;
  const m = g.manifest || {};
  const t = g.trust;
  box.replaceChildren(h('div', { class: 'panel' },
    h('h3', {}, `${m.name || g.id}`),
    h('button', { onclick: () => { state.detail = null; render(); } }, 'Close'),
    h('table', {},
      h('tr', {}, h('th', {}, 'App id'), h('td', {}, g.id)),
      h('tr', {}, h('th', {}, 'Publisher'), h('td', { class: 'mono' }, g.publisher)),
      h('tr', {}, h('th', {}, 'Announced by'), h('td', { class: 'mono' }, g.latest.nostr_pubkey)),
      h('tr', {}, h('th', {}, 'Trust'), h('td', {}, trustBadge(t),
        t && t.reasons ? h('ul', { class: 'reasons' }, t.reasons.map(r => h('li', {}, r))) : h('div', { class: 'muted' }, 'No trust score yet for this publisher.'))),
      h('tr', {}, h('th', {}, 'Versions'), h('td', {}, g.releases.map(r => h('div', {}, `${r.version}${r.latest ? ' (latest)' : ''} `, h('span', { class: 'mono' }, cidStr(r.cid)))))),
      h('tr', {}, h('th', {}, 'Containers'), h('td', {}, (m.containers || []).map(c => h('div', {}, `${c.name}: ${c.image ? c.image.ref || '' : ''}`)))),
      imagesSize(m) ? h('tr', {}, h('th', {}, 'Size'), h('td', {}, size(imagesSize(m)))) : null)));
}

function renderMine() {
  const list = $('#mine-list');
  list.replaceChildren();
  if (state.status && state.status.apps_off) list.append(h('p', { class: 'muted' }, 'Apps are off on this node: ' + state.status.apps_off));
  if (!state.installed.length) list.append(h('p', { class: 'muted' }, 'No app installed.'));
  for (const a of state.installed) {
    const op = state.ops.get(a.id);
    const health = a.healthy ? h('span', { class: 'badge ok' }, 'healthy') : h('span', { class: 'badge bad' }, a.phase === 'running' ? 'unhealthy' : a.phase);
    const ctrls = readOnly() ? null : h('div', { class: 'actions' },
      h('button', { onclick: () => act(a.id, 'POST', `/api/v1/apps/${encodeURIComponent(a.id)}/restart`) }, 'Restart'),
      a.phase === 'stopped'
        ? h('button', { onclick: () => act(a.id, 'POST', `/api/v1/apps/${encodeURIComponent(a.id)}/start`) }, 'Start')
        : h('button', { onclick: () => act(a.id, 'POST', `/api/v1/apps/${encodeURIComponent(a.id)}/stop`) }, 'Stop'),
      a.previous ? h('button', { 'data-action': 'rollback', onclick: () => act(a.id, 'POST', `/api/v1/apps/${encodeURIComponent(a.id)}/rollback`) }, `Roll back to ${a.previous}`) : null,
      h('button', { class: 'danger', 'data-action': 'uninstall-keep', onclick: () => uninstall(a.id, false) }, 'Uninstall (keep data)'),
      h('button', { class: 'danger', 'data-action': 'uninstall-purge', onclick: () => uninstall(a.id, true) }, 'Uninstall and delete data'));
    const creds = a._creds ? h('table', {}, Object.entries(a._creds).map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', { class: 'mono' }, v)))) : null;
    list.append(h('div', { class: 'panel', 'data-installed': a.id },
      h('h3', {}, `${a.name || a.id} `, h('span', { class: 'muted' }, a.version), ' ', health),
      h('div', { class: 'muted' }, `${a.phase}${a.error ? ': ' + a.error : ''} · restarts ${a.restarts || 0} · recreated ${a.recreated || 0}`),
      a.ui_url ? h('div', {}, h('a', { class: 'ui-link', href: a.ui_url, target: '_blank', rel: 'noopener noreferrer' }, 'Open ' + a.ui_url)) : null,
      a.credentials && !readOnly() ? h('button', { onclick: () => showCreds(a) }, a._creds ? 'Hide credentials' : 'Show credentials') : null,
      creds, ctrls, op ? progressBar(op) : null));
  }
  // Operations of apps no longer listed (an uninstall that ended).
  for (const [id, op] of state.ops) {
    if (!installedApp(id) && !groups().some(g => g.id === id)) list.append(h('div', { class: 'panel', 'data-op': id }, h('h3', {}, id), progressBar(op)));
  }
}

async function showCreds(a) {
  if (a._creds) { delete a._creds; render(); return; }
  try {
    if (!token()) { askToken(); return; }
    a._creds = await get(`/api/v1/apps/${encodeURIComponent(a.id)}/credentials`);
    const keep = a._creds;
    state.installed.find(x => x.id === a.id)._creds = keep;
    render();
  } catch (e) { banner(e.message); }
}

function renderNode() {
  const s = state.status;
  const box = $('#node-status');
  if (!s) { box.replaceChildren(h('p', {}, 'Asking the node…')); return; }
  box.replaceChildren(h('div', { class: 'panel' }, h('table', {},
    h('tr', {}, h('th', {}, 'Peer ID'), h('td', { class: 'mono' }, s.peer_id)),
    h('tr', {}, h('th', {}, 'Peers'), h('td', { id: 'peer-count' }, String(s.peers))),
    h('tr', {}, h('th', {}, 'Relays'), h('td', {}, (s.relays || []).map(r => h('div', { class: 'mono' }, r)))),
    h('tr', {}, h('th', {}, 'Discovered releases'), h('td', {}, String(s.discovered))),
    h('tr', {}, h('th', {}, 'Installed apps'), h('td', {}, String(s.apps), s.apps_off ? ` (apps off: ${s.apps_off})` : '')),
    h('tr', {}, h('th', {}, 'Catalogs'), h('td', {}, state.catalogs.length ? state.catalogs.map(c => h('div', {}, `${c.name}: version ${c.status.version}${c.status.expires ? ', expires ' + c.status.expires : ''}${c.status.stale ? ' — STALE: ' + (c.status.reason || '') : ''}`)) : 'none followed')),
    s.disk_bytes !== undefined ? h('tr', {}, h('th', {}, 'Disk used'), h('td', {}, size(s.disk_bytes))) : null,
    h('tr', {}, h('th', {}, 'Data folder'), h('td', { class: 'mono' }, s.data_dir || '')),
    h('tr', {}, h('th', {}, 'Running since'), h('td', {}, new Date(s.started).toLocaleString())))),
  h('div', { class: 'panel' }, h('h3', {}, 'Connected peers'),
    state.peers.length ? h('ul', {}, state.peers.map(p => h('li', { class: 'mono' }, p.id))) : h('p', { class: 'muted' }, 'none')));
}

function render() {
  $('#who').textContent = state.status ? `node ${String(state.status.peer_id).slice(-8)} · ${state.status.peers} peers${readOnly() ? ' · read-only' : token() ? '' : ' · browsing (no token)'}` : '';
  renderMarket();
  renderMine();
  renderNode();
}

async function refresh() {
  try {
    const [status, discovered, installed, catalogs, peers] = await Promise.all([
      get('/api/v1/status'), get('/api/v1/apps/discovered'), get('/api/v1/apps'), get('/api/v1/catalogs'), get('/api/v1/peers')]);
    // Keep shown credentials across refreshes.
    for (const a of installed) {
      const old = state.installed.find(x => x.id === a.id);
      if (old && old._creds) a._creds = old._creds;
    }
    Object.assign(state, { status, discovered: discovered || [], installed: installed || [], catalogs: catalogs || [], peers: peers || [] });
    render();
  } catch (e) {
    banner('The node does not answer: ' + e.message);
  }
}

document.addEventListener('DOMContentLoaded', () => {
  for (const b of document.querySelectorAll('.tab')) {
    b.addEventListener('click', () => {
      for (const x of document.querySelectorAll('.tab')) x.classList.toggle('active', x === b);
      for (const v of document.querySelectorAll('.view')) v.hidden = v.id !== b.dataset.tab;
    });
  }
  $('#search').addEventListener('input', renderMarket);
  $('#token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const v = $('#token-input').value.trim();
    if (v) sessionStorage.setItem(TOKEN_KEY, v);
    $('#token-input').value = '';
    $('#token-box').hidden = true;
    render();
  });
  $('#token-cancel').addEventListener('click', () => { state.browseOnly = true; $('#token-box').hidden = true; render(); });
  refresh();
  setInterval(refresh, 3000);
});
