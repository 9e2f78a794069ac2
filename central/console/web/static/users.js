// Users (administrators): list, add, disable, set a password.

import { ops, h, field, errorBox, setError, busy, arrayOf, fmtTime, splitList, session } from './util.js';

const ROLES = ['operator', 'officer', 'auditor', 'admin'];

export function createUsers() {
  let passwdRow = null;

  const refresh = h('button', { id: 'users-refresh', type: 'button' }, 'Refresh');
  const listErr = errorBox('users-error');
  const list = h('table', { id: 'users-list', class: 'grid users' });

  const name = h('input', { id: 'user-name', name: 'name', type: 'text', autocomplete: 'off', required: true });
  const role = h('select', { id: 'user-role', name: 'role' }, ROLES.map((r) => h('option', { value: r }, r)));
  const districts = h('input', { id: 'user-districts', name: 'districts', type: 'text', autocomplete: 'off', placeholder: 'empty = every district' });
  const designation = h('input', { id: 'user-designation', name: 'designation', type: 'text', placeholder: 'act that authorises this person' });
  const password = h('input', { id: 'user-password', name: 'password', type: 'password', autocomplete: 'new-password' });
  const submit = h('button', { id: 'user-submit', type: 'submit', class: 'primary' }, 'Add user');
  const formErr = errorBox('user-error');
  const formOk = h('p', { class: 'ok', id: 'user-ok', role: 'status', hidden: true });
  const form = h('form', { id: 'user-form', class: 'panel form-grid', novalidate: true },
    h('h3', null, 'Add a user'),
    field('Name', name), field('Role', role),
    field('Districts', districts, 'comma separated'), field('Designation', designation),
    field('Password', password),
    h('div', { class: 'actions wide' }, submit),
    formErr, formOk);

  const section = h('section', { id: 'tab-users', class: 'tab', 'aria-label': 'Users' },
    h('div', { class: 'toolbar' }, h('h2', null, 'Users'), refresh),
    listErr, h('div', { class: 'scroll' }, list), form);

  function render(users) {
    passwdRow = null;
    users.sort((a, b) => String(a.name).localeCompare(String(b.name)));
    const head = ['name', 'role', 'districts', 'designation', 'state', 'created', ''];
    const rows = users.map((u) => {
      const dis = h('button', { type: 'button', class: 'user-disable danger', 'data-name': u.name, disabled: !!u.disabled }, 'Disable');
      const pw = h('button', { type: 'button', class: 'user-passwd', 'data-name': u.name, disabled: !!u.disabled }, 'Set password…');
      const rowErr = errorBox();
      const row = h('tr', { class: `user-row${u.disabled ? ' disabled' : ''}`, 'data-name': u.name },
        h('td', null, u.name),
        h('td', null, u.role || ''),
        h('td', null, Array.isArray(u.districts) && u.districts.length ? u.districts.join(', ') : h('span', { class: 'muted' }, 'all')),
        h('td', null, u.designation || ''),
        h('td', null, h('span', { class: `badge ${u.disabled ? 'bad' : 'good'}` }, u.disabled ? 'disabled' : 'active')),
        h('td', { class: 'nowrap' }, fmtTime(u.created)),
        h('td', { class: 'nowrap' }, pw, ' ', dis, rowErr));
      dis.addEventListener('click', async () => {
        setError(rowErr, '');
        try {
          await busy(dis, () => ops('DisableUser', { name: u.name }));
        } catch (e) {
          setError(rowErr, e.message);
          return;
        }
        load();
      });
      pw.addEventListener('click', () => openPasswd(u, row));
      return row;
    });
    list.replaceChildren(
      h('thead', null, h('tr', null, head.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', null, rows.length ? rows : h('tr', null, h('td', { colspan: String(head.length), class: 'empty' }, 'no users'))));
  }

  function openPasswd(u, row) {
    if (passwdRow) passwdRow.remove();
    const self = session.info && session.info.user === u.name;
    const np = h('input', { id: 'passwd-new', type: 'password', autocomplete: 'new-password' });
    const cur = self ? h('input', { id: 'passwd-current', type: 'password', autocomplete: 'current-password' }) : null;
    const ok = h('button', { id: 'passwd-submit', type: 'submit', class: 'primary' }, `Set password of ${u.name}`);
    const no = h('button', { id: 'passwd-cancel', type: 'button' }, 'Cancel');
    const e = errorBox('passwd-error');
    const f = h('form', { id: 'passwd-form', class: 'inline-form', 'data-name': u.name, novalidate: true },
      field('New password', np), cur ? field('Your current password', cur) : null,
      h('div', { class: 'actions' }, ok, no), e);
    const tr = h('tr', { class: 'passwd-row' }, h('td', { colspan: '7' }, f));
    row.after(tr);
    passwdRow = tr;
    np.focus();
    no.addEventListener('click', () => { tr.remove(); passwdRow = null; });
    f.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      setError(e, '');
      const req = { name: u.name, password: np.value };
      if (cur) req.current_password = cur.value;
      try {
        await busy(ok, () => ops('SetPassword', req));
      } catch (err) {
        setError(e, err.message);
        return;
      }
      f.replaceChildren(h('p', { class: 'ok', role: 'status' }, `password of ${u.name} changed at ${fmtTime(new Date())}`));
      setTimeout(() => { if (passwdRow === tr) { tr.remove(); passwdRow = null; } }, 4000);
    });
  }

  async function load() {
    setError(listErr, '');
    let data;
    try {
      data = await busy(refresh, () => ops('ListUsers', {}));
    } catch (e) {
      setError(listErr, `cannot list users: ${e.message}`);
      return;
    }
    render(arrayOf(data, 'users'));
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    setError(formErr, '');
    formOk.hidden = true;
    const req = {
      name: name.value.trim(),
      role: role.value,
      districts: splitList(districts.value),
      designation: designation.value.trim(),
      password: password.value,
    };
    let res;
    try {
      res = await busy(submit, () => ops('AddUser', req));
    } catch (e) {
      setError(formErr, e.message);
      return;
    }
    const who = res && res.user && res.user.name ? res.user.name : req.name;
    formOk.textContent = `user ${who} added`;
    formOk.hidden = false;
    name.value = '';
    password.value = '';
    districts.value = '';
    designation.value = '';
    load();
  });
  refresh.addEventListener('click', load);

  return {
    name: 'users',
    section,
    enter() { load(); },
    leave() {},
  };
}
