// Playback: search recorded segments of one camera, show them on a timeline
// and in a list, and open one only with the server's answer to a stated
// reason (or a hold id).

import {
  api, h, field, errorBox, setError, busy, arrayOf, sortById,
  parseTime, fmtTime, fmtSpan, fmtBytes, fmtDuration, fmtClock, fmtDate, zoneName,
  toLocalInput, fromLocalInput, num,
} from './util.js';

export function createPlayback() {
  let segments = [];
  let span = null; // {from: Date, to: Date} of the last search
  let selected = null;
  let searchSeq = 0;
  let camerasLoaded = false;

  const camera = h('select', { id: 'pb-camera', name: 'camera' });
  const from = h('input', { id: 'pb-from', name: 'from', type: 'datetime-local', step: '60' });
  const to = h('input', { id: 'pb-to', name: 'to', type: 'datetime-local', step: '60' });
  const search = h('button', { id: 'pb-search', type: 'submit', class: 'primary' }, 'Search');
  const last24 = h('button', { id: 'pb-last24', type: 'button', title: 'set the span to the last 24 hours' }, 'Last 24 h');
  const searchErr = errorBox('pb-search-error');
  const summary = h('p', { class: 'muted', id: 'pb-summary' });
  const form = h('form', { id: 'pb-form', class: 'toolbar wrap', novalidate: true },
    field('Camera', camera), field('From', from), field('To', to),
    h('div', { class: 'field actions' }, search, last24));

  const timeline = h('div', { id: 'pb-timeline', class: 'timeline', role: 'group', 'aria-label': 'segments over the searched span' });
  const axis = h('div', { class: 'timeline-axis' });
  const list = h('table', { id: 'pb-list', class: 'grid pb-list' });

  // The open dialog (a panel, not modal, so the list stays usable).
  const title = h('h3', { id: 'pb-open-title' }, 'Open recording');
  const segInfo = h('p', { class: 'muted', id: 'pb-open-info' });
  const reason = h('textarea', { id: 'pb-reason', name: 'reason', rows: '3', maxlength: '500', placeholder: 'why you need to see this footage (at least 10 characters)' });
  const hold = h('input', { id: 'pb-hold', name: 'hold', type: 'text', autocomplete: 'off', placeholder: 'hold id (instead of a reason)' });
  const play = h('button', { id: 'pb-play', type: 'submit', class: 'primary' }, 'Play');
  const cancel = h('button', { id: 'pb-cancel', type: 'button' }, 'Close');
  const playErr = errorBox('pb-error');
  const openForm = h('form', { novalidate: true },
    field('Reason', reason, 'recorded in the access log with your name'),
    field('Hold', hold, 'optional: a judicial hold that covers this footage'),
    h('div', { class: 'actions' }, play, cancel),
    playErr);
  const dialog = h('div', { id: 'pb-open', class: 'panel dialog', role: 'dialog', 'aria-labelledby': 'pb-open-title', hidden: true },
    title, segInfo, openForm);

  const video = h('video', { id: 'pb-video', controls: true, preload: 'auto', 'aria-label': 'recorded video' });
  video.muted = true;
  video.playsInline = true;
  const playerInfo = h('p', { class: 'muted', id: 'pb-player-info' });
  const player = h('div', { class: 'panel player', id: 'pb-player', hidden: true }, video, playerInfo);

  video.addEventListener('error', () => {
    if (!video.getAttribute('src')) return;
    const e = video.error;
    setError(playErr, `cannot play the recording${e && e.message ? `: ${e.message}` : ''} (the ticket may have expired: press Play again)`);
  });

  const section = h('section', { id: 'tab-playback', class: 'tab', 'aria-label': 'Playback' },
    form, searchErr,
    h('div', { class: 'panel' }, h('div', { class: 'timeline-wrap' }, timeline, axis), summary),
    h('div', { class: 'pb-layout' },
      h('div', { class: 'pb-left' }, list),
      h('div', { class: 'pb-right' }, dialog, player)));

  // The span defaults to the last 24 hours up to now; while the operator
  // has not changed it, "now" moves on (a segment recorded since the tab
  // opened must be found).
  let defaults = { from: '', to: '' };
  function setDefaultSpan() {
    const end = new Date(Math.ceil((Date.now() + 1000) / 60000) * 60000);
    to.value = toLocalInput(end);
    from.value = toLocalInput(new Date(end.getTime() - 24 * 3600 * 1000));
    defaults = { from: from.value, to: to.value };
  }
  function refreshDefaultSpan() {
    if (from.value === defaults.from && to.value === defaults.to) setDefaultSpan();
  }
  setDefaultSpan();
  last24.addEventListener('click', () => { setDefaultSpan(); });

  async function loadCameras() {
    setError(searchErr, '');
    let cams;
    try {
      cams = arrayOf(await api('GET', '/api/cameras'), 'cameras');
    } catch (e) {
      setError(searchErr, `cannot list cameras: ${e.message}`);
      return;
    }
    const keep = camera.value;
    const usable = cams.filter((c) => c && c.video && typeof c.id === 'string').sort(sortById);
    camera.replaceChildren(...usable.map((c) => h('option', { value: c.id }, c.id + (c.state && c.state !== 'up' ? ` (${c.state})` : ''))));
    if (usable.some((c) => c.id === keep)) camera.value = keep;
    if (!usable.length) {
      camera.appendChild(h('option', { value: '' }, 'no cameras'));
      setError(searchErr, 'you may not watch any camera');
    }
    camerasLoaded = true;
  }

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    doSearch();
  });

  async function doSearch() {
    setError(searchErr, '');
    refreshDefaultSpan();
    const cam = camera.value;
    const f = fromLocalInput(from.value);
    const t = fromLocalInput(to.value);
    if (!cam) { setError(searchErr, 'choose a camera'); return; }
    if (!f || !t) { setError(searchErr, 'give both a start and an end time'); return; }
    if (new Date(f) >= new Date(t)) { setError(searchErr, 'the start must be before the end'); return; }
    const seq = ++searchSeq;
    summary.textContent = 'searching…';
    let data;
    try {
      data = await busy(search, () => api('POST', '/api/recordings', { camera: cam, from: f, to: t }));
    } catch (e) {
      if (seq !== searchSeq) return;
      summary.textContent = '';
      setError(searchErr, e.message);
      return;
    }
    if (seq !== searchSeq) return;
    span = { from: new Date(f), to: new Date(t), camera: cam };
    segments = arrayOf(data, 'recordings').filter((s) => s && s.id)
      .sort((a, b) => (parseTime(a.start) || 0) - (parseTime(b.start) || 0));
    renderResults();
  }

  function segDuration(s) {
    const a = parseTime(s.start);
    const b = parseTime(s.end);
    return a && b ? (b - a) / 1000 : 0;
  }

  function heldBy(s) {
    return Array.isArray(s.held_by) ? s.held_by.filter((x) => typeof x === 'string') : [];
  }

  function isHeld(s) {
    return !!s.held || heldBy(s).length > 0;
  }

  function renderResults() {
    selected = null;
    const total = segments.reduce((acc, s) => acc + segDuration(s), 0);
    const bytes = segments.reduce((acc, s) => acc + num(s.bytes), 0);
    const held = segments.filter(isHeld).length;
    summary.textContent = segments.length
      ? `${segments.length} segment${segments.length === 1 ? '' : 's'}, ${fmtDuration(total)} of video, ${fmtBytes(bytes)}${held ? `, ${held} held` : ''} — ${span.camera}, ${fmtSpan(span.from, span.to)}`
      : `no recordings of ${span.camera} in ${fmtSpan(span.from, span.to)}`;
    renderTimeline();
    renderList();
  }

  function renderTimeline() {
    timeline.replaceChildren();
    axis.replaceChildren();
    if (!span) return;
    const t0 = span.from.getTime();
    const t1 = span.to.getTime();
    const width = t1 - t0;
    if (width <= 0) return;
    for (let i = 0; i <= 4; i++) {
      const d = new Date(t0 + (width * i) / 4);
      const label = h('span', { class: 'tick' }, `${i === 0 || i === 4 ? fmtDate(d) + ' ' : ''}${fmtClock(d).slice(0, 5)}${i === 4 ? ' ' + zoneName(d) : ''}`);
      label.style.left = `${(i * 100) / 4}%`;
      if (i === 4) label.classList.add('tick-end');
      if (i === 0) label.classList.add('tick-start');
      axis.appendChild(label);
    }
    for (const s of segments) {
      const a = parseTime(s.start);
      const b = parseTime(s.end) || a;
      if (!a) continue;
      const l = Math.max(0, Math.min(100, ((a.getTime() - t0) / width) * 100));
      const r = Math.max(0, Math.min(100, ((b.getTime() - t0) / width) * 100));
      const block = h('button', {
        type: 'button',
        class: `tl-seg${isHeld(s) ? ' held' : ''}`,
        'data-id': s.id,
        tabindex: '-1',
        title: `${fmtSpan(a, b)}${isHeld(s) ? ' — held' : ''}`,
        'aria-label': `segment ${fmtSpan(a, b)}`,
      });
      block.style.left = `${l}%`;
      block.style.width = `${Math.max(r - l, 0.15)}%`;
      block.addEventListener('click', () => openSegment(s));
      timeline.appendChild(block);
    }
  }

  function renderList() {
    const rows = segments.map((s) => {
      const ids = heldBy(s);
      const row = h('tr', { class: `pb-segment${isHeld(s) ? ' held' : ''}`, 'data-id': s.id, tabindex: '0' },
        h('td', null, fmtSpan(s.start, s.end)),
        h('td', { class: 'num' }, fmtDuration(segDuration(s))),
        h('td', { class: 'num' }, fmtBytes(s.bytes)),
        h('td', null, s.codec || ''),
        h('td', null, isHeld(s) ? h('span', { class: 'badge held', title: 'a judicial hold keeps this segment' }, ids.length ? `held: ${ids.join(', ')}` : 'held') : ''));
      row.addEventListener('click', () => openSegment(s));
      row.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); openSegment(s); }
      });
      return row;
    });
    list.replaceChildren(
      h('thead', null, h('tr', null, ['time', 'duration', 'size', 'codec', 'hold'].map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', null, rows.length ? rows : h('tr', null, h('td', { colspan: '5', class: 'empty' }, span ? 'no segments' : 'search to list segments'))));
  }

  function markSelected() {
    for (const r of list.querySelectorAll('.pb-segment')) r.classList.toggle('selected', !!selected && r.dataset.id === selected.id);
    for (const b of timeline.querySelectorAll('.tl-seg')) b.classList.toggle('selected', !!selected && b.dataset.id === selected.id);
  }

  function openSegment(s) {
    selected = s;
    markSelected();
    setError(playErr, '');
    const ids = heldBy(s);
    title.textContent = `Open recording of ${s.district && s.camera ? `${s.district}/${s.camera}` : span.camera}`;
    segInfo.textContent = `${fmtSpan(s.start, s.end)} · ${fmtDuration(segDuration(s))} · ${fmtBytes(s.bytes)}${ids.length ? ` · held by ${ids.join(', ')}` : ''}`;
    if (!hold.value && ids.length === 1) hold.placeholder = `hold id, e.g. ${ids[0]}`;
    dialog.hidden = false;
    reason.focus();
  }

  cancel.addEventListener('click', () => {
    dialog.hidden = true;
    selected = null;
    markSelected();
  });

  openForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!selected) return;
    setError(playErr, '');
    const s = selected;
    const cam = s.district && s.camera ? `${s.district}/${s.camera}` : span.camera;
    const body = { id: s.id, camera: cam, reason: reason.value.trim(), hold: hold.value.trim() };
    stopVideo();
    let res;
    try {
      res = await busy(play, () => api('POST', '/api/recordings/open', body));
    } catch (e) {
      setError(playErr, e.message);
      return;
    }
    if (!res || typeof res.url !== 'string' || !res.url.startsWith('/')) {
      setError(playErr, 'the server gave no playable address');
      return;
    }
    player.hidden = false;
    playerInfo.textContent = `${cam}, ${fmtSpan(s.start, s.end)}${res.expires ? ` — access expires ${fmtTime(res.expires)}` : ''}`;
    video.src = res.url;
    video.play().catch((e) => {
      if (e && e.name === 'AbortError') return;
      setError(playErr, `cannot play the recording: ${e && e.message ? e.message : e}`);
    });
  });

  function stopVideo() {
    if (video.getAttribute('src')) {
      video.pause();
      video.removeAttribute('src');
      try { video.load(); } catch (e) { /* ignore */ }
    }
  }

  renderList();
  loadCameras(); // early, so the list is ready when the tab opens

  return {
    name: 'playback',
    section,
    enter() {
      refreshDefaultSpan();
      loadCameras();
    },
    leave() {
      video.pause();
    },
    destroy() {
      stopVideo();
    },
    isLoaded() { return camerasLoaded; },
  };
}
