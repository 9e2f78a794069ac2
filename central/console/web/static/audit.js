// Audit (auditors): the access log with filters, the signed checkpoint,
// and the report. No video anywhere.

import {
  ops, h, field, errorBox, setError, busy, arrayOf,
  fmtTime, fmtSpan, toLocalInput, fromLocalInput, looksLikeTime,
} from './util.js';

const COLUMNS = ['seq', 'time', 'actor', 'role', 'action', 'target', 'reason', 'client', 'outcome'];

function target(r) {
  const parts = [];
  if (r.district || r.camera) parts.push(r.camera ? `${r.district || '?'}/${r.camera}` : r.district);
  if (r.from || r.to) parts.push(fmtSpan(r.from, r.to));
  if (r.segment) parts.push(`segment ${r.segment}`);
  if (r.hold) parts.push(`hold ${r.hold}`);
  if (r.target_user) parts.push(`user ${r.target_user}`);
  return parts.join(' · ');
}

function decodeBase64Text(b64) {
  try {
    const bin = atob(String(b64 || ''));
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    return new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  } catch (e) {
    return '';
  }
}

// renderValue renders any JSON value as text or nested tables.
function renderValue(v) {
  if (v === null || v === undefined || v === '') return '—';
  if (Array.isArray(v)) {
    if (!v.length) return h('span', { class: 'muted' }, 'none');
    if (v.every((x) => x && typeof x === 'object' && !Array.isArray(x))) return objectsTable(v);
    return v.map((x) => (typeof x === 'object' ? JSON.stringify(x) : String(x))).join(', ');
  }
  if (typeof v === 'object') return kvTable(v);
  if (looksLikeTime(v)) return fmtTime(v);
  return String(v);
}

function objectsTable(arr) {
  const keys = [];
  for (const o of arr) for (const k of Object.keys(o)) if (!keys.includes(k)) keys.push(k);
  return h('table', { class: 'grid nested' },
    h('thead', null, h('tr', null, keys.map((k) => h('th', { scope: 'col' }, k.replace(/_/g, ' '))))),
    h('tbody', null, arr.map((o) => h('tr', { class: o.outcome ? `outcome-${String(o.outcome).toLowerCase()}` : null },
      keys.map((k) => h('td', null, renderValue(o[k])))))));
}

function kvTable(obj, known) {
  const keys = Object.keys(obj);
  for (const k of known || []) if (!keys.includes(k)) keys.push(k);
  return h('table', { class: 'grid kv' },
    h('tbody', null, keys.map((k) => h('tr', null,
      h('th', { scope: 'row' }, k.replace(/_/g, ' ')),
      h('td', null, obj[k] === undefined ? h('span', { class: 'muted' }, 'none') : renderValue(obj[k]))))));
}

