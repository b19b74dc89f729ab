import { h } from '../dom.js';
import { t } from '../i18n.js';
import { page } from '../components.js';

export function render() {
  return page('meetings.title',
    h('p', { class: 'note', testid: 'meetings-note' }, t('meetings.note')));
}
