// Live wall: one WebSocket per tile to /api/live, fMP4 fed to Media Source
// Extensions. Frames: byte 0 kind (0 init, 1 fragment), bytes 1..8 the
// agent's receive time in µs (big endian), then the fMP4 bytes.

import { api, h, session, setError, errorBox, sortById, arrayOf } from './util.js';

const DEFAULT_MIME = 'video/mp4; codecs="avc1.42E01E"';
const MAX_LATENCIES = 300;
const LIVE_EDGE_GAP = 0.5;   // s behind buffered end before jumping
const LIVE_EDGE_BACK = 0.1;  // s behind buffered end after the jump
const KEEP_BEHIND = 30;      // s of buffer kept behind currentTime
const TRIM_SLACK = 5;        // trim only once this much extra piles up
const STALL_MS = 8000;       // no media for this long while live: say so
const MAX_QUEUE = 600;       // fragments waiting for the SourceBuffer

function isHEVC(codec, mime) {
  return /\b(hvc1|hev1|hevc|h265)/i.test(String(codec || '') + ' ' + String(mime || ''));
}

function wsURL(camera, quality) {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const q = new URLSearchParams({ camera, quality, csrf: session.csrf });
  return `${proto}//${location.host}/api/live?${q.toString()}`;
}

class LiveTile {
  constructor(cam, quality, hooks) {
    this.cam = cam;
    this.quality = quality;
    this.hooks = hooks;
    this.stopped = true;
    this.ws = null;
    this.timer = 0;
    this.watchdog = 0;
    this.backoff = 1000;
    this.mime = '';
    this.unsupported = false;
    this.terminal = false;
    this.gen = 0;
    this.ms = null;
    this.sb = null;
    this.queue = [];
    this.played = false;
    this.lastMedia = 0;
    this.checkedSession = false;
    this.opened = false;

    const v = h('video', { 'aria-label': `live video of camera ${cam.id}` });
    v.muted = true;
    v.autoplay = true;
    v.playsInline = true;
    v.disablePictureInPicture = true;
    v.addEventListener('error', () => {
      if (this.stopped || !this.ms) return;
      const err = v.error;
      this.mediaFailed(err && err.message ? `video error: ${err.message}` : 'video error');
    });
    this.video = v;

    this.statusEl = h('div', { class: 'tile-status', role: 'status' });
    this.detailEl = h('div', { class: 'tile-detail' });
    this.viewersEl = h('div', { class: 'tile-viewers' });
    this.latEl = h('span', { class: 'tile-latency', title: 'glass-to-glass latency from the agent' });
    this.retryBtn = h('button', { type: 'button', class: 'tile-retry', hidden: true }, 'Reconnect');
    this.retryBtn.addEventListener('click', (ev) => { ev.stopPropagation(); this.start(); });
    this.retryBtn.addEventListener('dblclick', (ev) => ev.stopPropagation());

    const el = h('div', {
      class: 'tile',
      'data-camera': cam.id,
      'data-state': 'connecting',
      'data-quality': quality,
      tabindex: '0',
      role: 'group',
      'aria-label': `camera ${cam.id}`,
    },
    v,
    h('div', { class: 'tile-top' },
      h('span', { class: 'tile-name' }, cam.id),
      h('span', { class: 'tile-quality' }, quality === 'main' ? 'main' : ''),
      this.latEl),
    h('div', { class: 'tile-bottom' },
      h('div', { class: 'tile-line' }, this.statusEl, this.retryBtn),
      this.detailEl,
      this.viewersEl));
    el.latencies = [];
    this.el = el;
    if (cam.state === 'down') this.setStatus('down', 'camera down');
    else this.setStatus('connecting', 'connecting…');
  }

  setStatus(state, text, detail) {
    this.el.dataset.state = state;
    this.statusEl.textContent = text;
    this.detailEl.textContent = detail || '';
    this.retryBtn.hidden = !(state === 'ended' || (state === 'error' && this.terminal));
  }

