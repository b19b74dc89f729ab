import { h } from '../dom.js';
import { t } from '../i18n.js';
import { page, cameraList } from '../components.js';

export function render() {
  return page('recordings.title',
    h('p', { class: 'note', testid: 'recordings-note' }, t('recordings.note')),
    cameraList());
}
