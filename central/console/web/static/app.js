// vigil console: session, login, header and tabs. Each tab lives in its own
// module and exposes {section, enter(), leave(), destroy?()}.

import { api, h, session, setError, busy, fmtTime, fmtClock, zoneName, parseTime } from './util.js';
import { createLive } from './live.js';
import { createPlayback } from './playback.js';
import { createHolds } from './holds.js';
import { createAudit } from './audit.js';
import { createStatus } from './status.js';
import { createUsers } from './users.js';

const ROLE_TABS = {
  operator: ['live', 'playback', 'status'],
  officer: ['live', 'playback', 'holds', 'status'],
  auditor: ['audit', 'status'],
  admin: ['status', 'users'],
};
const LABELS = { live: 'Live', playback: 'Playback', holds: 'Holds', audit: 'Audit', status: 'Status', users: 'Users' };
const FACTORIES = {
  live: createLive, playback: createPlayback, holds: createHolds,
  audit: createAudit, status: createStatus, users: createUsers,
};

const $ = (id) => document.getElementById(id);

let ui = null; // {modules: Map(name → module), current, buttons}
let sessionTimer = 0;
let idleChecked = false;
let loginTried = false; // a login was submitted since the page loaded

function showLogin(message, info) {
  $('login').hidden = false;
  $('app').hidden = true;
  setError($('login-error'), message || '');
  const note = $('login-info');
  note.textContent = info || '';
  note.hidden = !info;
  document.title = 'vigil console — log in';
  const a = document.activeElement;
  if (!a || a === document.body) {
    const u = $('login-user');
    if (!u.value) u.focus(); else $('login-password').focus();
  }
}

function teardown() {
  session.active = false;
  clearInterval(sessionTimer);
  sessionTimer = 0;
  if (ui) {
    for (const m of ui.modules.values()) {
      try { m.leave(); } catch (e) { /* keep tearing down */ }
      try { if (m.destroy) m.destroy(); } catch (e) { /* keep tearing down */ }
    }
    ui = null;
  }
  $('tabs').replaceChildren();
  $('tabs').hidden = true;
  $('session-box').replaceChildren();
  $('session-box').hidden = true;
  $('app').replaceChildren();
  $('app').hidden = true;
  session.csrf = '';
  session.info = null;
}

// sessionEnded: any 401 lands here. Stop everything, ask to log in again.
function sessionEnded() {
  if (!session.active) return;
  teardown();
  $('login-password').value = '';
  showLogin('session ended: log in again');
}

