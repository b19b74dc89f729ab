// Votes in the meeting room (`meeting-room.js`): the chair's form, every vote as the
// server's `vote` messages say it (open ones first: the buttons, or "voted"; closed ones:
// the results), a ballot and the server's answer to it, the panel and its unseen count.
// `voteResults` draws a vote's results here and in the meeting record (pages/meetings.js).

import { h } from './dom.js';
import { t } from './i18n.js';
import { errorText } from './components.js';
import { clockTime, numberFormat } from './meeting-format.js';

const VOTE_QUESTION_MAX = 500;
const VOTE_OPTION_MAX = 200;
const VOTE_OPTIONS_MIN = 2;
const VOTE_OPTIONS_MAX = 10;

/**
 * The results of a vote (`vote` as the server sends it): per option its count, its share of
 * the ballots as a bar and, when the ballots are known (a public vote, closed), who chose
 * it. testids `${prefix}-tally-{i}` (data-count), `${prefix}-names-{i}`, `${prefix}-total`,
 * `${prefix}-secret`. Also used by the meeting record (pages/meetings.js).
 */
export function voteResults(v, prefix) {
  const options = Array.isArray(v.options) ? v.options : [];
  const tally = options.map((_, i) => Number((v.tally || [])[i]) || 0);
  const total = tally.reduce((a, b) => a + b, 0);
  const top = Math.max(0, ...tally);
  const names = options.map(() => []);
  if (Array.isArray(v.ballots)) {
    for (const b of v.ballots) {
      if (b && Number.isInteger(b.option) && names[b.option]) names[b.option].push(b.name);
    }
  }
  const rows = options.map((option, i) => {
    const n = tally[i];
    const pct = total ? Math.round((n * 1000) / total) / 10 : 0;
    const fill = h('div', { class: 'vote-bar-fill' });
    fill.style.width = `${pct}%`; // (a property, not a style attribute: the CSP allows it)
    return h('li', { class: `vote-result${n > 0 && n === top ? ' lead' : ''}`, testid: `${prefix}-tally-${i}`, 'data-count': String(n) },
      h('div', { class: 'vote-result-head' },
        h('span', { class: 'vote-option' }, option),
        h('span', { class: 'vote-count nowrap' }, t('meet.vote.tally', { n, pct: numberFormat(1).format(pct) }))),
      h('div', { class: 'vote-bar', role: 'presentation' }, fill),
      !v.secret && names[i].length
        ? h('div', { class: 'small muted vote-names', testid: `${prefix}-names-${i}` }, names[i].join(', ')) : null);
  });
  return h('div', { class: 'vote-results' },
    h('ol', { class: 'vote-result-list' }, rows),
    h('p', { class: 'small muted vote-total', testid: `${prefix}-total` }, t('meet.vote.total', { n: total })),
    v.secret ? h('p', { class: 'small vote-secret-note', testid: `${prefix}-secret` }, t('meet.vote.secretNote')) : null);
}

/**
 * The room's votes. `ctx`: send(message) (false if not sent), notice(text), role(), people()
 * (the participants a vote counts), selfName(), changed() (the panel or its badge changed:
 * the room redraws its side and toolbar), pendingMs (how long an answer is waited for).
 */
