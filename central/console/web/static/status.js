// Status (everyone): the districts' agents and their cameras, refreshed
// every 10 s while the tab is shown.

import { ops, h, errorBox, setError, arrayOf, fmtTime, fmtBytes, num } from './util.js';

const REFRESH_MS = 10000;

function camerasUpDown(cams) {
  let up = 0;
  let down = 0;
  for (const c of cams || []) {
    if (c.status === 'up') up++;
    else down++;
  }
  return { up, down };
}

export function createStatus() {
  let timer = 0;
  let shown = false;
  let inflight = false;

  const refresh = h('button', { id: 'status-refresh', type: 'button' }, 'Refresh');
  const updated = h('span', { class: 'muted', id: 'status-updated' });
  const err = errorBox('status-error');
  const agents = h('table', { id: 'status-agents', class: 'grid status' });
  const cameras = h('table', { id: 'status-cameras', class: 'grid status' });
  const section = h('section', { id: 'tab-status', class: 'tab', 'aria-label': 'Status' },
    h('div', { class: 'toolbar' }, h('h2', null, 'Districts'), refresh, updated),
    err,
    h('div', { class: 'scroll' }, agents),
    h('h2', null, 'Cameras'),
    h('div', { class: 'scroll' }, cameras));

  function render(list) {
    list.sort((a, b) => String(a.district).localeCompare(String(b.district)));
    const head = ['district', 'connected', 'last seen', 'clock offset ms', 'storage used / capacity', 'alarms', 'cameras up / down', 'agent'];
    const rows = list.map((a) => {
      const alarms = Array.isArray(a.alarms) ? a.alarms : [];
      const { up, down } = camerasUpDown(a.cameras);
      const used = num(a.storage_used_bytes);
      const cap = num(a.storage_capacity_bytes);
      const pct = cap > 0 ? Math.round((used / cap) * 100) : null;
      const offset = num(a.clock_offset_ms);
      return h('tr', { class: `agent-row${alarms.length ? ' has-alarm' : ''}${a.connected ? '' : ' disconnected'}`, 'data-district': a.district || '' },
        h('td', null, a.district || '?'),
        h('td', null, h('span', { class: `badge ${a.connected ? 'good' : 'bad'}` }, a.connected ? 'connected' : 'away')),
        h('td', { class: 'nowrap' }, fmtTime(a.last_seen)),
        h('td', { class: `num${Math.abs(offset) > 2000 ? ' warn' : ''}` }, String(offset)),
        h('td', { class: `nowrap${pct !== null && pct >= 90 ? ' warn' : ''}` },
          cap > 0 ? `${fmtBytes(used)} / ${fmtBytes(cap)} (${pct}%)` : fmtBytes(used)),
        h('td', { class: alarms.length ? 'alarm' : 'muted' },
          alarms.length ? h('ul', { class: 'alarms' }, alarms.map((x) => h('li', { class: 'alarm' },
            h('strong', null, x.code || 'alarm'), x.message ? `: ${x.message}` : '',
            x.since ? h('span', { class: 'muted' }, ` since ${fmtTime(x.since)}`) : null))) : 'none'),
        h('td', { class: down ? 'warn' : '' }, `${up} up / ${down} down`),
        h('td', { class: 'muted' }, [a.agent_version || '',
          num(a.spooled_segments) ? ` · ${num(a.spooled_segments)} spooled` : ''].join('')));
    });
    agents.replaceChildren(
      h('thead', null, h('tr', null, head.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', null, rows.length ? rows : h('tr', null, h('td', { colspan: String(head.length), class: 'empty' }, 'no districts enrolled'))));

    const camHead = ['camera', 'status', 'since', 'recording', 'detector', 'last error'];
    const camRows = [];
    for (const a of list) {
      for (const c of a.cameras || []) {
        const st = c.status || 'unknown';
        camRows.push(h('tr', { class: `camera-row state-${st}`, 'data-camera': `${a.district}/${c.id}` },
          h('td', { class: 'mono' }, `${a.district}/${c.id}`),
          h('td', null, h('span', { class: `badge ${st === 'up' ? 'good' : st === 'down' ? 'bad' : 'neutral'}` }, a.connected ? st : `${st} (as of last contact)`)),
          h('td', { class: 'nowrap' }, fmtTime(c.since)),
          h('td', null, c.recording ? 'recording' : ''),
          h('td', null, c.detector || ''),
          h('td', { class: c.last_error ? 'warn' : '' }, c.last_error || '')));
      }
    }
    cameras.replaceChildren(
      h('thead', null, h('tr', null, camHead.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', null, camRows.length ? camRows : h('tr', null, h('td', { colspan: String(camHead.length), class: 'empty' }, 'no cameras'))));
  }

  // The first read of the tab and a click on Refresh are the user's own
  // (and recorded, like `vigil agents list`); the periodic refresh is the
  // page's, and neither keeps the session alive nor fills the audit log.
  async function load(background) {
    if (inflight) return;
    inflight = true;
    try {
      const data = background === true
        ? await api('GET', '/api/agents', undefined, { background: true })
        : await ops('ListAgents', {});
      if (!shown) return;
      setError(err, '');
      render(arrayOf(data, 'agents'));
      updated.textContent = `updated ${fmtTime(new Date())}`;
    } catch (e) {
      if (shown) setError(err, `cannot read the districts: ${e.message}`);
    } finally {
      inflight = false;
    }
  }

  refresh.addEventListener('click', () => load(false));

  return {
    name: 'status',
    section,
    enter() {
      shown = true;
      load();
      clearInterval(timer);
      timer = setInterval(() => load(true), REFRESH_MS);
    },
    leave() {
      shown = false;
      clearInterval(timer);
      timer = 0;
    },
  };
}