function select(name) {
  if (!ui || !ui.modules.has(name)) return;
  if (ui.current === name) return;
  if (ui.current) {
    const old = ui.modules.get(ui.current);
    old.leave();
    old.section.hidden = true;
  }
  ui.current = name;
  for (const [n, b] of ui.buttons) {
    const on = n === name;
    b.setAttribute('aria-selected', on ? 'true' : 'false');
    b.classList.toggle('active', on);
    b.tabIndex = on ? 0 : -1;
  }
  const m = ui.modules.get(name);
  m.section.hidden = false;
  document.title = `vigil — ${LABELS[name]}`;
  if (location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
  m.enter();
}

function liveActive() {
  if (!ui || ui.current !== 'live') return false;
  const m = ui.modules.get('live');
  return !!(m && m.liveCount && m.liveCount() > 0);
}

function checkSessionClock() {
  if (!session.active || !session.info) return;
  const warn = $('session-warning');
  if (!warn) return;
  const info = session.info;
  const now = Date.now();
  const msgs = [];
  const exp = parseTime(info.expires);
  if (exp && exp.getTime() - now < 10 * 60 * 1000) {
    msgs.push(`session ends at ${fmtClock(exp)} ${zoneName(exp)}`);
  }
  const idle = Number(info.idle_timeout_s) || 0;
  let idleSoon = false;
  if (idle > 0 && !liveActive()) {
    const left = Math.round(idle - (now - session.lastActivity) / 1000);
    if (left <= 0) {
      if (!idleChecked) {
        idleChecked = true;
        api('GET', '/api/session').then(refreshInfo).catch(() => {});
      }
    } else if (left <= Math.min(120, idle / 2)) {
      idleSoon = true;
      msgs.push(`idle: the session ends in ${left} s`);
    }
  }
  warn.textContent = msgs.join(' · ');
  warn.hidden = msgs.length === 0;
  $('session-stay').hidden = !idleSoon;
}

function refreshInfo(info) {
  if (!info || !session.active) return;
  idleChecked = false;
  if (info.csrf) session.csrf = info.csrf;
  session.info = Object.assign({}, session.info, info);
  checkSessionClock();
}

function start(info, restore) {
  teardown();
  session.info = info;
  session.csrf = info.csrf || '';
  session.active = true;
  session.lastActivity = Date.now();
  idleChecked = false;

  $('login').hidden = true;
  setError($('login-error'), '');
  $('login-password').value = '';
  $('login-totp').value = '';
  $('login-totp-row').hidden = true;

  const role = String(info.role || '');
  const names = ROLE_TABS[role] || ['status'];
  const ctx = { onUnauthorized: sessionEnded };

  const nav = $('tabs');
  const buttons = new Map();
  for (const n of names) {
    const b = h('button', { type: 'button', role: 'tab', id: `nav-${n}`, 'data-tab': n, 'aria-controls': `tab-${n}`, 'aria-selected': 'false' }, LABELS[n]);
    b.addEventListener('click', () => select(n));
    b.addEventListener('keydown', (ev) => {
      if (ev.key !== 'ArrowRight' && ev.key !== 'ArrowLeft') return;
      const i = names.indexOf(n);
      const j = (i + (ev.key === 'ArrowRight' ? 1 : names.length - 1)) % names.length;
      select(names[j]);
      buttons.get(names[j]).focus();
    });
    buttons.set(n, b);
    nav.appendChild(b);
  }
  nav.hidden = false;

  const districts = Array.isArray(info.districts) && info.districts.length ? info.districts.join(', ') : 'all districts';
  const logout = h('button', { type: 'button', id: 'logout' }, 'Log out');
  const stay = h('button', { type: 'button', id: 'session-stay', hidden: true }, 'Stay logged in');
  stay.addEventListener('click', () => {
    api('GET', '/api/session').then(refreshInfo).catch(() => {});
  });
  logout.addEventListener('click', doLogout);
  const box = $('session-box');
  box.replaceChildren(
    h('span', { id: 'whoami', title: `districts: ${districts}` }, `${info.user} (${role})`),
    h('span', { class: 'districts muted' }, districts),
    h('span', { id: 'session-warning', class: 'warning', role: 'status', hidden: true }),
    stay,
    logout);
  box.hidden = false;

  const app = $('app');
  const modules = new Map();
  for (const n of names) {
    const m = FACTORIES[n](ctx);
    m.section.hidden = true;
    m.section.setAttribute('role', 'tabpanel');
    m.section.setAttribute('aria-labelledby', `nav-${n}`);
    modules.set(n, m);
    app.appendChild(m.section);
  }
  app.hidden = false;
  ui = { modules, buttons, current: null };

  // A reload keeps the tab; a fresh login starts on the role's first tab.
  const wanted = restore ? location.hash.replace(/^#/, '') : '';
  select(modules.has(wanted) ? wanted : names[0]);
  sessionTimer = setInterval(checkSessionClock, 5000);
}

async function doLogout() {
  const btn = $('logout');
  if (btn) btn.disabled = true;
  // Close the sockets first: nothing keeps streaming after a logout.
  if (ui && ui.current) ui.modules.get(ui.current).leave();
  let msg = '';
  try {
    await api('POST', '/api/logout');
  } catch (e) {
    if (e.status !== 401) msg = `logout: ${e.message}`;
  }
  if (!session.active) return; // a 401 already showed the login
  teardown();
  showLogin(msg, msg ? '' : `logged out at ${fmtTime(new Date())}`);
}

function wireLogin() {
  const form = $('login-form');
  const user = $('login-user');
  const pw = $('login-password');
  const totp = $('login-totp');
  const totpRow = $('login-totp-row');
  const submit = $('login-submit');
  const err = $('login-error');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    loginTried = true;
    setError(err, '');
    $('login-info').hidden = true;
    const body = { user: user.value.trim(), password: pw.value };
    const code = totp.value.replace(/\s+/g, '');
    if (code) body.totp = code;
    if (!body.user || !body.password) {
      setError(err, 'give your user name and password');
      return;
    }
    let info;
    try {
      info = await busy(submit, () => api('POST', '/api/login', body));
    } catch (e) {
      if (e.body && e.body.totp_required) {
        totpRow.hidden = false;
        totp.value = '';
        totp.focus();
      }
      setError(err, e.message);
      return;
    }
    if (!info || !info.user) {
      setError(err, 'the server gave an unexpected answer');
      return;
    }
    start(info);
  });
}

async function boot() {
  session.onUnauthorized = sessionEnded;
  wireLogin();
  window.addEventListener('pagehide', () => {
    if (ui && ui.current) ui.modules.get(ui.current).leave();
  });
  window.addEventListener('pageshow', (ev) => {
    if (ev.persisted && ui && ui.current) ui.modules.get(ui.current).enter();
  });
  // The login form is on screen from the start; someone may be typing (or
  // have submitted) before this answer comes: leave the form alone then.
  let info;
  try {
    info = await api('GET', '/api/session');
  } catch (e) {
    if (session.active || loginTried || e.status === 401) return;
    setError($('login-error'), `cannot check the session: ${e.message}`);
    return;
  }
  if (session.active || loginTried) return;
  if (info && info.user) start(info, true);
}

boot();
