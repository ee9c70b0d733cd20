import { createHash } from 'node:crypto';

// Rendered with textContent only, never innerHTML: gids, client names and SQL
// come from clients and must not become markup.
const SCRIPT = `
const $ = (id) => document.getElementById(id);
let token = '';
$('token').addEventListener('change', (e) => { token = e.target.value; });
function cell(row, text) { const td = document.createElement('td'); td.textContent = text == null ? '' : String(text); row.appendChild(td); return td; }
function fill(id, rows, columns, extra) {
  const body = $(id); body.replaceChildren();
  if (rows.length === 0) { const tr = document.createElement('tr'); const td = cell(tr, 'none'); td.colSpan = columns.length + (extra ? 1 : 0); body.appendChild(tr); return; }
  for (const r of rows) { const tr = document.createElement('tr'); for (const c of columns) cell(tr, c(r)); if (extra) tr.appendChild(extra(r)); body.appendChild(tr); }
}
function resolveButton(r) {
  const td = document.createElement('td');
  if (r.decision === null) { td.textContent = 'no recorded decision'; return td; }
  const b = document.createElement('button'); b.textContent = 'resolve (' + r.decision + ')';
  b.addEventListener('click', async () => {
    const res = await fetch('api/in-doubt/' + encodeURIComponent(r.gid) + '/resolve', { method: 'POST', headers: { authorization: 'Bearer ' + token } });
    $('status').textContent = 'resolve ' + r.gid + ': HTTP ' + res.status + ' ' + (await res.text());
    refresh();
  });
  td.appendChild(b); return td;
}
function sagaButtons(r) {
  const td = document.createElement('td');
  const actions = r.status === 'exhausted' ? ['retry', 'abandon'] : ['abandon'];
  for (const action of actions) {
    const b = document.createElement('button'); b.textContent = action;
    b.addEventListener('click', async () => {
      const res = await fetch('api/sagas/' + encodeURIComponent(r.gid) + '/' + action, { method: 'POST', headers: { authorization: 'Bearer ' + token } });
      $('status').textContent = action + ' ' + r.gid + ': HTTP ' + res.status + ' ' + (await res.text());
      refresh();
    });
    td.appendChild(b);
  }
  return td;
}
function openStep(r) { const s = r.steps.find((x) => x.status === 'exhausted' || x.status === 'pending' || x.status === 'compensating'); return s ? s.name + ' (' + s.status + ', ' + s.calls + ' calls)' : ''; }
async function refreshSagas() {
  const res = await fetch('api/sagas', { cache: 'no-store' });
  if (res.status === 404) { $('sagas-note').textContent = 'sagas are not configured on this instance'; fill('sagas', [], [() => '']); return; }
  if (!res.ok) throw new Error('api/sagas: HTTP ' + res.status);
  $('sagas-note').textContent = '';
  fill('sagas', (await res.json()).sagas, [(g) => g.gid, (g) => g.definition, (g) => g.status, (g) => g.ageSeconds.toFixed(0), openStep, (g) => g.lastError], sagaButtons);
}
async function getJson(path) { const res = await fetch(path, { cache: 'no-store' }); if (!res.ok) throw new Error(path + ': HTTP ' + res.status); return res.json(); }
async function refresh() {
  try {
    const [tx, doubt, shards] = await Promise.all([getJson('api/transactions'), getJson('api/in-doubt'), getJson('api/shards')]);
    fill('shards', shards.shards, [(s) => s.shard, (s) => s.kind, (s) => s.healthy ? 'up' : 'DOWN', (s) => s.latencyMs, (s) => s.pool ? s.pool.inUse + ' / ' + s.pool.idle + ' / ' + s.pool.waiting : '', (s) => s.error]);
    fill('tx', tx.transactions, [(t) => t.gid, (t) => t.client, (t) => t.ageSeconds.toFixed(1), (t) => t.state, (t) => t.participants.join(', '), (t) => t.currentStatement]);
    fill('doubt', doubt.inDoubt, [(d) => d.gid, (d) => d.anchor, (d) => d.preparedOn.join(', '), (d) => d.ageSeconds.toFixed(0), (d) => d.decision ?? '?'], resolveButton);
    await refreshSagas();
    $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (err) { $('updated').textContent = String(err); }
}
refresh(); setInterval(refresh, 2000);
`;

const STYLE = `
body { font: 14px system-ui, sans-serif; margin: 1.5rem; color: #222; }
h1 { font-size: 1.3rem; } h2 { font-size: 1.05rem; margin-top: 1.5rem; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #ddd; vertical-align: top; }
td { font-family: ui-monospace, monospace; font-size: 12px; word-break: break-all; } #updated, #status { color: #666; }
`;

/** Content-Security-Policy allowing exactly the inline script and style below, fetches to this origin, nothing else. */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  `script-src 'sha256-${createHash('sha256').update(SCRIPT).digest('base64')}'`,
  `style-src 'sha256-${createHash('sha256').update(STYLE).digest('base64')}'`,
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

/** The admin dashboard: one self-contained page (no external assets) polling the JSON API every 2 s. */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ShardGate</title><style>${STYLE}</style></head>
<body>
<h1>ShardGate <span id="updated"></span></h1>
<h2>Shards</h2>
<table><thead><tr><th>shard</th><th>kind</th><th>health</th><th>latency ms</th><th>pool in use / idle / waiting</th><th>error</th></tr></thead><tbody id="shards"></tbody></table>
<h2>Transactions in flight</h2>
<table><thead><tr><th>gid</th><th>client</th><th>age s</th><th>state</th><th>participants</th><th>statement</th></tr></thead><tbody id="tx"></tbody></table>
<h2>In-doubt transactions</h2>
<p><label>admin token (to resolve, retry or abandon): <input id="token" type="password" autocomplete="off"></label> <span id="status"></span></p>
<table><thead><tr><th>gid</th><th>anchor</th><th>prepared on</th><th>age s</th><th>recorded decision</th><th></th></tr></thead><tbody id="doubt"></tbody></table>
<h2>Sagas in flight, compensating and exhausted</h2>
<p id="sagas-note"></p>
<table><thead><tr><th>gid</th><th>saga</th><th>status</th><th>age s</th><th>open step</th><th>last error</th><th></th></tr></thead><tbody id="sagas"></tbody></table>
<p><a href="metrics">Prometheus metrics</a></p>
<script>${SCRIPT}</script>
</body></html>
`;
