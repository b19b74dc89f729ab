// Small UI pieces shared by several pages.
import { h, fill } from './dom.js';
import { t, has } from './i18n.js';
import { api } from './api.js';

/** A translated, user-facing text for an API error (generic text + server message). */
export function errorText(err) {
  if (err && err.status === 0) return t('error.network');
  const code = err && err.code;
  const kind = code && has(`error.code.${code}`) ? t(`error.code.${code}`) : t('error.generic');
  const message = err && err.message ? err.message : '';
  return message ? `${kind}: ${message}` : kind;
}

/** A status line for a form or section: success or error messages. */
export function statusLine(testid) {
  const el = h('p', { class: 'status', testid, role: 'status', hidden: true });
  return {
    el,
    ok(text) {
      el.className = 'status ok';
      el.textContent = text;
      el.hidden = false;
    },
    error(err) {
      el.className = 'status error';
      el.textContent = typeof err === 'string' ? err : errorText(err);
      el.hidden = false;
    },
    clear() {
      el.hidden = true;
      el.textContent = '';
    },
  };
}

export function roleLabel(role) {
  return has(`role.${role}`) ? t(`role.${role}`) : role;
}

export const ROLES = ['admin', 'operator', 'reviewer', 'member'];

/** A simple page frame: heading, optional note, body. */
export function page(titleKey, ...body) {
  return h('section', { class: 'page' }, h('h1', {}, t(titleKey)), ...body);
}

/**
 * The list of cameras the user may see.  Members get 403 from
 * GET /api/cameras: then a "no access" message is shown instead.
 */
export function cameraList() {
  const box = h('div', { class: 'camera-list-box' }, h('p', { class: 'muted' }, t('common.loading')));
  api.get('/api/cameras').then(
    (cameras) => {
      if (!cameras.length) {
        fill(box, h('ul', { class: 'camera-list', testid: 'camera-list' }),
          h('p', { class: 'muted', testid: 'camera-list-empty' }, t('cameras.none')));
        return;
      }
      fill(box, h('ul', { class: 'camera-list', testid: 'camera-list' },
        cameras.map((c) => h('li', { class: 'camera-card', testid: `camera-${c.id}` },
          h('div', { class: 'camera-thumb', 'aria-hidden': 'true' }, '▶'),
          h('div', { class: 'camera-name' }, c.name),
          h('div', { class: 'muted small' }, `#${c.id}`)))));
    },
    (err) => {
      if (err.status === 403) {
        fill(box, h('p', { class: 'notice', testid: 'no-access' }, t('common.noAccess')));
      } else {
        fill(box, h('p', { class: 'status error', testid: 'page-error' }, errorText(err)));
      }
    },
  );
  return box;
}

/** A labelled form field. */
export function field(id, label, input) {
  return h('div', { class: 'field' }, h('label', { for: id }, label), input);
}
