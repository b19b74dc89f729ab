// How the pages write times, numbers and sizes (the meeting room, its record, the Admin
// page's link figures), in the interface's language (Vietnamese first: a decimal comma,
// 24-hour clock).

import { t, lang } from './i18n.js';

/** "14:05" from an RFC 3339 time ('' if it is not one). */
export function clockTime(rfc3339) {
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleTimeString(lang() === 'vi' ? 'vi-VN' : 'en-GB', { hour: '2-digit', minute: '2-digit' });
}

/** A number format with at most `digits` decimals. */
export function numberFormat(digits) {
  return new Intl.NumberFormat(lang() === 'vi' ? 'vi-VN' : 'en-GB', {
    minimumFractionDigits: 0, maximumFractionDigits: digits,
  });
}

/** "512 B", "34 KB", "1,5 MB" (binary units, the user's decimal comma or point). */
export function formatSize(bytes) {
  const n = Number(bytes) || 0;
  if (n < 1024) return t('meet.size.bytes', { n: numberFormat(0).format(n) });
  if (n < 1024 * 1024) return t('meet.size.kb', { n: numberFormat(n < 10 * 1024 ? 1 : 0).format(n / 1024) });
  return t('meet.size.mb', { n: numberFormat(1).format(n / (1024 * 1024)) });
}