export function createVotes(ctx) {
  const votes = new Map(); // vote id -> the vote as the server last sent it
  const voteEls = new Map(); // vote id -> {el, shape, update(vote)} drawn in the panel
  // vote id -> the option this page chose (-1: not known, the server said we had voted).
  // Kept across a rejoin: the page does not offer a second ballot.
  const myBallots = new Map();
  let pendingCast = null; // {vote, option, at}: a ballot sent, not refused (yet)
  let pendingOpen = null; // {question, at}: a vote_open sent, until the vote comes back
  let votesOpen = false;
  let votesUnseen = 0;

  // votes: the chair's form, then every vote (open ones first)
  const voteQuestion = h('textarea', {
    id: 'meet-vote-question', testid: 'vote-question', rows: '2', maxlength: String(VOTE_QUESTION_MAX),
    placeholder: t('meet.vote.questionPlaceholder'),
  });
  const voteOptionsBox = h('div', { class: 'meet-vote-options' });
  const voteAddOption = h('button', { type: 'button', class: 'small', testid: 'vote-add-option', onclick: () => addVoteOption(true) },
    t('meet.vote.addOption'));
  const voteSecret = h('input', { type: 'checkbox', id: 'meet-vote-secret', testid: 'vote-secret' });
  const voteSubmit = h('button', { type: 'submit', class: 'primary', testid: 'vote-open' }, t('meet.vote.openSubmit'));
  const voteFormStatus = h('p', { class: 'status error small', testid: 'vote-form-error', role: 'alert', hidden: true });
  const voteForm = h('form', { class: 'meet-vote-form', testid: 'vote-form', hidden: true, onsubmit: onVoteOpenSubmit },
    h('h3', {}, t('meet.vote.new')),
    h('label', { for: 'meet-vote-question', class: 'small' }, t('meet.vote.question')),
    voteQuestion,
    h('span', { class: 'small' }, t('meet.vote.options')),
    voteOptionsBox,
    voteAddOption,
    h('label', { class: 'check small', for: 'meet-vote-secret' }, voteSecret, t('meet.vote.secret')),
    voteFormStatus,
    voteSubmit);
  const votesList = h('ol', { class: 'meet-votes-list', testid: 'votes-list' });
  const votesEmpty = h('p', { class: 'muted small', testid: 'votes-empty' }, t('meet.vote.none'));
  const votesPanel = h('section', { class: 'meet-panel meet-votes', testid: 'votes-panel', hidden: true },
    h('h2', {}, t('meet.vote.title')), voteForm, votesEmpty, votesList);
  addVoteOption(false);
  addVoteOption(false);

  function addVoteOption(focus) {
    const n = voteOptionsBox.children.length;
    if (n >= VOTE_OPTIONS_MAX) return;
    const input = h('input', {
      testid: `vote-option-${n}`, maxlength: String(VOTE_OPTION_MAX), autocomplete: 'off',
      placeholder: t('meet.vote.option', { n: n + 1 }), 'aria-label': t('meet.vote.option', { n: n + 1 }),
    });
    voteOptionsBox.append(input);
    voteAddOption.disabled = n + 1 >= VOTE_OPTIONS_MAX;
    if (focus) input.focus();
  }

  function resetVoteForm() {
    voteQuestion.value = '';
    voteOptionsBox.replaceChildren();
    addVoteOption(false);
    addVoteOption(false);
    voteSecret.checked = false;
    voteFormStatus.hidden = true;
  }

  function voteFormError(text) {
    voteFormStatus.textContent = text;
    voteFormStatus.hidden = false;
  }

  function onVoteOpenSubmit(event) {
    event.preventDefault();
    voteFormStatus.hidden = true;
    const question = voteQuestion.value.trim();
    const options = [...voteOptionsBox.querySelectorAll('input')].map((i) => i.value.trim()).filter(Boolean);
    if (!question || question.length > VOTE_QUESTION_MAX) {
      voteFormError(t('meet.vote.needQuestion', { n: VOTE_QUESTION_MAX }));
      voteQuestion.focus();
      return;
    }
    if (options.length < VOTE_OPTIONS_MIN || options.length > VOTE_OPTIONS_MAX || options.some((o) => o.length > VOTE_OPTION_MAX)) {
      voteFormError(t('meet.vote.needOptions', { min: VOTE_OPTIONS_MIN, max: VOTE_OPTIONS_MAX, n: VOTE_OPTION_MAX }));
      return;
    }
    if (new Set(options.map((o) => o.toLocaleLowerCase())).size !== options.length) {
      voteFormError(t('meet.vote.duplicateOptions'));
      return;
    }
    if (!ctx.send({ type: 'vote_open', question, options, secret: voteSecret.checked })) {
      voteFormError(t('meet.notSent'));
      return;
    }
    const sent = { question, at: Date.now() };
    pendingOpen = sent;
    voteSubmit.disabled = true; // until the vote comes back, or an error (or no answer at all)
    setTimeout(() => {
      if (pendingOpen !== sent) return;
      pendingOpen = null;
      voteSubmit.disabled = false;
    }, ctx.pendingMs);
  }

  function castVote(voteId, option, force = false) {
    const v = votes.get(voteId);
    if (!force && (!v || !v.open || myBallots.has(voteId))) return;
    if (!ctx.send({ type: 'vote_cast', vote: voteId, option })) {
      ctx.notice(t('meet.notSent'));
      return;
    }
    if (!myBallots.has(voteId)) myBallots.set(voteId, option);
    pendingCast = { vote: voteId, option, at: Date.now() };
    drawVotes();
  }

  function closeVote(voteId) {
    const v = votes.get(voteId);
    if (!v || !v.open) return;
    if (!window.confirm(t('meet.vote.confirmClose', { question: v.question }))) return;
    if (!ctx.send({ type: 'vote_close', vote: voteId })) ctx.notice(t('meet.notSent'));
  }

  /** A `vote` message: a vote opened, a ballot counted, or the vote closed. */
  function onVote(v) {
    if (!v || v.id === undefined || v.id === null) return;
    const before = votes.get(v.id);
    votes.set(v.id, v);
    if (pendingCast && pendingCast.vote === v.id) {
      // counted: our name is among the voters now (the server answers in order)
      const name = ctx.selfName();
      if (name && Array.isArray(v.voters) && v.voters.includes(name)) pendingCast = null;
    }
    if (pendingOpen && !before && v.open && v.question === pendingOpen.question) {
      pendingOpen = null;
      voteSubmit.disabled = false;
      resetVoteForm();
    }
    if (!before && v.open) {
      // a new vote: everyone is asked, so the panel opens (the chair's is open already)
      if (!votesOpen) setVotesOpen(true);
      if (ctx.role() !== 'chair') ctx.notice(t('meet.vote.opened', { question: v.question }));
    } else if (before && before.open && !v.open) {
      if (!votesOpen) votesUnseen += 1;
      ctx.notice(t('meet.vote.closedNotice', { question: v.question }));
    }
    drawVotes();
    ctx.changed();
  }

  /** What decides a vote's drawing; a ballot counted elsewhere only changes the counts. */
  function voteShape(v) {
    return JSON.stringify([v.open, myBallots.has(v.id), myBallots.get(v.id), ctx.role(), v.open ? null : [v.tally, v.ballots]]);
  }

  /** A vote's element and `update(v)` for what changes while it is open (the counts). */
  function voteItem(v) {
    const vid = v.id;
    const voted = myBallots.has(vid);
    const mine = myBallots.get(vid);
    const options = Array.isArray(v.options) ? v.options : [];
    const parts = [
      h('div', { class: 'meet-vote-head' },
        h('span', { class: `badge ${v.open ? 'on' : 'off'}`, testid: `vote-${vid}-state` },
          v.open ? t('meet.vote.stateOpen') : t('meet.vote.stateClosed')),
        v.secret ? h('span', { class: 'badge meet-vote-secret', testid: `vote-${vid}-secret-badge` }, t('meet.vote.secretBadge')) : null,
        h('span', { class: 'muted small' }, clockTime(v.opened_at))),
      h('p', { class: 'meet-vote-question', testid: `vote-${vid}-question` }, v.question),
    ];
    let countEl = null;
    let votersEl = null;
    if (v.open) {
      if (!voted) {
        parts.push(h('div', { class: 'meet-vote-choices', role: 'group', 'aria-label': v.question },
          options.map((o, i) => h('button', {
            type: 'button', class: 'meet-vote-choice', testid: `vote-${vid}-option-${i}`, onclick: () => castVote(vid, i),
          }, o))));
      } else {
        parts.push(h('p', { class: 'status ok small meet-vote-voted', testid: `vote-${vid}-voted` },
          t('meet.vote.voted'),
          mine >= 0 && options[mine] !== undefined ? ` ${t('meet.vote.yourChoice', { option: options[mine] })}` : ''));
      }
      countEl = h('p', { class: 'small muted', testid: `vote-${vid}-count` });
      parts.push(countEl);
      if (ctx.role() === 'chair') {
        votersEl = h('p', { class: 'small muted', testid: `vote-${vid}-voters`, hidden: true });
        parts.push(votersEl,
          h('button', { type: 'button', class: 'small danger', testid: `vote-${vid}-close`, onclick: () => closeVote(vid) },
            t('meet.vote.close')));
      }
    } else {
      if (voted && mine >= 0 && options[mine] !== undefined) {
        parts.push(h('p', { class: 'small muted' }, t('meet.vote.yourChoiceWas', { option: options[mine] })));
      }
      parts.push(voteResults(v, `vote-${vid}`));
    }
    const el = h('li', { class: `meet-vote${v.open ? ' open' : ''}`, testid: `vote-${vid}`, 'data-open': String(!!v.open) }, parts);
    return {
      el,
      shape: voteShape(v),
      update(next) {
        if (countEl) {
          const present = ctx.people().filter((p) => p.connected !== false).length || ctx.people().length;
          countEl.textContent = t('meet.vote.count', { cast: next.cast || 0, n: present });
          countEl.dataset.cast = String(next.cast || 0);
        }
        if (votersEl) {
          const names = Array.isArray(next.voters) ? next.voters : [];
          votersEl.textContent = t('meet.vote.voters', { names: names.join(', ') });
          votersEl.hidden = names.length === 0;
        }
      },
    };
  }

  /**
   * Draws the votes, open ones first, newest first. An element is rebuilt only when its vote
   * changes shape (opened, voted, closed): a ballot counted elsewhere must not replace the
   * button under someone's pointer.
   */
  function drawVotes() {
    const list = [...votes.values()].sort((a, b) => (Number(!!b.open) - Number(!!a.open)) || (Number(b.id) - Number(a.id)));
    const ids = new Set(list.map((v) => v.id));
    for (const [vid, item] of voteEls) {
      if (!ids.has(vid)) {
        item.el.remove();
        voteEls.delete(vid);
      }
    }
    list.forEach((v, i) => {
      let item = voteEls.get(v.id);
      if (!item || item.shape !== voteShape(v)) {
        const fresh = voteItem(v);
        if (item) item.el.replaceWith(fresh.el);
        voteEls.set(v.id, fresh);
        item = fresh;
      }
      item.update(v);
      if (votesList.children[i] !== item.el) votesList.insertBefore(item.el, votesList.children[i] || null);
    });
    votesEmpty.hidden = list.length > 0;
    voteForm.hidden = ctx.role() !== 'chair';
  }

  function setVotesOpen(open) {
    votesOpen = open;
    votesPanel.hidden = !open;
    if (open) votesUnseen = 0;
    ctx.changed();
    if (open) votesPanel.scrollIntoView({ block: 'nearest' });
  }

  function toggleVotes() {
    setVotesOpen(!votesOpen);
    if (votesOpen && ctx.role() === 'chair' && !votes.size) voteQuestion.focus();
  }

  return {
    panel: votesPanel,
    get isOpen() { return votesOpen; },
    get unseen() { return votesUnseen; },
    toggle: toggleVotes,
    onVote,
    /** The votes of a `welcome` (a first join, or back in after a lost connection). */
    welcome(list) {
      votes.clear();
      for (const v of Array.isArray(list) ? list : []) if (v && v.id !== undefined) votes.set(v.id, v);
      pendingCast = null;
      pendingOpen = null;
      voteSubmit.disabled = false;
      drawVotes();
      // an open vote we have not answered: the panel opens (we may have come in late)
      if ([...votes.values()].some((v) => v.open && !myBallots.has(v.id)) && !votesOpen) setVotesOpen(true);
    },
    /** The participants changed: the "n of m voted" lines. */
    peopleChanged() {
      if ([...votes.values()].some((v) => v.open)) drawVotes();
    },
    /** An `error` from the server: true if it answered our ballot or our vote_open. */
    onError(err, now) {
      if (pendingCast && now - pendingCast.at < ctx.pendingMs) {
        // the answer to our ballot
        const { vote } = pendingCast;
        pendingCast = null;
        if (err.code === 'already_exists') {
          if (!myBallots.has(vote)) myBallots.set(vote, -1);
          ctx.notice(t('meet.vote.already'));
        } else {
          myBallots.delete(vote);
          ctx.notice(t('meet.vote.refused', { error: errorText(err) }));
        }
        drawVotes();
        return true;
      }
      if (pendingOpen && now - pendingOpen.at < ctx.pendingMs) {
        pendingOpen = null;
        voteSubmit.disabled = false;
        voteFormError(t('meet.vote.openFailed', { error: errorText(err) }));
        ctx.notice(t('meet.vote.openFailed', { error: errorText(err) }));
        return true;
      }
      return false;
    },
    list: () => [...votes.values()].map((v) => JSON.parse(JSON.stringify(v))),
    cast: castVote,
  };
}