  start() {
    this.stopped = false;
    this.unsupported = false;
    this.terminal = false;
    this.backoff = 1000;
    clearInterval(this.watchdog);
    this.watchdog = setInterval(() => this.tick(), 1000);
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.watchdog);
    this.closeSocket(1000, 'closed by the page');
    this.teardownMedia(true);
  }

  closeSocket(code, reason) {
    const ws = this.ws;
    this.ws = null;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try { ws.close(code, reason); } catch (e) { /* already closed */ }
  }

  connect() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.closeSocket(1000, 'reconnect');
    let ws;
    try {
      ws = new WebSocket(wsURL(this.cam.id, this.quality));
    } catch (e) {
      this.reconnectLater('cannot open the connection');
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.opened = false;
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.opened = true;
      if (this.el.dataset.state !== 'reconnecting' && this.el.dataset.state !== 'down') this.setStatus('connecting', 'starting…');
    };
    ws.onmessage = (ev) => {
      if (ws !== this.ws) return;
      if (typeof ev.data === 'string') this.onText(ev.data);
      else this.onBinary(ev.data);
    };
    ws.onerror = () => { /* a close event follows */ };
    ws.onclose = (ev) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.onClose(ev);
    };
  }

  async onClose(ev) {
    if (this.stopped) return;
    // A refused handshake (the server answers 401/403/404 before the
    // upgrade) reaches the page as a bare 1006: ask the same URL over
    // plain HTTP to learn why, and stop retrying what will never work.
    if (!this.opened && ev.code === 1006 && !this.unsupported) {
      const verdict = await this.probe();
      if (this.stopped || verdict) return;
    }
    switch (ev.code) {
      case 4401:
        // The session may be gone; check once (the csrf may have rotated).
        this.teardownMedia(true);
        if (!this.checkedSession) {
          this.checkedSession = true;
          this.setStatus('connecting', 'checking session…');
          try {
            const s = await api('GET', '/api/session');
            if (s && s.csrf) session.csrf = s.csrf;
            if (!this.stopped) this.connect();
          } catch (e) {
            if (!this.stopped) { this.terminal = true; this.setStatus('forbidden', 'session ended', e.message); }
            if (e.status === 401 && this.hooks.onUnauthorized) this.hooks.onUnauthorized();
          }
          return;
        }
        this.terminal = true;
        this.setStatus('forbidden', 'session ended');
        if (this.hooks.onUnauthorized) this.hooks.onUnauthorized();
        return;
      case 4403:
        this.terminal = true;
        this.teardownMedia(true);
        this.setStatus('forbidden', 'forbidden', ev.reason || 'you may not watch this camera');
        return;
      case 4404:
        this.terminal = true;
        this.teardownMedia(true);
        this.setStatus('error', 'unknown camera', ev.reason || '');
        return;
      default:
    }
    if (this.unsupported) return;
    if (ev.code === 1000) {
      this.teardownMedia(true);
      this.setStatus('ended', 'stream ended', ev.reason || '');
      return;
    }
    const why = ev.code === 4503 ? 'audit log unavailable: viewing refused until it is back'
      : ev.reason ? ev.reason
        : ev.code === 1006 ? 'connection lost' : `connection closed (${ev.code})`;
    this.reconnectLater(why);
  }

  // probe returns true when it settled the tile's fate (no retry).
  async probe() {
    const q = new URLSearchParams({ camera: this.cam.id, quality: this.quality, csrf: session.csrf });
    try {
      await api('GET', `/api/live?${q.toString()}`);
    } catch (e) {
      if (this.stopped) return true;
      switch (e.status) {
        case 401:
          this.terminal = true;
          this.teardownMedia(true);
          this.setStatus('forbidden', 'session ended');
          if (this.hooks.onUnauthorized) this.hooks.onUnauthorized();
          return true;
        case 403:
          this.terminal = true;
          this.teardownMedia(true);
          this.setStatus('forbidden', 'forbidden', e.message);
          return true;
        case 404:
          this.terminal = true;
          this.teardownMedia(true);
          this.setStatus('error', 'unknown camera', e.message);
          return true;
        case 400:
          this.terminal = true;
          this.teardownMedia(true);
          this.setStatus('error', 'error', e.message);
          return true;
        default:
          if (e.status === 503 || e.status >= 500) { this.reconnectLater(e.message); return true; }
      }
    }
    return false; // authorised: the failure was transient
  }

  reconnectLater(why) {
    if (this.stopped) return;
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, 10000);
    this.setStatus('reconnecting', 'reconnecting…', why ? `${why}; retry in ${Math.round(delay / 1000)} s` : '');
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  onText(text) {
    let m;
    try { m = JSON.parse(text); } catch (e) { return; }
    if (!m || typeof m !== 'object') return;
    if (m.type === 'status') this.onStatus(m);
    else if (m.type === 'codec') this.onCodec(m);
    else if (m.type === 'viewers') this.onViewers(Array.isArray(m.users) ? m.users : []);
  }

  onStatus(m) {
    const msg = typeof m.message === 'string' ? m.message : '';
    switch (m.state) {
      case 'starting':
        this.setStatus('connecting', 'starting…', msg);
        break;
      case 'live':
        this.backoff = 1000;
        this.checkedSession = false;
        this.setStatus('live', 'live', msg === 'live' ? '' : msg);
        break;
      case 'stalled':
        this.setStatus('stalled', 'no picture', msg || 'the camera sends nothing');
        break;
      case 'reconnecting':
        this.setStatus('reconnecting', 'reconnecting…', msg || 'the district is away; waiting for it');
        break;
      case 'ended':
        this.setStatus('ended', 'stream ended', msg);
        break;
      case 'error':
        if (/\bdown\b|unreachable|offline/i.test(msg)) this.setStatus('down', 'camera down', msg);
        else this.setStatus('error', 'error', msg || 'the stream failed');
        break;
      default:
        if (msg) this.detailEl.textContent = msg;
    }
  }

  onCodec(m) {
    const codec = typeof m.codec === 'string' ? m.codec : '';
    const mime = typeof m.mime === 'string' && m.mime ? m.mime : (codec ? `video/mp4; codecs="${codec}"` : DEFAULT_MIME);
    const MS = window.MediaSource;
    const ok = !!MS && typeof MS.isTypeSupported === 'function' && MS.isTypeSupported(mime);
    if (!ok) {
      this.unsupported = true;
      this.terminal = true;
      const text = isHEVC(codec, mime) ? 'H.265 video: this browser cannot play it'
        : !MS ? 'this browser cannot play live video (no Media Source Extensions)'
          : `video format ${codec || mime}: this browser cannot play it`;
      this.teardownMedia(true);
      this.setStatus('unsupported', text, codec);
      this.closeSocket(1000, 'codec not supported');
      return;
    }
    this.mime = mime;
    if (m.width && m.height) this.el.dataset.size = `${m.width}x${m.height}`;
  }

  onViewers(users) {
    const me = session.info ? session.info.user : '';
    const others = [...new Set(users.filter((u) => typeof u === 'string' && u && u !== me))];
    this.viewersEl.textContent = others.length ? `also watching: ${others.join(', ')}` : '';
  }

  onBinary(buf) {
    if (!(buf instanceof ArrayBuffer) || buf.byteLength < 9) return;
    const dv = new DataView(buf);
    const kind = dv.getUint8(0);
    const agentUs = Number(dv.getBigInt64(1, false));
    const payload = new Uint8Array(buf, 9);
    session.lastActivity = Date.now();
    if (kind === 1) {
      const lat = (Date.now() * 1000 - agentUs) / 1000;
      const arr = this.el.latencies;
      arr.push(lat);
      if (arr.length > MAX_LATENCIES) arr.splice(0, arr.length - MAX_LATENCIES);
    }
    if (this.unsupported) return;
    this.lastMedia = performance.now();
    if (kind === 0) {
      this.newMedia(payload);
      if (this.el.dataset.state !== 'live') this.setStatus('live', 'live');
    } else if (kind === 1) {
      if (!this.ms) return; // no init yet: nothing can decode it
      if (this.queue.length >= MAX_QUEUE) {
        // Hopelessly behind: start over from the next init.
        this.mediaFailed('video fell behind');
        return;
      }
      this.queue.push(payload);
      if (this.el.dataset.state === 'stalled') this.setStatus('live', 'live');
      this.pump();
    }
  }

  newMedia(init) {
    this.teardownMedia(false);
    const gen = ++this.gen;
    const MS = window.MediaSource;
    if (!MS) {
      this.unsupported = true;
      this.setStatus('unsupported', 'this browser cannot play live video (no Media Source Extensions)');
      this.closeSocket(1000, 'no MSE');
      return;
    }
    const ms = new MS();
    this.ms = ms;
    this.queue = [init];
    this.played = false;
    const url = URL.createObjectURL(ms);
    ms.addEventListener('sourceopen', () => {
      URL.revokeObjectURL(url);
      if (gen !== this.gen) return;
      let sb;
      try {
        sb = ms.addSourceBuffer(this.mime || DEFAULT_MIME);
        sb.mode = 'segments';
      } catch (e) {
        if (e && e.name === 'NotSupportedError') {
          this.unsupported = true;
          this.terminal = true;
          this.setStatus('unsupported', isHEVC('', this.mime) ? 'H.265 video: this browser cannot play it'
            : 'this browser cannot play this video format', this.mime);
          this.closeSocket(1000, 'codec not supported');
          this.teardownMedia(true);
          return;
        }
        this.mediaFailed(`cannot start the video: ${e.message}`);
        return;
      }
      this.sb = sb;
      sb.addEventListener('updateend', () => { if (gen === this.gen) this.afterUpdate(); });
      sb.addEventListener('error', () => { if (gen === this.gen) this.mediaFailed('the browser could not decode the video'); });
      this.pump();
    }, { once: true });
    this.video.src = url;
  }

  teardownMedia(clearVideo) {
    this.gen++;
    const ms = this.ms;
    this.ms = null;
    this.sb = null;
    this.queue = [];
    if (ms && ms.readyState === 'open') {
      try { ms.endOfStream(); } catch (e) { /* ignore */ }
    }
    if (clearVideo) {
      this.video.removeAttribute('src');
      try { this.video.load(); } catch (e) { /* ignore */ }
    }
  }

  // mediaFailed drops the media pipeline and reconnects for a fresh init.
  mediaFailed(why) {
    if (this.stopped) return;
    this.closeSocket(1000, 'media error');
    this.teardownMedia(true);
    this.reconnectLater(why);
  }

  pump() {
    const sb = this.sb;
    const ms = this.ms;
    if (!sb || !ms || ms.readyState !== 'open' || sb.updating) return;
    const v = this.video;
    try {
      const b = sb.buffered;
      if (b.length && v.currentTime - b.start(0) > KEEP_BEHIND + TRIM_SLACK) {
        sb.remove(b.start(0), v.currentTime - KEEP_BEHIND);
        return; // updateend comes back here
      }
    } catch (e) { /* fall through to the append */ }
    const chunk = this.queue.shift();
    if (!chunk) return;
    try {
      sb.appendBuffer(chunk);
    } catch (e) {
      if (e && e.name === 'QuotaExceededError') {
        this.queue.unshift(chunk);
        try {
          const b = sb.buffered;
          const end = Math.max(0, v.currentTime - 2);
          if (b.length && end > b.start(0)) sb.remove(b.start(0), end);
          else this.mediaFailed('video buffer full');
        } catch (e2) { this.mediaFailed('video buffer full'); }
        return;
      }
      this.mediaFailed(`video error: ${e.message}`);
    }
  }

  afterUpdate() {
    const sb = this.sb;
    if (!sb) return;
    const v = this.video;
    try {
      const b = sb.buffered;
      if (b.length) {
        const end = b.end(b.length - 1);
        if (end - v.currentTime > LIVE_EDGE_GAP) {
          v.currentTime = Math.max(b.start(b.length - 1), end - LIVE_EDGE_BACK);
        }
        if (this.played && v.paused) v.play().catch(() => {});
      }
    } catch (e) { /* the buffer went away: a new init is coming */ }
    if (!this.played) {
      this.played = true;
      v.play().catch(() => {});
    }
    this.pump();
  }

  tick() {
    if (this.stopped) return;
    const arr = this.el.latencies;
    if (arr.length) {
      const recent = arr.slice(-15).sort((a, b) => a - b);
      const med = recent[Math.floor(recent.length / 2)];
      this.latEl.textContent = `${Math.round(med)} ms`;
      this.latEl.classList.toggle('slow', med > 1500);
    }
    if (this.el.dataset.state === 'live' && this.lastMedia && performance.now() - this.lastMedia > STALL_MS) {
      const s = Math.round((performance.now() - this.lastMedia) / 1000);
      this.el.dataset.state = 'stalled';
      this.statusEl.textContent = 'no picture';
      this.detailEl.textContent = `nothing received for ${s} s`;
    } else if (this.el.dataset.state === 'stalled') {
      const s = Math.round((performance.now() - this.lastMedia) / 1000);
      this.detailEl.textContent = `nothing received for ${s} s`;
    }
  }
}

