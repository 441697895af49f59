// Signalling over WebSocket: join with a token, resume after a drop, apply sequenced events.

const PROTOCOL_VERSION = 1;

export class Signal extends EventTarget {
  constructor(token) {
    super();
    this.token = token;
    this.ws = null;
    this.session = null; // { participant, session_token }
    this.lastSeq = 0;
    this.closedByUs = false;
    this.retryMs = 500;
    this.state = 'connecting';
    // What happened to the connection, in order (the last 50 states and welcomes): tests read
    // it to tell a resume from a connection that never dropped.
    this.history = [];
  }

  connect() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/ws`);
    this.ws = ws;
    this.setState(this.session ? 'reconnecting' : 'connecting');
    ws.onopen = () => {
      const join = { type: 'join', v: PROTOCOL_VERSION, token: this.token };
      if (this.session) {
        join.resume = { ...this.session, last_seq: this.lastSeq };
      }
      ws.send(JSON.stringify(join));
    };
    ws.onmessage = (e) => this.onMessage(JSON.parse(e.data));
    ws.onclose = () => {
      if (this.ws !== ws || this.closedByUs) return;
      this.setState('reconnecting');
      setTimeout(() => this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 5000);
    };
  }

  setState(state) {
    this.state = state;
    this.remember(state);
    this.dispatchEvent(new CustomEvent('state', { detail: state }));
  }

  onMessage(msg) {
    switch (msg.type) {
      case 'welcome':
        this.session = { participant: msg.you.id, session_token: msg.session_token };
        this.retryMs = 500;
        if (msg.snapshot) this.lastSeq = msg.snapshot.seq;
        this.remember(msg.resumed ? 'welcome:resumed' : 'welcome');
        this.setState('connected');
        this.emit('welcome', msg);
        break;
      case 'events':
        for (const ev of msg.events) {
          if (ev.seq <= this.lastSeq) continue; // already in the snapshot
          this.lastSeq = ev.seq;
          this.emit('event', ev);
        }
        break;
      case 'error':
        if (msg.code === 'resume_failed' && this.session) {
          // The session expired: join afresh.
          this.session = null;
          this.lastSeq = 0;
          this.emit('reset', msg);
          return;
        }
        this.emit('error', msg);
        if (['removed', 'meeting_ended', 'unauthorized', 'token_expired', 'meeting_not_found'].includes(msg.code)) {
          this.close();
        }
        break;
      default:
        this.emit(msg.type, msg);
    }
  }

  remember(what) {
    this.history.push(what);
    if (this.history.length > 50) this.history.shift();
  }

  emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }

  close() {
    this.closedByUs = true;
    this.setState('closed');
    if (this.ws) this.ws.close();
  }
}
