// The WebRTC side: one RTCPeerConnection to the node. The client offers what it publishes;
// the server offers, once, the slots the client receives on (a few audio and video m-lines),
// and then says which meeting track each slot carries as that changes — no renegotiation
// when someone publishes. When both offer at once, the server gives way and the client
// ignores the server's offer (the server repeats it after answering ours).

const SIMULCAST = [
  { rid: 'l', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'm', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'h', maxBitrate: 1_500_000 },
];

export class Media extends EventTarget {
  constructor(signal) {
    super();
    this.signal = signal;
    this.pc = null;
    this.senders = {}; // source -> RTCRtpTransceiver
    this.tracks = {}; // source -> MediaStreamTrack (local)
    this.midTrack = new Map(); // slot mid -> the meeting track it carries now
    this.slotMedia = new Map(); // slot mid -> its MediaStreamTrack
    this.queue = Promise.resolve();
    this.awaitingAnswer = null;
    this.offersSent = 0;
    this.restarting = false;
    // TURN servers with this participant's credentials, when the node has some (sent before
    // the welcome): for networks that let no UDP through.
    this.iceServers = [];
    signal.addEventListener('ice_servers', (e) => { this.iceServers = e.detail.servers; });
  }

  get connected() {
    return this.pc && this.pc.connectionState === 'connected';
  }

  // Opens (or reopens) the connection, publishing the current local tracks.
  start() {
    // A connection replacing a previous one tells the server to drop the old one.
    this.restarting = this.pc !== null;
    if (this.pc) this.pc.close();
    this.midTrack.clear();
    this.slotMedia.clear();
    this.awaitingAnswer = null;
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', iceServers: this.iceServers });
    this.pc = pc;
    this.senders = {};
    pc.createDataChannel('myriad');
    pc.ontrack = (e) => {
      this.slotMedia.set(e.transceiver.mid, e.track);
      this.dispatchEvent(new CustomEvent('track', { detail: { mid: e.transceiver.mid, media: e.track } }));
    };
    pc.onconnectionstatechange = () => {
      this.dispatchEvent(new CustomEvent('state', { detail: pc.connectionState }));
      if (pc.connectionState === 'failed' && this.pc === pc) this.restart();
    };
    for (const [source, track] of Object.entries(this.tracks)) {
      if (track) this.addSender(source, track);
    }
    this.negotiate();
  }

  // Closes the connection but keeps the local tracks (this person went to a breakout room);
  // start() opens a new one, which replaces this one on the server.
  suspend() {
    if (this.pc) this.pc.close();
    this.midTrack.clear();
    this.slotMedia.clear();
  }

  restart() {
    this.enqueue(async () => this.start());
  }

  addSender(source, track) {
    const init = { direction: 'sendonly' };
    if (source === 'camera') init.sendEncodings = SIMULCAST;
    this.senders[source] = this.pc.addTransceiver(track, init);
  }

  enqueue(fn) {
    this.queue = this.queue.then(fn).catch((e) => console.warn('negotiation', e));
    return this.queue;
  }

  negotiate() {
    return this.enqueue(async () => {
      const pc = this.pc;
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      const tracks = Object.entries(this.senders)
        .filter(([, t]) => t.mid)
        .map(([source, t]) => ({ mid: t.mid, source }));
      const answered = new Promise((resolve) => (this.awaitingAnswer = resolve));
      this.offersSent++;
      const restart = this.restarting;
      this.restarting = false;
      if (!this.signal.send({ type: 'offer', sdp: pc.localDescription.sdp, tracks, restart })) {
        this.awaitingAnswer = null;
        this.restarting = restart;
        throw new Error('signalling down');
      }
      const sdp = await answered;
      if (pc !== this.pc) return;
      if (sdp) {
        await pc.setRemoteDescription({ type: 'answer', sdp });
      } else {
        // Refused or lost: go back to stable so later negotiations can run.
        await pc.setLocalDescription({ type: 'rollback' });
      }
    });
  }

  onAnswer(msg) {
    const resolve = this.awaitingAnswer;
    this.awaitingAnswer = null;
    if (resolve) resolve(msg.sdp);
  }

  // The server refused our offer, or the connection dropped before its answer came.
  abandonOffer() {
    this.onAnswer({ sdp: null });
  }

  onServerOffer(msg) {
    // Stale if it crossed one of our offers: the server dropped it when ours arrived.
    const crossed = this.awaitingAnswer !== null;
    const sentBefore = this.offersSent;
    this.enqueue(async () => {
      if (crossed || this.offersSent !== sentBefore) return;
      this.onSlots({ slots: msg.tracks });
      const pc = this.pc;
      await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      this.signal.send({ type: 'answer', sdp: pc.localDescription.sdp });
    });
  }

  // Which track each slot carries now.
  onSlots(msg) {
    for (const s of msg.slots) {
      if (s.track) this.midTrack.set(s.mid, s.track);
      else this.midTrack.delete(s.mid);
    }
    this.dispatchEvent(new CustomEvent('slots'));
  }

  // The remote media of each meeting track carried now: track id -> MediaStreamTrack.
  remote() {
    const out = new Map();
    for (const [mid, track] of this.midTrack) {
      const media = this.slotMedia.get(mid);
      if (media) out.set(track, media);
    }
    return out;
  }

  // Publishes or replaces the track of a source; null unpublishes it without renegotiating.
  async setTrack(source, track) {
    const old = this.tracks[source];
    this.tracks[source] = track;
    if (old && old !== track) old.stop();
    if (!this.pc) return;
    const sender = this.senders[source];
    if (sender) {
      await sender.sender.replaceTrack(track);
    } else if (track) {
      this.addSender(source, track);
      await this.negotiate();
    }
  }

  // Totals over the connection, and per meeting track received (`tracks[id]`), so a test can
  // tell that one particular track flows.
  async stats() {
    const out = { framesDecoded: 0, audioPacketsReceived: 0, videoInbound: 0, framesSent: 0, tracks: {}, path: null };
    if (!this.pc) return out;
    const report = await this.pc.getStats();
    report.forEach((s) => {
      // The way media goes: the selected pair's local candidate (a relay one through TURN).
      if (s.type === 'transport' && s.selectedCandidatePairId) {
        const local = report.get(report.get(s.selectedCandidatePairId)?.localCandidateId);
        if (local) out.path = { type: local.candidateType, protocol: local.protocol, relayProtocol: local.relayProtocol || null };
      }
      if (s.type === 'inbound-rtp') {
        const track = this.midTrack.get(s.mid);
        if (track) out.tracks[track] = { kind: s.kind, framesDecoded: s.framesDecoded || 0, packetsReceived: s.packetsReceived || 0 };
      }
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        out.framesDecoded += s.framesDecoded || 0;
        if ((s.framesDecoded || 0) > 0) out.videoInbound++;
      }
      if (s.type === 'inbound-rtp' && s.kind === 'audio') out.audioPacketsReceived += s.packetsReceived || 0;
      if (s.type === 'outbound-rtp' && s.kind === 'video') out.framesSent += s.framesSent || 0;
    });
    return out;
  }

  stop() {
    for (const t of Object.values(this.tracks)) if (t) t.stop();
    this.tracks = {};
    if (this.pc) this.pc.close();
    this.pc = null;
  }
}
