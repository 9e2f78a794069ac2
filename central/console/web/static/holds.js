// Holds (officers): list, place, release with a stated reason.

import {
  api, ops, h, field, errorBox, setError, busy, arrayOf, sortById,
  fmtTime, fmtSpan, toLocalInput, fromLocalInput, splitList, num,
} from './util.js';

export function createHolds() {
  let releaseRow = null;

  const all = h('input', { id: 'holds-all', type: 'checkbox' });
  const refresh = h('button', { id: 'holds-refresh', type: 'button' }, 'Refresh');
  const listErr = errorBox('holds-error');
  const list = h('div', { id: 'holds-list', class: 'holds-list' });
  const updated = h('span', { class: 'muted' });

  const cameras = h('input', { id: 'hold-cameras', name: 'cameras', type: 'text', autocomplete: 'off', placeholder: 'district/camera, district/camera' });
  const from = h('input', { id: 'hold-from', name: 'from', type: 'datetime-local', step: '1' });
  const to = h('input', { id: 'hold-to', name: 'to', type: 'datetime-local', step: '1' });
  const authority = h('input', { id: 'hold-authority', name: 'authority', type: 'text', placeholder: 'e.g. Procura della Repubblica di …' });
  const caseRef = h('input', { id: 'hold-case', name: 'case', type: 'text', placeholder: 'case reference' });
  const reason = h('textarea', { id: 'hold-reason', name: 'reason', rows: '2' });
  const submit = h('button', { id: 'hold-submit', type: 'submit', class: 'primary' }, 'Place hold');
  const formErr = errorBox('hold-error');
  const formOk = h('p', { class: 'ok', id: 'hold-ok', role: 'status', hidden: true });
  const camHint = h('span', { class: 'hint', id: 'hold-cameras-hint' });
  const form = h('form', { id: 'hold-form', class: 'panel form-grid', novalidate: true },
    h('h3', null, 'Place a judicial hold'),
    h('div', { class: 'field wide' }, h('label', { for: 'hold-cameras' }, 'Cameras'), cameras, camHint),
    field('From', from), field('To', to),
    field('Authority', authority), field('Case', caseRef),
    h('div', { class: 'field wide' }, h('label', { for: 'hold-reason' }, 'Reason'), reason),
    h('div', { class: 'actions wide' }, submit),
    formErr, formOk);

  const section = h('section', { id: 'tab-holds', class: 'tab', 'aria-label': 'Holds' },
    h('div', { class: 'toolbar' },
      h('h2', null, 'Holds'),
      h('span', { class: 'check' }, all, h('label', { for: 'holds-all' }, 'include released')),
      refresh, updated),
    listErr, list, form);

  function defaults() {
    const now = new Date();
    now.setSeconds(0, 0);
    if (!to.value) to.value = toLocalInput(now);
    if (!from.value) from.value = toLocalInput(new Date(now.getTime() - 3600 * 1000));
  }

  async function load() {
    setError(listErr, '');
    let data;
    try {
      data = await busy(refresh, () => ops('ListHolds', all.checked ? { all: true } : {}));
    } catch (e) {
      setError(listErr, `cannot list holds: ${e.message}`);
      return;
    }
    render(arrayOf(data, 'holds'));
    updated.textContent = `updated ${fmtTime(new Date())}`;
  }

  function agentCell(agents) {
    if (!Array.isArray(agents) || !agents.length) return h('span', { class: 'muted' }, '—');
    return h('ul', { class: 'agents' }, agents.map((a) => {
      const st = a.state || 'pending';
      return h('li', { class: `agent-${st}` },
        h('span', { class: `badge state-${st}` }, `${a.district || '?'}: ${st}`),
        ` ${num(a.segments)} segment${num(a.segments) === 1 ? '' : 's'}`,
        a.updated_at ? h('span', { class: 'muted' }, ` · ${fmtTime(a.updated_at)}`) : null,
        a.error ? h('div', { class: 'warn' }, `refused: ${a.error}`) : null,
        st === 'pending' && a.first_expiry
          ? h('div', { class: 'warn' }, `footage expires from ${fmtTime(a.first_expiry)} unless the district comes back`) : null);
    }));
  }

  function render(holds) {
    releaseRow = null;
    holds.sort((a, b) => {
      if ((a.state === 'active') !== (b.state === 'active')) return a.state === 'active' ? -1 : 1;
      return String(b.placed_at || '').localeCompare(String(a.placed_at || '')) || sortById(a, b);
    });
    const rows = [];
    for (const x of holds) {
      const active = x.state !== 'released';
      const rel = active ? h('button', { type: 'button', class: 'hold-release danger', 'data-id': x.id }, 'Release…') : null;
      const row = h('tr', { class: `hold-row state-${x.state || 'active'}`, 'data-id': x.id },
        h('td', { class: 'mono' }, x.id),
        h('td', null, h('span', { class: `badge state-${x.state || 'active'}` }, x.state || 'active')),
        h('td', null, x.authority || '', h('div', { class: 'muted' }, x.case_ref ? `case ${x.case_ref}` : '')),
        h('td', { class: 'mono' }, (x.cameras || []).join(', ')),
        h('td', null, fmtSpan(x.from, x.to)),
        h('td', null, x.reason || '',
          h('div', { class: 'muted' }, `by ${x.officer || '?'} ${fmtTime(x.placed_at)}`),
          x.released_at ? h('div', { class: 'muted' }, `released by ${x.released_by || '?'} ${fmtTime(x.released_at)}${x.release_reason ? `: ${x.release_reason}` : ''}`) : null),
        h('td', null, agentCell(x.agents)),
        h('td', null, rel));
      rows.push(row);
      if (rel) rel.addEventListener('click', () => openRelease(x, row));
    }
    const t = h('table', { class: 'grid holds' },
      h('thead', null, h('tr', null, ['id', 'state', 'authority / case', 'cameras', 'span', 'reason', 'districts', ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', null, rows.length ? rows : h('tr', null, h('td', { colspan: '8', class: 'empty' }, all.checked ? 'no holds' : 'no active holds'))));
    list.replaceChildren(t);
  }

  function openRelease(x, row) {
    if (releaseRow) releaseRow.remove();
    const r = h('textarea', { id: 'release-reason', name: 'release-reason', rows: '2', placeholder: 'why the footage no longer needs preserving' });
    const ok = h('button', { id: 'release-confirm', type: 'submit', class: 'danger' }, `Release ${x.id}`);
    const no = h('button', { id: 'release-cancel', type: 'button' }, 'Cancel');
    const e = errorBox('release-error');
    const f = h('form', { class: 'release-form', id: 'release-form', 'data-id': x.id, novalidate: true },
      h('label', { for: 'release-reason' }, `Reason for releasing hold ${x.id} (the footage then expires normally)`),
      r, h('div', { class: 'actions' }, ok, no), e);
    const tr = h('tr', { class: 'release-row' }, h('td', { colspan: '8' }, f));
    row.after(tr);
    releaseRow = tr;
    r.focus();
    no.addEventListener('click', () => { tr.remove(); releaseRow = null; });
    f.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      setError(e, '');
      const why = r.value.trim();
      if (!why) { setError(e, 'state the reason for the release'); return; }
      try {
        await busy(ok, () => ops('ReleaseHold', { id: x.id, reason: why }));
      } catch (err) {
        setError(e, err.message);
        return;
      }
      tr.remove();
      releaseRow = null;
      load();
    });
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    setError(formErr, '');
    formOk.hidden = true;
    const cams = splitList(cameras.value);
    const f = fromLocalInput(from.value);
    const t = fromLocalInput(to.value);
    if (!cams.length) { setError(formErr, 'name at least one camera as district/camera'); return; }
    if (!f || !t) { setError(formErr, 'give both a start and an end time'); return; }
    const req = {
      cameras: cams, from: f, to: t,
      authority: authority.value.trim(), case_ref: caseRef.value.trim(), reason: reason.value.trim(),
    };
    let res;
    try {
      res = await busy(submit, () => ops('PlaceHold', req));
    } catch (e) {
      setError(formErr, e.message);
      return;
    }
    const id = res && res.hold && res.hold.id ? res.hold.id : '';
    formOk.textContent = `hold ${id} placed at ${fmtTime(new Date())}`;
    formOk.hidden = false;
    load();
  });

  refresh.addEventListener('click', load);
  all.addEventListener('change', load);

  async function loadCameraHint() {
    try {
      const cams = arrayOf(await api('GET', '/api/cameras'), 'cameras').filter((c) => c && c.id).sort(sortById);
      camHint.textContent = cams.length ? `yours: ${cams.map((c) => c.id).join(', ')}` : '';
    } catch (e) { camHint.textContent = ''; }
  }

  return {
    name: 'holds',
    section,
    enter() {
      defaults();
      load();
      loadCameraHint();
    },
    leave() {},
  };
}
