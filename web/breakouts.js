// The breakout rooms' panel. Moderators make rooms, assign people (by hand or evenly), open
// them (with a timer, or for people to pick), speak to every room and call everyone back;
// everyone else sees the rooms while they are open and, where they may, goes to one.

import { h, closer } from './dom.js';

// People listed for assigning by hand, at most (a large meeting spreads them evenly).
const SHOWN_PEOPLE = 200;

export class BreakoutsPanel {
  // `join(room)` takes this client to a room; `moderator()` says whether it moderates.
  constructor({ signal, state, join, moderator, onClose }) {
    this.signal = signal;
    this.state = state;
    this.join = join;
    this.moderator = moderator;
    const op = (o) => signal.send({ type: 'breakouts', op: o });
    this.count = h('input', { id: 'breakout-count', type: 'number', min: 1, max: 50, value: 2 });
    this.minutes = h('input', { id: 'breakout-minutes', type: 'number', min: 1, max: 1440, placeholder: 'No timer' });
    this.choose = h('input', { type: 'checkbox', id: 'breakout-choose' });
    this.setup = h('div', { class: 'breakout-setup' },
      h('div', { class: 'row' }, h('label', {}, 'Rooms', this.count), h('label', {}, 'Minutes', this.minutes)),
      h('div', { class: 'row wrap' },
        h('button', { id: 'breakout-create', onclick: () => op({ action: 'create', count: Number(this.count.value) }) }, 'Make rooms'),
        h('button', { id: 'breakout-auto', onclick: () => op({ action: 'auto_assign' }) }, 'Spread people evenly')),
      h('label', { class: 'check' }, this.choose, 'People pick their room'),
      h('button', { id: 'breakout-open', class: 'primary', onclick: () => op({ action: 'open',
        minutes: Number(this.minutes.value) || null, choose: this.choose.checked }) }, 'Open rooms'));
    this.words = h('input', { id: 'breakout-words', placeholder: 'Message every room', maxlength: 2000, autocomplete: 'off' });
    this.running = h('div', { class: 'breakout-running' },
      h('form', { class: 'chat-form', onsubmit: (e) => {
        e.preventDefault();
        const text = this.words.value.trim();
        if (text) op({ action: 'broadcast', text });
        this.words.value = '';
      } }, this.words, h('button', { id: 'breakout-broadcast', type: 'submit' }, 'Send')),
      h('button', { id: 'breakout-close', class: 'danger', onclick: () => op({ action: 'close' }) }, 'Call everyone back'));
    this.rooms = h('ol', { id: 'breakout-rooms', class: 'rooms' });
    this.people = h('ol', { id: 'breakout-people', class: 'people' });
    this.el = h('aside', { id: 'breakouts', class: 'sheet', hidden: true },
      h('h2', {}, 'Breakout rooms'), closer(onClose), this.setup, this.running, this.rooms, this.people);
    this.op = op;
  }

  // The room this client is assigned to, if any.
  mine() {
    const me = this.state.me?.id;
    return this.state.breakouts.rooms.find((r) => r.assigned.includes(me))?.room ?? null;
  }

  // Whether the toolbar offers the panel: to moderators, and to others while rooms are open.
  offered() {
    return this.moderator() || (this.state.breakouts.open && (this.state.breakouts.choose || this.mine() !== null));
  }

  render() {
    const b = this.state.breakouts;
    const moderator = this.moderator();
    const nameOf = (id) => this.state.participants.get(id)?.name ?? `#${id}`;
    this.setup.hidden = !moderator || b.open;
    this.running.hidden = !moderator || !b.open;
    const mine = this.mine();
    this.rooms.replaceChildren(...b.rooms.map((r) => h('li', { 'data-room': r.room },
      h('div', { class: 'room-head' }, h('b', {}, `Room ${r.room}`), r.room === mine ? h('span', { class: 'hint' }, ' (yours)') : null,
        b.open && (moderator || b.choose || r.room === mine)
          ? h('button', { class: 'join-room', onclick: () => this.join(r.room) }, 'Join') : null),
      h('span', { class: 'hint' }, r.assigned.length ? r.assigned.map(nameOf).join(', ') : 'Nobody assigned'))));
    if (!b.rooms.length) this.rooms.append(h('li', { class: 'hint' }, moderator ? 'No rooms yet.' : 'No rooms are open.'));
    // Assigning by hand: each person (who does not moderate) and a room to pick.
    const assigned = new Map(b.rooms.flatMap((r) => r.assigned.map((p) => [p, r.room])));
    const people = moderator && b.rooms.length
      ? [...this.state.participants.values()].filter((p) => p.role !== 'host' && p.role !== 'co_host').slice(0, SHOWN_PEOPLE)
      : [];
    this.people.replaceChildren(...people.map((p) => {
      const pick = h('select', { class: 'assign', 'aria-label': `Room for ${p.name}`,
        onchange: () => this.op({ action: 'assign', participant: p.id, room: Number(pick.value) || null }) },
      h('option', { value: '' }, 'No room'),
      ...b.rooms.map((r) => h('option', { value: r.room }, `Room ${r.room}`)));
      pick.value = assigned.get(p.id) ?? '';
      return h('li', { 'data-participant': p.id }, h('span', {}, p.name), pick);
    }));
  }
}