export function createLive(ctx) {
  let layout = 4;
  let page = 0;
  let enlarged = null;
  let cameras = [];
  let tiles = [];
  let active = false;
  let loadSeq = 0;

  const err = errorBox('live-error');
  const layoutButtons = [1, 4, 9, 16].map((n) => {
    const b = h('button', { type: 'button', class: 'seg-btn', 'data-layout': String(n), 'aria-pressed': n === layout ? 'true' : 'false', title: `${n} camera${n > 1 ? 's' : ''}` },
      n === 1 ? '1' : `${Math.sqrt(n)}×${Math.sqrt(n)}`);
    b.addEventListener('click', () => setLayout(n));
    return b;
  });
  const back = h('button', { type: 'button', id: 'wall-back', hidden: true }, '← Back to the wall');
  back.addEventListener('click', () => { enlarged = null; render(); });
  const prev = h('button', { type: 'button', id: 'wall-prev', 'aria-label': 'previous page' }, '‹');
  const next = h('button', { type: 'button', id: 'wall-next', 'aria-label': 'next page' }, '›');
  const pageLabel = h('span', { class: 'muted', id: 'wall-page' });
  const pager = h('span', { class: 'pager', hidden: true }, prev, pageLabel, next);
  prev.addEventListener('click', () => { page--; render(); });
  next.addEventListener('click', () => { page++; render(); });
  const reload = h('button', { type: 'button', id: 'wall-reload', title: 'reload the camera list' }, 'Reload');
  reload.addEventListener('click', () => load());
  const info = h('span', { class: 'muted', id: 'wall-info' });
  const layoutGroup = h('span', { class: 'seg-group', role: 'group', 'aria-label': 'layout' }, layoutButtons);

  const wall = h('div', { id: 'wall', class: 'wall layout-4', 'aria-live': 'off' });
  const section = h('section', { id: 'tab-live', class: 'tab', 'aria-label': 'Live' },
    h('div', { class: 'toolbar' }, h('span', { class: 'label' }, 'Layout'), layoutGroup, pager, back, reload, info),
    err,
    wall);

  function stopTiles() {
    for (const t of tiles) t.stop();
    tiles = [];
  }

  function setLayout(n) {
    layout = n;
    enlarged = null;
    page = 0;
    render();
  }

  async function load() {
    const seq = ++loadSeq;
    setError(err, '');
    info.textContent = 'loading cameras…';
    let list;
    try {
      list = arrayOf(await api('GET', '/api/cameras'), 'cameras');
    } catch (e) {
      if (seq !== loadSeq || !active) return;
      info.textContent = '';
      setError(err, `cannot list cameras: ${e.message}`);
      return;
    }
    if (seq !== loadSeq || !active) return;
    cameras = list.filter((c) => c && c.video && typeof c.id === 'string').sort(sortById);
    if (enlarged && !cameras.some((c) => c.id === enlarged)) enlarged = null;
    render();
  }

  function makeTile(cam, quality) {
    const t = new LiveTile(cam, quality, { onUnauthorized: ctx.onUnauthorized });
    t.el.addEventListener('dblclick', () => {
      enlarged = enlarged ? null : cam.id;
      render();
    });
    t.el.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && ev.target === t.el) { enlarged = enlarged ? null : cam.id; render(); }
      else if (ev.key === 'Escape' && enlarged) { enlarged = null; render(); }
    });
    tiles.push(t);
    return t;
  }

  function render() {
    stopTiles();
    wall.replaceChildren();
    for (const b of layoutButtons) b.setAttribute('aria-pressed', !enlarged && b.dataset.layout === String(layout) ? 'true' : 'false');
    back.hidden = !enlarged;
    const up = cameras.filter((c) => c.state === 'up').length;
    info.textContent = cameras.length ? `${cameras.length} camera${cameras.length === 1 ? '' : 's'}, ${up} up` : '';
    if (!cameras.length) {
      wall.className = 'wall layout-1';
      pager.hidden = true;
      wall.appendChild(h('p', { class: 'empty' }, 'No cameras you may watch.'));
      return;
    }
    if (enlarged) {
      const cam = cameras.find((c) => c.id === enlarged);
      wall.className = 'wall layout-1 enlarged';
      pager.hidden = true;
      const t = makeTile(cam, 'main');
      wall.appendChild(t.el);
      t.start();
      t.el.focus({ preventScroll: true });
      return;
    }
    const pages = Math.max(1, Math.ceil(cameras.length / layout));
    page = Math.min(Math.max(0, page), pages - 1);
    pager.hidden = pages <= 1;
    pageLabel.textContent = `page ${page + 1} / ${pages}`;
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
    wall.className = `wall layout-${layout}`;
    const shown = cameras.slice(page * layout, page * layout + layout);
    for (const cam of shown) wall.appendChild(makeTile(cam, 'sub').el);
    for (let i = shown.length; i < layout && layout > 1 && cameras.length > 1; i++) {
      wall.appendChild(h('div', { class: 'tile-empty', 'aria-hidden': 'true' }));
    }
    for (const t of tiles) t.start();
  }

  return {
    name: 'live',
    section,
    enter() {
      active = true;
      load();
    },
    leave() {
      active = false;
      loadSeq++;
      stopTiles();
      wall.replaceChildren();
    },
    liveCount() { return tiles.length; },
  };
}
