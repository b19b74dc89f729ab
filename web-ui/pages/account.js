import { h } from '../dom.js';
import { t } from '../i18n.js';
import { api } from '../api.js';
import { page, statusLine, roleLabel } from '../components.js';

/** The current user's own page: who am I, change my password. */
export function render({ me }) {
  const current = h('input', { id: 'pw-current', type: 'password', testid: 'password-current', autocomplete: 'current-password', required: true });
  const next = h('input', { id: 'pw-new', type: 'password', testid: 'password-new', autocomplete: 'new-password', required: true });
  const status = statusLine('password-status');

  async function onSubmit(event) {
    event.preventDefault();
    status.clear();
    try {
      await api.post('/api/me/password', { current_password: current.value, new_password: next.value });
      current.value = '';
      next.value = '';
      status.ok(t('account.passwordChanged'));
    } catch (err) {
      status.error(err);
    }
  }

  return page('account.title',
    h('p', {}, t('account.signedInAs', { username: me.username, role: roleLabel(me.role) })),
    h('form', { class: 'card form', onsubmit: onSubmit },
      h('h2', {}, t('account.changePassword')),
      h('label', { for: 'pw-current' }, t('account.currentPassword')), current,
      h('label', { for: 'pw-new' }, t('account.newPassword')), next,
      h('button', { type: 'submit', class: 'primary', testid: 'password-submit' }, t('common.save')),
      status.el));
}
