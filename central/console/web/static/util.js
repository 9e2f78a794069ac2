// Shared helpers: the API client, DOM building without innerHTML, and
// formatting of times, sizes and durations (local time, zone shown).

export const session = {
  csrf: '',          // kept in memory only
  info: null,        // body of /api/login or /api/session
  active: false,     // a logged-in UI is on screen
  lastActivity: Date.now(),
  onUnauthorized: null,
};

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// api calls the console API. Errors come back as ApiError with the server's
// one-line message. A 401 on a live session ends the session everywhere.
// opts.background marks a request the page makes by itself (a periodic
// refresh): it does not count as use of the session, here or at the server.
export async function api(method, path, body, opts = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (opts.background) headers['X-Vigil-Background'] = '1';
  if (method !== 'GET' && method !== 'HEAD' && session.csrf) headers['X-CSRF-Token'] = session.csrf;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, 'cannot reach the server: check the network');
  }
  if (!opts.background) session.lastActivity = Date.now();
  const text = await res.text().catch(() => '');
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch (e) { data = null; }
  }
  if (!res.ok) {
    let msg = data && typeof data.error === 'string' && data.error ? data.error : '';
    if (!msg) {
      msg = res.status === 403 ? 'forbidden'
        : res.status === 429 ? 'too many attempts: wait a moment and try again'
        : res.status === 503 ? 'service unavailable'
        : `request failed (HTTP ${res.status})`;
    }
    if (res.status === 401 && path !== '/api/login' && session.active && session.onUnauthorized) {
      session.onUnauthorized();
    }
    throw new ApiError(res.status, msg, data);
  }
  return data;
}

// ops calls the Ops bridge: POST /api/ops/NAME with the protojson request.
export function ops(name, req) {
  return api('POST', '/api/ops/' + name, req || {});
}

// h builds an element. Text children become text nodes, never markup.
export function h(tag, attrs, ...children) {
  const e = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
      else if (v === true) e.setAttribute(k, '');
      else e.setAttribute(k, String(v));
    }
  }
  append(e, children);
  return e;
}

function append(e, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(e, c);
    else if (c instanceof Node) e.appendChild(c);
    else e.appendChild(document.createTextNode(String(c)));
  }
}

// setError shows msg in an .error element, or hides it when msg is empty.
export function setError(el, msg) {
  if (!el) return;
  el.textContent = msg || '';
  el.hidden = !msg;
}

export function errorBox(id) {
  return h('p', { class: 'error', role: 'alert', id: id || null, hidden: true });
}

// field wraps a labelled control.
export function field(label, control, hint) {
  return h('div', { class: 'field' },
    h('label', { for: control.id }, label),
    control,
    hint ? h('span', { class: 'hint' }, hint) : null);
}

// table builds a table from header names and rows of cells (Nodes or text).
export function table(headers, rows, attrs) {
  const t = h('table', Object.assign({ class: 'grid' }, attrs || {}));
  t.appendChild(h('thead', null, h('tr', null, headers.map((x) => h('th', { scope: 'col' }, x)))));
  const tb = h('tbody');
  for (const r of rows) tb.appendChild(r instanceof Node ? r : h('tr', null, r.map((c) => h('td', null, c))));
  t.appendChild(tb);
  return t;
}

// ---- time ----

const pad = (n) => String(n).padStart(2, '0');

export function parseTime(v) {
  if (v === null || v === undefined || v === '') return null;
  const d = v instanceof Date ? v : new Date(v);
  return isNaN(d.getTime()) ? null : d;
}

export function zoneName(d) {
  try {
    const p = new Intl.DateTimeFormat(undefined, { timeZoneName: 'short' })
      .formatToParts(d || new Date()).find((x) => x.type === 'timeZoneName');
    if (p) return p.value;
  } catch (e) { /* fall through */ }
  const off = -(d || new Date()).getTimezoneOffset();
  const s = off >= 0 ? '+' : '-';
  return `UTC${s}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
}

export function fmtDate(d) {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

export function fmtClock(d) {
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// fmtTime: "2024-05-01 14:03:22 CEST" in local time, or "—".
export function fmtTime(v) {
  const d = parseTime(v);
  if (!d || d.getTime() <= 0) return '—';
  return `${fmtDate(d)} ${fmtClock(d)} ${zoneName(d)}`;
}

// fmtSpan: "2024-05-01 14:03:22 – 14:04:22 CEST" (date repeated if it changes).
export function fmtSpan(a, b) {
  const s = parseTime(a);
  const e = parseTime(b);
  if (!s && !e) return '—';
  if (!s || !e) return `${fmtTime(a)} – ${fmtTime(b)}`;
  const z = zoneName(s);
  if (fmtDate(s) === fmtDate(e) && zoneName(e) === z) return `${fmtDate(s)} ${fmtClock(s)} – ${fmtClock(e)} ${z}`;
  return `${fmtTime(s)} – ${fmtTime(e)}`;
}

// toLocalInput formats a Date for <input type="datetime-local">.
export function toLocalInput(d) {
  return `${fmtDate(d)}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// fromLocalInput turns a datetime-local value (local time) into RFC 3339 UTC.
export function fromLocalInput(v) {
  if (!v) return '';
  const d = new Date(v); // no offset: the spec reads it as local time
  if (isNaN(d.getTime())) return '';
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function looksLikeTime(v) {
  return typeof v === 'string' && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(v);
}

// ---- numbers ----

export function num(v) {
  const n = Number(v);
  return Number.isFinite(n) ? n : 0;
}

export function fmtBytes(v) {
  let n = num(v);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i === 0 ? `${n} B` : `${n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}

export function fmtDuration(sec) {
  let s = Math.max(0, Math.round(num(sec)));
  const hh = Math.floor(s / 3600); s -= hh * 3600;
  const mm = Math.floor(s / 60); s -= mm * 60;
  if (hh) return `${hh} h ${pad(mm)} min`;
  if (mm) return `${mm} min ${pad(s)} s`;
  return `${s} s`;
}

// splitList: "a, b ,c" -> ["a","b","c"].
export function splitList(v) {
  return String(v || '').split(',').map((x) => x.trim()).filter(Boolean);
}

export function sortById(a, b) {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

// busy disables a button while an async action runs.
export async function busy(button, fn) {
  if (button) button.disabled = true;
  try { return await fn(); } finally { if (button) button.disabled = false; }
}

// arrayOf accepts either a bare array or {key: [...]}.
export function arrayOf(data, key) {
  if (Array.isArray(data)) return data;
  if (data && Array.isArray(data[key])) return data[key];
  return [];
}