export function createAudit() {
  const since = h('input', { id: 'audit-since', name: 'since', type: 'datetime-local', step: '1' });
  const actor = h('input', { id: 'audit-actor', name: 'actor', type: 'text', autocomplete: 'off', placeholder: 'user name' });
  const action = h('input', { id: 'audit-action', name: 'action', type: 'text', autocomplete: 'off', placeholder: 'e.g. live.view or user.*' });
  const search = h('button', { id: 'audit-search', type: 'submit', class: 'primary' }, 'Search');
  const logErr = errorBox('audit-error');
  const count = h('p', { class: 'muted', id: 'audit-count' });
  const filters = h('form', { id: 'audit-filters', class: 'toolbar wrap', novalidate: true },
    field('Since', since), field('Actor', actor), field('Action', action),
    h('div', { class: 'field actions' }, search));
  const logTable = h('table', { id: 'audit-list', class: 'grid audit' });

  const cpRefresh = h('button', { id: 'audit-checkpoint-refresh', type: 'button' }, 'Refresh');
  const cpErr = errorBox('audit-checkpoint-error');
  const cpBody = h('div', { id: 'audit-checkpoint-body' });
  const checkpoint = h('div', { id: 'audit-checkpoint', class: 'panel' },
    h('div', { class: 'toolbar' }, h('h3', null, 'Signed checkpoint'), cpRefresh), cpErr, cpBody);

  const repSince = h('input', { id: 'audit-report-since', name: 'report-since', type: 'datetime-local', step: '1' });
  const repRun = h('button', { id: 'audit-report-run', type: 'submit', class: 'primary' }, 'Report');
  const repErr = errorBox('audit-report-error');
  const repOut = h('div', { id: 'audit-report-out' });
  const repForm = h('form', { class: 'toolbar wrap', novalidate: true },
    h('h3', null, 'Report'), field('Since', repSince), h('div', { class: 'field actions' }, repRun));
  const report = h('div', { id: 'audit-report', class: 'panel' }, repForm, repErr, repOut);

  const section = h('section', { id: 'tab-audit', class: 'tab', 'aria-label': 'Audit' },
    h('h2', null, 'Access log'), filters, logErr, count,
    h('div', { class: 'scroll' }, logTable),
    h('div', { class: 'two-col' }, checkpoint, report));

  const weekAgo = new Date(Date.now() - 7 * 24 * 3600 * 1000);
  weekAgo.setSeconds(0, 0);
  repSince.value = toLocalInput(weekAgo);

  function renderLog(records) {
    const rows = records.map((r) => {
      const outcome = String(r.outcome || '');
      const cls = ['audit-row'];
      if (/^(denied|failed|refused|error)/i.test(outcome)) cls.push('bad', `outcome-${outcome.toLowerCase()}`);
      return h('tr', { class: cls.join(' '), 'data-seq': String(r.seq || '') },
        h('td', { class: 'num' }, String(r.seq || '')),
        h('td', { class: 'nowrap' }, fmtTime(r.time)),
        h('td', null, r.actor || '', r.designation ? h('div', { class: 'muted' }, r.designation) : null),
        h('td', null, r.role || ''),
        h('td', { class: 'mono' }, r.action || ''),
        h('td', null, target(r)),
        h('td', null, r.reason || ''),
        h('td', { class: 'mono' }, r.client || ''),
        h('td', null, h('span', { class: `badge outcome ${cls.includes('bad') ? 'bad' : 'good'}` }, outcome || '—'),
          r.detail ? h('div', { class: 'muted' }, r.detail) : null));
    });
    logTable.replaceChildren(
      h('thead', null, h('tr', null, COLUMNS.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', null, rows.length ? rows : h('tr', null, h('td', { colspan: String(COLUMNS.length), class: 'empty' }, 'no records match'))));
  }
  renderLog([]);

  async function loadLog() {
    setError(logErr, '');
    const req = {};
    const s = fromLocalInput(since.value);
    if (since.value && !s) { setError(logErr, 'the "since" time is not valid'); return; }
    if (s) req.since = s;
    if (actor.value.trim()) req.actor = actor.value.trim();
    if (action.value.trim()) req.action = action.value.trim();
    let data;
    try {
      data = await busy(search, () => ops('AuditLog', req));
    } catch (e) {
      setError(logErr, e.message);
      return;
    }
    const records = arrayOf(data, 'records');
    records.sort((a, b) => Number(b.seq || 0) - Number(a.seq || 0));
    count.textContent = `${records.length} record${records.length === 1 ? '' : 's'}, newest first — read at ${fmtTime(new Date())}`;
    renderLog(records);
  }

  async function loadCheckpoint() {
    setError(cpErr, '');
    let data;
    try {
      data = await busy(cpRefresh, () => ops('AuditCheckpoint', {}));
    } catch (e) {
      setError(cpErr, e.message);
      return;
    }
    const text = decodeBase64Text(data && data.checkpoint);
    // golang.org/x/mod/sumdb/note: origin, size, root hash, blank line, signatures.
    const lines = text.split('\n');
    const rows = {
      size: /^\d+$/.test(lines[1] || '') ? lines[1] : '?',
      root: lines[2] || '?',
      origin: lines[0] || '?',
      verifier_key: (data && data.verifier_key) || '—',
    };
    const sigs = lines.filter((l) => l.startsWith('\u2014 ')).map((l) => l.slice(2).split(' ')[0]);
    if (sigs.length) rows.signed_by = sigs.join(', ');
    cpBody.replaceChildren(
      h('table', { class: 'grid kv' }, h('tbody', null, Object.entries(rows).map(([k, v]) =>
        h('tr', null, h('th', { scope: 'row' }, k.replace(/_/g, ' ')), h('td', { class: `mono ${k === 'size' ? 'cp-size' : k === 'root' ? 'cp-root' : ''}` }, v))))),
      h('details', null, h('summary', null, 'checkpoint text'), h('pre', { class: 'mono' }, text)));
  }

  async function loadReport() {
    setError(repErr, '');
    const s = fromLocalInput(repSince.value);
    if (!s) { setError(repErr, 'give the start of the report'); return; }
    let data;
    try {
      data = await busy(repRun, () => ops('AuditReport', { since: s }));
    } catch (e) {
      setError(repErr, e.message);
      return;
    }
    repOut.replaceChildren(
      h('p', { class: 'muted' }, `since ${fmtTime(s)}, generated ${fmtTime(new Date())}`),
      kvTable(data && typeof data === 'object' ? data : {}, ['viewings', 'denied', 'holds', 'deletions']));
  }

  filters.addEventListener('submit', (ev) => { ev.preventDefault(); loadLog(); });
  cpRefresh.addEventListener('click', loadCheckpoint);
  repForm.addEventListener('submit', (ev) => { ev.preventDefault(); loadReport(); });

  let first = true;
  return {
    name: 'audit',
    section,
    enter() {
      if (first) {
        first = false;
        loadLog();
        loadCheckpoint();
        loadReport();
      }
    },
    leave() {},
  };
}
