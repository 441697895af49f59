// The hosts' highlights: what a host should not miss in a busy chat. Messages of hosts and of
// speakers (panelists, the stage), questions, messages that @mention a host, and top quotes
// (messages many people liked), newest first.

import { h, closer } from './dom.js';

// Likes that make a message a top quote.
export const TOP_QUOTE_LIKES = 3;
// Highlights kept (the oldest go).
const KEPT = 200;

export class Highlights {
  // `roleOf(id)` is a participant's role, if known; `onStage(id)` whether they are on stage.
  constructor({ roleOf, onStage, onClose }) {
    this.roleOf = roleOf;
    this.onStage = onStage;
    this.items = new Map(); // key -> { kind, who, text }, oldest first
    this.list = h('ol', { id: 'highlight-list', class: 'highlights' });
    this.el = h('aside', { id: 'highlights', class: 'sheet', hidden: true },
      h('h2', {}, 'Highlights'), closer(onClose), this.list);
  }

  // Why a chat message is a highlight, if it is.
  kindOf(m) {
    const hosts = (role) => role === 'host' || role === 'co_host';
    const role = this.roleOf(m.from);
    if (m.flagged) return null;
    if ((m.likes || 0) >= TOP_QUOTE_LIKES) return `Top quote · ${m.likes} likes`;
    if (hosts(role)) return 'Host';
    if (role === 'panelist' || this.onStage(m.from)) return 'Speaker';
    if ((m.mentions || []).some((p) => hosts(this.roleOf(p)))) return 'Mentions a host';
    return null;
  }

  chat(m) {
    const kind = this.kindOf(m);
    const key = `c${m.id}`;
    if (kind) this.put(key, { kind, who: m.name, text: m.text });
    else this.items.delete(key);
    this.render();
  }

  question(q) {
    if (q.dismissed) this.items.delete(`q${q.id}`);
    else this.put(`q${q.id}`, { kind: q.answered ? 'Question · answered' : `Question · ${q.votes} votes`, who: q.from, text: q.text });
    this.render();
  }

  forget(chatId) {
    this.items.delete(`c${chatId}`);
    this.render();
  }

  put(key, item) {
    if (!this.items.has(key)) while (this.items.size >= KEPT) this.items.delete(this.items.keys().next().value);
    this.items.set(key, item);
  }

  render() {
    if (this.el.hidden) return;
    const items = [...this.items.entries()].reverse();
    this.list.replaceChildren(...items.map(([key, it]) => h('li', { 'data-highlight': key },
      h('span', { class: 'kind' }, it.kind), h('b', {}, it.who), ' ', it.text)));
    if (!items.length) this.list.append(h('li', { class: 'hint' }, 'Nothing yet: hosts, speakers, questions and top quotes show here.'));
  }
}
