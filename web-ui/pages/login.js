import { h } from '../dom.js';
import { t } from '../i18n.js';
import { api } from '../api.js';
import { errorText } from '../components.js';

/**
 * The login form.  `onLogin()` is called after a successful login;
 * `langSwitch` is the language button to show in the corner.
 */
export function render({ onLogin, langSwitch }) {
  const username = h('input', {
    id: 'login-username', testid: 'login-username', name: 'username',
    autocomplete: 'username', required: true, autofocus: true,
  });
  const password = h('input', {
    id: 'login-password', testid: 'login-password', name: 'password', type: 'password',
    autocomplete: 'current-password', required: true,
  });
  const error = h('p', { class: 'status error', testid: 'login-error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary', testid: 'login-submit' }, t('login.submit'));

  async function onSubmit(event) {
    event.preventDefault();
    error.hidden = true;
    error.textContent = '';
    submit.disabled = true;
    try {
      await api.post('/api/login', { username: username.value.trim(), password: password.value });
      await onLogin();
    } catch (err) {
      password.value = '';
      error.textContent = loginErrorText(err);
      error.hidden = false;
      password.focus();
    } finally {
      submit.disabled = false;
    }
  }

  return h('div', { class: 'login-screen' },
    h('div', { class: 'login-top' }, langSwitch),
    h('form', { class: 'card login-card', testid: 'login-form', onsubmit: onSubmit },
      h('div', { class: 'brand big' }, 'xaso'),
      h('h1', {}, t('login.title')),
      h('p', { class: 'muted' }, t('login.subtitle')),
      h('label', { for: 'login-username' }, t('login.username')),
      username,
      h('label', { for: 'login-password' }, t('login.password')),
      password,
      error,
      submit));
}

function loginErrorText(err) {
  if (err.status === 401) return t('login.wrong');
  if (err.status === 429) {
    const seconds = err.retryAfter;
    if (!seconds) return t('login.tooMany');
    if (seconds < 60) return t('login.tooManyWait', { seconds });
    return t('login.tooManyWaitMinutes', { minutes: Math.ceil(seconds / 60) });
  }
  return errorText(err);
}
