// Signalling over WebSocket: join with a token, resume after a drop, apply sequenced events.
// Which node to connect to comes from the route API; when a node stops answering, the next
// one the route named is tried, and the session resumes there.

const PROTOCOL_VERSION = 1;

export class Signal extends EventTarget {
  constructor(token, meetingId) {
    super();
    this.token = token;
    this.meetingId = meetingId;
    // A region the link names (`?region=eu`) is where this client is routed; else the
    // nodes place it (measured round trips, its address).
    this.region = new URLSearchParams(location.search).get('region');
    // Nodes to try, best first (origins); this page's own until the route answers.
    this.nodes = [location.origin];
    this.at = 0;
    this.routed = false;
    // Connections in a row that closed without a welcome: the node is given up after two.
    this.failures = 0;
    this.ws = null;
    this.session = null; // { participant, session_token }
    this.lastSeq = 0;
    // Events that never arrived (a sequence number skipped): the session resumes from the
    // last one it has, and the server sends what was missed. Counted for diagnostics.
    this.gaps = 0;
    this.closedByUs = false;
    this.retryMs = 500;
    this.state = 'connecting';
    // What happened to the connection, in order (the last 50 states and welcomes): tests read
    // it to tell a resume from a connection that never dropped.
    this.history = [];
  }

  // Asks the nodes it knows, in turn, where this meeting's clients should connect.
  async route() {
    for (const base of [...this.nodes.slice(this.at), ...this.nodes.slice(0, this.at)]) {
      try {
        const region = this.region ? `&region=${encodeURIComponent(this.region)}` : '';
        const res = await fetch(`${base}/api/v1/route?meeting=${encodeURIComponent(this.meetingId)}${region}`);
        if (!res.ok) continue;
        const route = await res.json();
        const urls = (route.candidates || []).map((c) => c.url).filter(Boolean);
        if (urls.length) {
          this.nodes = urls;
          this.at = 0;
          this.routed = true;
          // In the background: how fast this network reaches the nodes offered, so that the
          // next clients from here are routed by it.
          this.reportRtt(base, route.candidates).catch(() => {});
          return;
        }
      } catch (e) {
        // That node is down: ask the next.
      }
    }
  }

  // Times a small request to each of the first candidates (the better of two: the first
  // also opens a connection) and tells the node that routed us.
  async reportRtt(base, candidates) {
    const samples = [];
    for (const c of candidates.slice(0, 3)) {
      if (!c.url || !c.node) continue;
      let best = Infinity;
      for (let i = 0; i < 2; i++) {
        const t0 = performance.now();
        await fetch(`${c.url}/healthz`, { mode: 'no-cors', cache: 'no-store' });
        best = Math.min(best, performance.now() - t0);
      }
      samples.push({ node: c.node, rtt_ms: Math.max(best, 0.01) });
    }
    if (!samples.length) return;
    // Plain text: no preflight for another node's origin.
    await fetch(`${base}/api/v1/route/rtt`, { method: 'POST', body: JSON.stringify({ samples }) });
  }

  async connect() {
    if (!this.routed) await this.route();
    const base = this.nodes[this.at] || location.origin;
    const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/ws`);
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
      this.failures++;
      if (this.failures >= 2 && this.nodes.length > 1) {
        // This node does not take us back: the next one, and a fresh route from whoever answers.
        this.at = (this.at + 1) % this.nodes.length;
        this.failures = 0;
        this.routed = false;
        this.retryMs = 500;
      }
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
        this.failures = 0;
        if (msg.snapshot) this.lastSeq = msg.snapshot.seq;
        this.remember(msg.resumed ? 'welcome:resumed' : 'welcome');
        this.setState('connected');
        this.emit('welcome', msg);
        break;
      case 'events':
        for (const ev of msg.events) {
          if (ev.seq <= this.lastSeq) continue; // already in the snapshot
          if (this.lastSeq && ev.seq > this.lastSeq + 1) {
            this.gaps += ev.seq - this.lastSeq - 1;
            console.warn(`events ${this.lastSeq + 1}–${ev.seq - 1} missing: resuming`);
            this.ws.close();
            return;
          }
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
        if (['removed', 'denied', 'meeting_ended', 'meeting_full', 'meeting_locked', 'unauthorized', 'token_expired', 'meeting_not_found'].includes(msg.code)) {
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
