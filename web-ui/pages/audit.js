// Audit log: newest first, filters, "older" paging with next_before.
import { h, fill } from '../dom.js';
import { t, has, formatTime } from '../i18n.js';
import { api } from '../api.js';
import { page, field, statusLine } from '../components.js';

const PAGE_SIZE = 50;
const KNOWN_ACTIONS = [
  'login', 'login_failed', 'logout', 'password.change',
  'user.create', 'user.update', 'user.delete', 'grant.set',
  'token.create', 'token.revoke', 'camera.create', 'camera.update', 'camera.delete',
];

/** datetime-local value ("2024-05-01T08:30") -> RFC 3339 in UTC, or "" */
export function localToRfc3339(value) {
  if (!value) return '';
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return '';
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function actionLabel(action) {
  return has(`audit.action.${action}`) ? t(`audit.action.${action}`) : action;
}

function detailText(detail) {
  if (detail === null || detail === undefined) return '';
  if (typeof detail !== 'object') return String(detail);
  return Object.entries(detail)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`)
    .join(', ');
}

export function render() {
  const status = statusLine('audit-status');
  const cameraNames = new Map();
  const user = h('input', { id: 'audit-user', testid: 'audit-user', autocomplete: 'off' });
  const action = h('input', { id: 'audit-action', testid: 'audit-action', list: 'audit-actions', autocomplete: 'off' });
  const camera = h('select', { id: 'audit-camera', testid: 'audit-camera' }, h('option', { value: '' }, t('audit.allCameras')));
  const from = h('input', { id: 'audit-from', testid: 'audit-from', type: 'datetime-local' });
  const to = h('input', { id: 'audit-to', testid: 'audit-to', type: 'datetime-local' });
  const tbody = h('tbody');
  const more = h('button', { type: 'button', testid: 'audit-more', hidden: true, onclick: () => load(false) }, t('audit.older'));
  const empty = h('p', { class: 'muted', testid: 'audit-empty', hidden: true }, t('audit.none'));
  let nextBefore = null;
  let filters = null;

  function currentFilters() {
    const q = new URLSearchParams();
    if (user.value.trim()) q.set('user', user.value.trim());
    if (action.value.trim()) q.set('action', action.value.trim());
    if (camera.value) q.set('camera', camera.value);
    if (localToRfc3339(from.value)) q.set('from', localToRfc3339(from.value));
    if (localToRfc3339(to.value)) q.set('to', localToRfc3339(to.value));
    q.set('limit', String(PAGE_SIZE));
    return q;
  }

  /** Load the first page (fresh = true) or the next older page. */
  async function load(fresh) {
    status.clear();
    if (fresh) filters = currentFilters();
    const q = new URLSearchParams(filters);
    if (!fresh && nextBefore !== null) q.set('before', String(nextBefore));
    more.disabled = true;
    try {
      const res = await api.get(`/api/audit?${q}`);
      if (fresh) tbody.replaceChildren();
      tbody.append(...res.entries.map(row));
      nextBefore = res.next_before ?? null;
      more.hidden = nextBefore === null;
      empty.hidden = tbody.children.length > 0;
    } catch (err) {
      status.error(err);
    } finally {
      more.disabled = false;
    }
  }

  function row(e) {
    const cam = e.camera_id === null || e.camera_id === undefined ? ''
      : (cameraNames.has(e.camera_id) ? `${cameraNames.get(e.camera_id)} (#${e.camera_id})` : `#${e.camera_id}`);
    return h('tr', { testid: `audit-row-${e.id}`, 'data-action': e.action },
      h('td', { class: 'nowrap', title: e.at }, formatTime(e.at)),
      h('td', {}, e.username ?? '—'),
      h('td', { 'data-col': 'action' }, actionLabel(e.action), ' ', h('code', { class: 'small' }, e.action)),
      h('td', {}, cam),
      h('td', { class: 'mono small' }, e.address ?? ''),
      h('td', { class: 'small detail' }, detailText(e.detail)));
  }

  api.get('/api/cameras').then((cams) => {
    for (const c of cams) {
      cameraNames.set(c.id, c.name);
      camera.append(h('option', { value: String(c.id) }, c.name));
    }
  }, () => {});

  const form = h('form', {
    class: 'form-row filters', testid: 'audit-filters',
    onsubmit: (e) => { e.preventDefault(); load(true); },
  },
  field('audit-user', t('audit.user'), user),
  field('audit-action', t('audit.action'), action),
  h('datalist', { id: 'audit-actions' }, KNOWN_ACTIONS.map((a) => h('option', { value: a }, actionLabel(a)))),
  field('audit-camera', t('audit.camera'), camera),
  field('audit-from', t('audit.from'), from),
  field('audit-to', t('audit.to'), to),
  h('button', { type: 'submit', class: 'primary', testid: 'audit-apply' }, t('audit.apply')),
  h('button', {
    type: 'button', testid: 'audit-reset',
    onclick: () => { form.reset(); load(true); },
  }, t('audit.reset')));

  load(true);
  return page('audit.title',
    form,
    status.el,
    h('div', { class: 'table-wrap' },
      h('table', { class: 'table', testid: 'audit-table' },
        h('thead', {}, h('tr', {},
          h('th', {}, t('audit.time')), h('th', {}, t('audit.user')), h('th', {}, t('audit.action')),
          h('th', {}, t('audit.camera')), h('th', {}, t('audit.address')), h('th', {}, t('audit.detail')))),
        tbody)),
    empty,
    h('div', { class: 'paging' }, more));
}
