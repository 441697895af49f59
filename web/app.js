// The myriad web client: start page, pre-join screen and meeting view.

import { Signal } from './signal.js';
import { Media } from './media.js';
import { h, closer } from './dom.js';
import { BreakoutsPanel } from './breakouts.js';
import { Whiteboard } from './whiteboard.js';
import { Highlights } from './highlights.js';

const app = document.getElementById('app');
const params = new URLSearchParams(location.search);

async function api(path, body) {
  const res = await fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(json.error ? json.error.message : `HTTP ${res.status}`);
  return json;
}

// ---------- start page ----------

function startPage() {
  const title = h('input', { id: 'title', placeholder: 'Meeting title (optional)', maxlength: 200 });
  const large = h('input', { id: 'large', type: 'checkbox' });
  const result = h('div', { class: 'result' });
  const create = async () => {
    try {
      // A large meeting (a town hall, a lecture): people join as attendees until promoted.
      const settings = { default_role: large.checked ? 'attendee' : 'panelist' };
      const m = await api('/api/dev/meetings', { title: title.value, settings });
      const link = `${location.origin}/m/${m.id}`;
      const hostLink = `${link}?host=${encodeURIComponent(m.host_key)}`;
      result.replaceChildren(
        h('p', {}, 'Your host link (keep it to yourself):'),
        h('a', { id: 'host-link', href: hostLink, class: 'primary-link' }, 'Start the meeting as host'),
        h('p', {}, 'The link for everyone else:'),
        h('a', { id: 'meeting-link', href: link }, link),
        h('p', { class: 'hint' }, large.checked
          ? 'They join as attendees; you invite them to speak.'
          : 'Everyone who opens it can join and speak.'),
      );
    } catch (e) {
      result.replaceChildren(h('p', { class: 'error' }, `Could not create a meeting: ${e.message}`));
    }
  };
  app.replaceChildren(
    h('section', { class: 'card start' },
      h('h1', {}, 'myriad'),
      h('p', { class: 'hint' }, 'Meetings for two people or ten thousand.'),
      title,
      h('label', { class: 'check' }, large, 'Large meeting: people join as attendees'),
      h('button', { id: 'create', class: 'primary', onclick: create }, 'Create a meeting'),
      result,
    ),
  );
}

// ---------- pre-join ----------

async function listDevices(kind) {
  const all = await navigator.mediaDevices.enumerateDevices().catch(() => []);
  return all.filter((d) => d.kind === kind);
}

async function getTrack(kind, deviceId) {
  const constraints = kind === 'audio'
    ? { audio: deviceId ? { deviceId: { exact: deviceId } } : true }
    : { video: { width: 1280, height: 720, ...(deviceId ? { deviceId: { exact: deviceId } } : {}) } };
  const stream = await navigator.mediaDevices.getUserMedia(constraints);
  return kind === 'audio' ? stream.getAudioTracks()[0] : stream.getVideoTracks()[0];
}

async function prejoin(meetingId) {
  const prefs = { name: params.get('name') || localStorage.getItem('myriad.name') || '', mic: true, cam: true };
  if (params.get('join') === '1' && prefs.name) {
    const tracks = {};
    tracks.microphone = await getTrack('audio').catch(() => null);
    tracks.camera = await getTrack('video').catch(() => null);
    return meeting(meetingId, prefs.name, tracks);
  }
  const preview = h('video', { autoplay: true, muted: true, playsinline: true, class: 'preview' });
  const name = h('input', { id: 'name', placeholder: 'Your name', value: prefs.name, maxlength: 64, autocomplete: 'name' });
  const micSel = h('select', { id: 'mic-select', 'aria-label': 'Microphone' });
  const camSel = h('select', { id: 'cam-select', 'aria-label': 'Camera' });
  const status = h('p', { class: 'hint' });
  let mic = null;
  let cam = null;
  const micBtn = h('button', { class: 'toggle on', onclick: () => toggle('mic') }, 'Mic on');
  const camBtn = h('button', { class: 'toggle on', onclick: () => toggle('cam') }, 'Camera on');

  async function openCam() {
    if (cam) cam.stop();
    cam = prefs.cam ? await getTrack('video', camSel.value).catch((e) => (status.textContent = `Camera: ${e.message}`, null)) : null;
    preview.srcObject = cam ? new MediaStream([cam]) : null;
  }
  async function openMic() {
    if (mic) mic.stop();
    mic = prefs.mic ? await getTrack('audio', micSel.value).catch((e) => (status.textContent = `Microphone: ${e.message}`, null)) : null;
  }
  async function toggle(which) {
    prefs[which] = !prefs[which];
    const btn = which === 'mic' ? micBtn : camBtn;
    btn.classList.toggle('on', prefs[which]);
    btn.textContent = `${which === 'mic' ? 'Mic' : 'Camera'} ${prefs[which] ? 'on' : 'off'}`;
    await (which === 'mic' ? openMic() : openCam());
  }
  micSel.onchange = openMic;
  camSel.onchange = openCam;

  const join = h('button', { id: 'join', class: 'primary' }, 'Join meeting');
  join.onclick = () => {
    const n = name.value.trim();
    if (!n) {
      status.textContent = 'Please enter your name.';
      name.focus();
      return;
    }
    localStorage.setItem('myriad.name', n);
    meeting(meetingId, n, { microphone: mic, camera: cam });
  };
  name.addEventListener('keydown', (e) => e.key === 'Enter' && join.click());

  app.replaceChildren(
    h('section', { class: 'card prejoin' },
      h('h1', {}, 'Ready to join?'),
      h('p', { class: 'hint' }, `Meeting ${meetingId}`),
      preview,
      h('div', { class: 'row' }, micBtn, camBtn),
      h('label', {}, 'Microphone', micSel),
      h('label', {}, 'Camera', camSel),
      name,
      join,
      status,
    ),
  );
  await Promise.all([openMic(), openCam()]);
  for (const [sel, kind] of [[micSel, 'audioinput'], [camSel, 'videoinput']]) {
    for (const d of await listDevices(kind)) {
      sel.append(h('option', { value: d.deviceId }, d.label || kind));
    }
  }
}

// ---------- meeting ----------

// What a role may do, as the server decides it (myriad-proto's Role).
const publishes = (role) => role !== 'attendee';
const moderates = (role) => role === 'host' || role === 'co_host';
// The reactions the server counts (myriad-proto's REACTIONS).
const REACTIONS = ['👍', '❤️', '😂', '😮', '👏', '🎉'];
// Why the spam filter held a message (myriad-proto's SpamReason).
const SPAM_REASONS = { flood: 'a flood of messages', repeat: 'the same message again', links: 'many links',
  blocked_word: 'a blocked word', looks_like_spam: 'looks like spam' };
const ROLE_NAMES = { host: 'Host', co_host: 'Co-host', panelist: 'Panelist', attendee: 'Attendee' };
// The roles a moderator may give: a co-host moves people between panelist and attendee only.
const givableRoles = (mine, theirs) => (mine === 'host'
  ? Object.keys(ROLE_NAMES)
  : (moderates(theirs) ? [] : ['panelist', 'attendee']));

async function fetchToken(meetingId, name) {
  if (params.get('token')) return params.get('token');
  const hostKey = params.get('host');
  const { token } = await api('/api/dev/token', { meeting: meetingId, name, ...(hostKey ? { host_key: hostKey } : {}) });
  return token;
}

// A meeting's view. In a breakout room `room` holds its number, the room's `token`, and the
// main meeting's `parent` ({ back(text), endsAt() }), which it returns to when it ends.
async function meeting(meetingId, name, localTracks, room = null) {
  let token = room?.token;
  try {
    token ||= await fetchToken(meetingId, name);
  } catch (e) {
    return fatal(`Cannot join: ${e.message}`);
  }
  const signal = new Signal(token, meetingId);
  const media = new Media(signal);
  media.tracks = { ...localTracks };

  const state = {
    me: null,
    count: 0,
    participants: new Map(), // id -> info
    tracks: new Map(), // track id -> info
    speakers: [],
    remote: new Map(), // track id -> MediaStreamTrack
    pinned: new Set(), // participant ids whose camera this client always wants
    hands: { raised: 0, first: [] }, // the hand queue: how many, the earliest
    audience: { on: false, chat: true, chat_hosts: true, reactions: true, hands: true },
    stage: [], // who is on stage (they publish whatever their role)
    handUp: false,
    waitingRoom: { on: false, waiting: 0, first: [] }, // who waits to be let in (moderators act)
    breakouts: { open: false, choose: false, remaining_s: null, rooms: [] },
    chats: new Map(), // chat message id -> message (the latest 500), for likes and highlights
    breakoutEndsAt: null, // when the rooms' timer calls everyone back (ms since the epoch)
    defaultRole: 'panelist', // the role of people who join by link
    spotlight: null, // whom a host put in the spotlight
    mentioned: [], // whom a host's @mention features for a while
  };
  // The breakout room this client is in (its view), while it is in one.
  let inRoom = null;
  const onStage = (id) => state.stage.some((p) => p.id === id);
  const canPublish = () => Boolean(state.me && (publishes(state.me.role) || onStage(state.me.id)));
  const handle = { signal, media, state };
  window.myriad = handle;

  const grid = h('div', { id: 'grid', class: 'grid' });
  const stage = h('div', { id: 'stage', class: 'stage' });
  const countEl = h('span', { id: 'count' }, '…');
  const lockedEl = h('span', { id: 'locked', class: 'locked', hidden: true }, ' · locked');
  const banner = h('div', { id: 'banner', class: 'banner', hidden: true });
  const notice = h('div', { id: 'notice', class: 'notice', role: 'status', hidden: true });
  function tell(text, ms = 5000) {
    notice.textContent = text;
    notice.hidden = false;
    clearTimeout(tell.t);
    tell.t = setTimeout(() => (notice.hidden = true), ms);
  }
  const micBtn = h('button', { id: 'mic', class: 'round', title: 'Mute microphone' }, 'Mic');
  const camBtn = h('button', { id: 'cam', class: 'round', title: 'Turn camera off' }, 'Cam');
  const screenBtn = h('button', { id: 'screen', class: 'round', title: 'Share your screen' }, 'Share');
  const chatBtn = h('button', { id: 'chat-toggle', class: 'round', title: 'Chat' }, 'Chat');
  const handBtn = h('button', { id: 'hand', class: 'round', title: 'Ask to speak' }, 'Raise hand');
  const reactions = h('div', { id: 'reactions', class: 'reactions', hidden: true },
    ...REACTIONS.map((emoji) => h('button', { class: 'reaction', 'data-emoji': emoji,
      onclick: () => signal.send({ type: 'react', emoji }) }, emoji)));
  const reactBtn = h('button', { id: 'react', class: 'round', title: 'React',
    onclick: () => (reactions.hidden = !reactions.hidden) }, 'React');
  const floats = h('div', { class: 'floats', 'aria-hidden': 'true' });
  const handsBtn = h('button', { id: 'hands-toggle', class: 'round', title: 'Raised hands and the stage', hidden: true }, 'Hands');
  const pollsBtn = h('button', { id: 'polls-toggle', class: 'round', title: 'Polls' }, 'Polls');
  const qaBtn = h('button', { id: 'qa-toggle', class: 'round', title: 'Questions and answers' }, 'Q&A');
  const qaInput = h('input', { id: 'qa-input', placeholder: 'Ask the hosts a question', maxlength: 500, autocomplete: 'off' });
  const qaForm = h('form', { class: 'chat-form' }, qaInput, h('button', { id: 'qa-ask', class: 'primary', type: 'submit' }, 'Ask'));
  const qaList = h('ol', { id: 'qa-list', class: 'questions' });
  const qaPanel = h('aside', { id: 'qa', class: 'sheet', hidden: true },
    h('h2', {}, 'Questions'), closer(() => toggleSheet(qaPanel)), qaForm, qaList);
  const pollList = h('div', { id: 'poll-list' });
  const pollsPanel = h('aside', { id: 'polls', class: 'sheet', hidden: true },
    h('h2', {}, 'Polls'), closer(() => toggleSheet(pollsPanel)), pollList);
  const leaveBtn = room
    ? h('button', { id: 'leave', class: 'round danger', title: 'Back to the main room' }, 'Leave room')
    : h('button', { id: 'leave', class: 'round danger', title: 'Leave the meeting' }, 'Leave');
  const breakouts = new BreakoutsPanel({ signal, state, join: (r) => goToRoom(r),
    moderator: () => Boolean(state.me && moderates(state.me.role)), onClose: () => toggleSheet(breakouts.el) });
  const roomsBtn = h('button', { id: 'rooms-toggle', class: 'round', title: 'Breakout rooms', hidden: true }, 'Rooms');
  const board = new Whiteboard({ signal, mayDraw: () => canPublish() || Boolean(state.me && moderates(state.me.role)),
    moderator: () => Boolean(state.me && moderates(state.me.role)), onClose: () => boardBtn.onclick() });
  handle.board = board;
  const boardBtn = h('button', { id: 'board-toggle', class: 'round', title: 'Whiteboard' }, 'Board');
  const highlights = new Highlights({ roleOf: (id) => state.participants.get(id)?.role, onStage,
    onClose: () => toggleSheet(highlights.el) });
  const highlightsBtn = h('button', { id: 'highlights-toggle', class: 'round', title: 'Highlights for the hosts', hidden: true }, 'Highlights');
  const toolbar = h('footer', { class: 'toolbar' }, micBtn, camBtn, screenBtn, reactBtn, handBtn, chatBtn, pollsBtn, qaBtn, boardBtn, handsBtn, highlightsBtn, roomsBtn, leaveBtn);
  const handList = h('ol', { id: 'hand-list', class: 'people' });
  const stageList = h('ol', { id: 'stage-list', class: 'people' });
  const lowerAll = h('button', { id: 'lower-all', onclick: () => signal.send({ type: 'lower_hands' }) }, 'Lower all hands');
  const muteAll = h('button', { id: 'mute-all', onclick: () => signal.send({ type: 'mute_all' }) }, 'Mute everyone');
  const lockBtn = h('button', { id: 'lock', onclick: () => signal.send({ type: 'lock', locked: !state.locked }) }, 'Lock meeting');
  // Ending for everyone takes a second click, so one slip ends nothing.
  const endBtn = h('button', { id: 'end-all', class: 'danger' }, 'End for all');
  endBtn.onclick = () => {
    if (endBtn.dataset.armed) return signal.send({ type: 'end_meeting' });
    endBtn.dataset.armed = '1';
    endBtn.textContent = 'Click again to end';
    setTimeout(() => { delete endBtn.dataset.armed; endBtn.textContent = 'End for all'; }, 4000);
  };
  // Audience mode and what attendees may do, as switches the moderators flip live.
  const AUDIENCE = [['on', 'Audience mode: attendees see the stage and speakers only'], ['chat', 'Attendees may chat'],
    ['chat_hosts', 'Attendees may write to the hosts'],
    ['reactions', 'Reactions'], ['hands', 'Raised hands']];
  const audienceBoxes = Object.fromEntries(AUDIENCE.map(([key]) => [key, h('input', { type: 'checkbox', id: `audience-${key}` })]));
  for (const [key, box] of Object.entries(audienceBoxes)) {
    // Applied at once here (the server's event confirms it), so quick clicks add up.
    box.onchange = () => {
      state.audience = { ...state.audience, [key]: box.checked };
      signal.send({ type: 'set_audience', audience: state.audience });
    };
  }
  const audienceForm = h('div', { class: 'audience' },
    ...AUDIENCE.map(([key, label]) => h('label', { class: 'check' }, audienceBoxes[key], label)));
  // The waiting room: a switch, the queue (admit or deny each), and all at once.
  const waitingBox = h('input', { type: 'checkbox', id: 'waiting-room-on',
    onchange: () => signal.send({ type: 'set_waiting_room', on: waitingBox.checked }) });
  const waitingList = h('ol', { id: 'waiting-list', class: 'people' });
  const decideAll = (admit) => signal.send({ type: 'admit', admit });
  const admitAll = h('button', { id: 'admit-all', onclick: () => decideAll(true) }, 'Admit all');
  const denyAll = h('button', { id: 'deny-all', onclick: () => decideAll(false) }, 'Deny all');
  // Hosts choose the role of people who join by link from now on.
  const defaultRole = h('select', { id: 'default-role', 'aria-label': 'Newcomers join as',
    onchange: () => signal.send({ type: 'set_default_role', role: defaultRole.value }) },
  h('option', { value: 'panelist' }, 'Panelists (may talk)'), h('option', { value: 'attendee' }, 'Attendees (watch)'));
  const defaultRoleRow = h('label', {}, 'Newcomers join as', defaultRole);
  const handsPanel = h('aside', { id: 'hands', class: 'sheet', hidden: true },
    h('h2', {}, 'Waiting room'), closer(() => toggleSheet(handsPanel)),
    h('label', { class: 'check' }, waitingBox, 'Newcomers wait until let in'), waitingList, h('div', { class: 'row wrap' }, admitAll, denyAll),
    h('h2', {}, 'Raised hands'), handList, lowerAll, h('h2', {}, 'On stage'), stageList,
    h('h2', {}, 'Meeting'), h('div', { class: 'row wrap' }, muteAll, lockBtn, endBtn), defaultRoleRow,
    h('h2', {}, 'Audience'), audienceForm);
  const chatLog = h('ol', { id: 'chat-log', class: 'chat-log', 'aria-live': 'polite' });
  const chatInput = h('input', { id: 'chat-input', placeholder: 'Message everyone', maxlength: 2000, autocomplete: 'off' });
  const chatTo = h('select', { id: 'chat-to', 'aria-label': 'To', onchange: () => paintButtons() },
    h('option', { value: 'all' }, 'Everyone'), h('option', { value: 'hosts' }, 'Hosts'));
  const chatForm = h('form', { class: 'chat-form' }, chatTo, chatInput, h('button', { class: 'primary', type: 'submit' }, 'Send'));
  const chatPanel = h('aside', { id: 'chat', class: 'chat', hidden: true },
    h('h2', {}, 'Chat'), closer(() => chatBtn.onclick()), chatLog, chatForm);
  const waitingScreen = h('section', { id: 'waiting', class: 'card waiting', hidden: true },
    h('h1', {}, 'Waiting for a host to let you in…'), h('p', {}, 'Stay on this page: the meeting opens here when you are let in.'));
  const roomClock = h('span', { id: 'room-clock', class: 'hint' });
  const title = room ? [`Room ${room.number}`, roomClock] : [meetingId, lockedEl];
  const root = h('div', { class: room ? 'meeting in-room' : 'meeting' }, waitingScreen,
    h('header', {}, h('strong', {}, ...title), h('span', { class: 'count' }, countEl, ' in the meeting')),
    banner, notice, stage, grid, board.el, chatPanel, handsPanel, pollsPanel, qaPanel, breakouts.el, highlights.el, floats, reactions, toolbar,
  );
  app.replaceChildren(root);

  const muted = { microphone: !localTracks.microphone, camera: !localTracks.camera, screen: true };
  function paintButtons() {
    for (const b of [micBtn, camBtn, screenBtn]) b.hidden = !canPublish();
    const moderator = Boolean(state.me && moderates(state.me.role));
    handBtn.hidden = !state.me || moderator || onStage(state.me.id) || !state.audience.hands;
    reactBtn.hidden = !state.audience.reactions;
    if (!state.audience.reactions) reactions.hidden = true;
    // To everyone, or to the hosts: as the hosts allow attendees.
    const free = canPublish() || Boolean(state.me && moderates(state.me.role));
    const mayAll = !state.chatBanned && (state.audience.chat || free);
    const mayHosts = !state.chatBanned && (state.audience.chat_hosts !== false || mayAll);
    chatTo.querySelector('option[value=all]').disabled = !mayAll;
    if (!mayAll && mayHosts) chatTo.value = 'hosts';
    chatInput.disabled = !(chatTo.value === 'hosts' ? mayHosts : mayAll);
    chatInput.placeholder = !chatInput.disabled ? (chatTo.value === 'hosts' ? 'Message the hosts' : 'Message everyone')
      : (state.chatBanned ? 'A host stopped your chat' : 'The hosts turned chat off');
    for (const [key] of AUDIENCE) audienceBoxes[key].checked = state.audience[key];
    handBtn.classList.toggle('active', state.handUp);
    handBtn.textContent = state.handUp ? 'Lower hand' : 'Raise hand';
    handsBtn.hidden = !moderator;
    highlightsBtn.hidden = !moderator;
    roomsBtn.hidden = Boolean(room) || !breakouts.offered();
    board.render();
    const waiting = state.waitingRoom.waiting;
    handsBtn.textContent = (state.hands.raised ? `Hands (${state.hands.raised})` : 'Hands') + (waiting ? ` · ${waiting} waiting` : '');
    waitingBox.checked = state.waitingRoom.on;
    defaultRoleRow.hidden = state.me?.role !== 'host';
    defaultRole.value = state.defaultRole;
    lockedEl.hidden = !state.locked;
    lockBtn.textContent = state.locked ? 'Unlock meeting' : 'Lock meeting';
    micBtn.classList.toggle('off', muted.microphone);
    micBtn.textContent = muted.microphone ? 'Unmute' : 'Mute';
    camBtn.classList.toggle('off', muted.camera);
    camBtn.textContent = muted.camera ? 'Cam on' : 'Cam off';
    screenBtn.classList.toggle('active', !muted.screen);
    screenBtn.textContent = muted.screen ? 'Share' : 'Stop share';
  }

  // Tiles: one per participant on stage (anyone with a track), plus one for a screen share.
  const tiles = new Map(); // key -> { el, video, label }
  function tile(key, label) {
    let t = tiles.get(key);
    if (!t) {
      const video = h('video', { autoplay: true, playsinline: true, muted: true });
      const name = h('span', { class: 'name' });
      const avatar = h('div', { class: 'avatar' });
      const el = h('div', { class: 'tile novideo', 'data-key': key }, video, avatar, name);
      (key.startsWith('s') ? stage : grid).append(el);
      t = { el, video, name, avatar };
      tiles.set(key, t);
    }
    t.name.textContent = label;
    t.avatar.textContent = (label || '?').trim().slice(0, 1).toUpperCase();
    return t;
  }
  // A moderator's control on someone's tile: their role, changeable where this one may.
  function roleControl(t, p) {
    const givable = state.me && moderates(state.me.role) ? givableRoles(state.me.role, p.role) : [];
    if (!givable.length) {
      t.role?.remove();
      t.role = null;
      return;
    }
    if (!t.role) {
      t.role = h('select', { class: 'role', 'aria-label': 'Role', onclick: (e) => e.stopPropagation() });
      t.role.onchange = () => signal.send({ type: 'set_role', participant: p.id, role: t.role.value });
      t.el.append(t.role);
    }
    const want = givable.includes(p.role) ? givable : [p.role, ...givable];
    if (t.role.dataset.options !== want.join()) {
      t.role.replaceChildren(...want.map((r) => h('option', { value: r }, ROLE_NAMES[r])));
      t.role.dataset.options = want.join();
    }
    t.role.value = p.role;
  }
  // A moderator's actions on someone's tile: mute the microphone, stop the camera, remove.
  function moderation(t, p, own) {
    const may = Boolean(state.me && moderates(state.me.role)) && !(moderates(p.role) && state.me.role !== 'host');
    if (!may) {
      t.mod?.remove();
      t.mod = null;
      return;
    }
    if (!t.mod) {
      const act = (label, cls, msg) => h('button', { class: cls, title: label,
        onclick: (e) => { e.stopPropagation(); signal.send(msg()); } }, label);
      t.mod = h('div', { class: 'mod' },
        act('Mute', 'mute-other', () => ({ type: 'mute_other', participant: p.id, source: 'microphone' })),
        act('Stop video', 'stop-video', () => ({ type: 'mute_other', participant: p.id, source: 'camera' })),
        act('Spotlight', 'spotlight', () => ({ type: 'spotlight', participant: state.spotlight === p.id ? null : p.id })),
        act('Remove', 'remove', () => ({ type: 'remove', participant: p.id })));
      t.el.append(t.mod);
    }
    const live = (source) => own.some((x) => x.source === source && !x.muted);
    t.mod.querySelector('.mute-other').hidden = !live('microphone');
    t.mod.querySelector('.stop-video').hidden = !live('camera');
    t.mod.querySelector('.spotlight').textContent = state.spotlight === p.id ? 'End spotlight' : 'Spotlight';
  }
  function dropTile(key) {
    const t = tiles.get(key);
    if (t) t.el.remove();
    tiles.delete(key);
  }

  const audioEls = new Map(); // slot mid -> <audio>
  function render() {
    countEl.textContent = String(state.count);
    const keep = new Set();
    if (state.me) {
      keep.add('me');
      const t = tile('me', `${state.me.name} (you)`);
      const cam = media.tracks.camera;
      t.el.classList.toggle('novideo', !cam || muted.camera);
      if (cam && t.video.srcObject?.getVideoTracks()[0] !== cam) t.video.srcObject = new MediaStream([cam]);
      t.el.classList.toggle('muted', muted.microphone);
      t.el.classList.toggle('speaking', state.speakers.includes(state.me.id));
    }
    for (const p of state.participants.values()) {
      if (state.me && p.id === state.me.id) continue;
      const own = [...state.tracks.values()].filter((t) => t.participant === p.id);
      const key = `p${p.id}`;
      keep.add(key);
      const t = tile(key, p.name);
      if (!t.el.dataset.participant) {
        t.el.dataset.participant = p.id;
        t.el.title = 'Click to pin';
        t.el.onclick = () => togglePin(p.id);
      }
      t.el.classList.toggle('pinned', state.pinned.has(p.id));
      t.el.classList.toggle('onstage', onStage(p.id));
      t.el.classList.toggle('featured', state.spotlight === p.id || state.mentioned.includes(p.id));
      roleControl(t, p);
      moderation(t, p, own);
      const camTrack = own.find((x) => x.source === 'camera');
      const mic = own.find((x) => x.source === 'microphone');
      const remote = camTrack && !camTrack.muted ? state.remote.get(camTrack.id) : null;
      if (remote && t.video.srcObject?.getVideoTracks()[0] !== remote) t.video.srcObject = new MediaStream([remote]);
      // A slot that carried this camera may carry someone else's now: not shown here.
      if (!remote && t.video.srcObject) t.video.srcObject = null;
      t.el.classList.toggle('novideo', !remote);
      t.el.classList.toggle('muted', !mic || mic.muted);
      t.el.classList.toggle('speaking', state.speakers.includes(p.id));
      const screen = own.find((x) => x.source === 'screen' && !x.muted);
      const screenMedia = screen && state.remote.get(screen.id);
      if (screenMedia) {
        keep.add(`s${screen.id}`);
        const s = tile(`s${screen.id}`, `${p.name}'s screen`);
        s.el.classList.add('screen');
        s.el.classList.remove('novideo');
        if (s.video.srcObject?.getVideoTracks()[0] !== screenMedia) s.video.srcObject = new MediaStream([screenMedia]);
      }
    }
    for (const key of [...tiles.keys()]) if (!keep.has(key)) dropTile(key);
    root.classList.toggle('sharing', stage.childElementCount > 0);
    layout();
    paintButtons();
  }

  // Sizes the people tiles so that all of them fit the space they have, as large as possible.
  function layout() {
    const n = grid.childElementCount;
    if (!n) return;
    const gap = 8;
    const width = grid.clientWidth - gap;
    const height = grid.clientHeight - gap;
    let best = 0;
    for (let cols = 1; cols <= n; cols++) {
      const rows = Math.ceil(n / cols);
      const w = Math.min(width / cols - gap, ((height / rows - gap) * 16) / 9);
      best = Math.max(best, w);
    }
    grid.style.setProperty('--tile-w', `${Math.max(80, Math.floor(best))}px`);
  }
  new ResizeObserver(layout).observe(grid);

  function applySnapshot(s) {
    state.count = s.count;
    state.hands = s.hands || { raised: 0, first: [] };
    state.locked = Boolean(s.locked);
    state.spotlight = s.spotlight ?? null;
    state.defaultRole = s.default_role || 'panelist';
    state.mentioned = s.mentioned || [];
    if (s.breakouts) breakoutsChanged(s.breakouts);
    state.waitingRoom = s.waiting_room || state.waitingRoom;
    state.audience = s.audience || state.audience;
    state.questions = new Map((s.questions || []).map((q) => [q.id, q]));
    for (const q of s.questions || []) highlights.question(q);
    renderQuestions();
    state.stage = s.stage || [];
    state.participants = new Map([...s.participants, ...state.stage].map((p) => [p.id, p]));
    // After the roster: the hosts' highlights go by who wrote each message.
    showChatHistory(s.chat || []);
    state.polls = new Map((s.polls || []).map((p) => [p.info.id, p]));
    renderPolls();
    state.tracks = new Map(s.tracks.map((t) => [t.id, t]));
    state.speakers = s.active_speakers;
  }

  function applyEvent(ev) {
    switch (ev.kind) {
      case 'participant_joined': state.participants.set(ev.participant.id, ev.participant); break;
      case 'participant_left': state.participants.delete(ev.participant); break;
      case 'count': state.count = ev.count; break;
      case 'track_published': state.tracks.set(ev.track.id, ev.track); break;
      case 'track_unpublished': state.tracks.delete(ev.track); break;
      case 'track_muted': {
        const t = state.tracks.get(ev.track);
        if (t) {
          t.muted = ev.muted;
          // A moderator muted us: mute locally too.
          if (state.me && t.participant === state.me.id && ev.muted && !muted[t.source]) setMuted(t.source, true, false);
        }
        break;
      }
      case 'active_speakers': state.speakers = ev.participants; break;
      case 'chat': addChat(ev); break;
      case 'chat_deleted': chatLog.querySelector(`li[data-chat="${ev.id}"]`)?.remove(); highlights.forget(ev.id); break;
      case 'chat_liked':
        for (const { id, likes } of ev.likes) {
          const m = state.chats.get(id);
          if (m) addChat({ ...m, likes });
        }
        break;
      case 'chat_banned':
        if (state.me && ev.participant === state.me.id) {
          state.chatBanned = ev.banned;
          tell(ev.banned ? 'A host stopped your chat.' : 'You may chat again.');
        }
        break;
      case 'role_changed': roleChanged(ev.participant); break;
      case 'hands': handsChanged(ev); break;
      case 'stage': stageChanged(ev.participants); break;
      case 'reactions': floatReactions(ev.counts); break;
      case 'breakouts': breakoutsChanged(ev.breakouts); break;
      case 'featured': state.spotlight = ev.spotlight; state.mentioned = ev.mentioned; break;
      case 'default_role': state.defaultRole = ev.role; break;
      case 'drawn':
      case 'erased':
      case 'board_cleared': board.apply(ev); break;
      case 'broadcast': (inRoom || handle).tell(`${ev.from} to every room: ${ev.text}`, 15000); break;
      case 'locked': state.locked = ev.locked; break;
      case 'waiting_room': state.waitingRoom = ev.room; renderHands(); break;
      case 'audience': state.audience = ev.audience; break;
      case 'question_asked':
      case 'question_updated': questionChanged(ev.question); break;
      case 'poll_opened': pollOpened(ev.poll); break;
      case 'poll_results': pollResults(ev.results); break;
      case 'poll_closed': pollResults(ev.results, true); break;
      case 'meeting_ended': ended('The meeting has ended.'); break;
    }
  }

  // Someone's role changed; when it is this client's, what it may do follows at once.
  function roleChanged(info) {
    // A large meeting's roster holds those who may appear on stage, and who it already knew.
    if (state.participants.has(info.id) || publishes(info.role)) state.participants.set(info.id, info);
    if (!state.me || info.id !== state.me.id) return;
    const could = publishes(state.me.role);
    state.me = info;
    if (could && !canPublish()) stopPublishing();
    tell(`You are now ${ROLE_NAMES[info.role].toLowerCase()}${canPublish() && !could ? ': you may turn on your microphone and camera' : ''}.`);
  }

  // The server has stopped our tracks: stop the devices and offer nothing to send.
  function stopPublishing() {
    muted.microphone = muted.camera = muted.screen = true;
    for (const track of Object.values(media.tracks)) track?.stop();
    media.tracks = {};
    media.restart();
  }

  // A tick's reactions rise over the meeting: a few of each (proportionally, at most 16 in
  // all), however many thousands were counted. `state.reacted` keeps the totals.
  state.reacted = {};
  function floatReactions(counts) {
    const total = counts.reduce((n, c) => n + c.count, 0);
    for (const c of counts) {
      state.reacted[c.emoji] = (state.reacted[c.emoji] || 0) + c.count;
      const shown = Math.max(1, Math.round((16 * c.count) / Math.max(total, 16)));
      for (let i = 0; i < shown; i++) {
        const el = h('span', { class: 'float' }, c.emoji);
        el.style.left = `${10 + Math.random() * 80}%`;
        el.style.animationDelay = `${Math.random() * 400}ms`;
        el.addEventListener('animationend', () => el.remove());
        floats.append(el);
      }
    }
  }

  // ---- Q&A: ask, upvote once, sorted by votes (answered ones last); moderators answer (in
  // writing or live) or dismiss.
  state.questions = new Map(); // id -> question
  state.upvoted = new Set();
  function questionChanged(q) {
    if (q.dismissed) state.questions.delete(q.id);
    else state.questions.set(q.id, q);
    highlights.question(q);
    renderQuestions();
  }
  function renderQuestions() {
    const moderator = Boolean(state.me && moderates(state.me.role));
    const sorted = [...state.questions.values()].sort((a, b) => (a.answered - b.answered) || (b.votes - a.votes) || (a.id - b.id));
    const send = (msg) => signal.send(msg);
    qaList.replaceChildren(...sorted.map((q) => {
      const li = h('li', { class: q.answered ? 'answered' : '', 'data-question': q.id },
        h('div', { class: 'q' }, h('b', {}, q.from), ' ', q.text),
        q.answered ? h('div', { class: 'a' }, q.answer ? `Answer: ${q.answer}` : 'Answered live') : null);
      const actions = h('div', { class: 'row' });
      const mine = state.upvoted.has(q.id);
      actions.append(h('button', { class: 'upvote', disabled: mine || q.answered,
        onclick: () => { if (send({ type: 'upvote', question: q.id })) { state.upvoted.add(q.id); renderQuestions(); } } },
      `▲ ${q.votes}`));
      if (moderator && !q.answered) {
        const text = h('input', { class: 'answer-text', placeholder: 'Answer (or answer live)', maxlength: 500 });
        actions.append(text,
          h('button', { class: 'answer', onclick: () => send({ type: 'answer_question', question: q.id, text: text.value.trim() || null }) }, 'Answer'),
          h('button', { class: 'dismiss', onclick: () => send({ type: 'dismiss_question', question: q.id }) }, 'Dismiss'));
      }
      li.append(actions);
      return li;
    }));
    if (!sorted.length) qaList.append(h('li', { class: 'hint' }, 'No questions yet.'));
    const open = sorted.filter((q) => !q.answered).length;
    qaBtn.textContent = open ? `Q&A (${open})` : 'Q&A';
  }
  qaForm.onsubmit = (e) => {
    e.preventDefault();
    const text = qaInput.value.trim();
    if (text && signal.send({ type: 'ask', text })) qaInput.value = '';
  };

  // ---- polls: answer forms for the open ones, live results for all; moderators open and
  // close them.
  state.polls = new Map(); // id -> { info, results }
  state.voted = new Set();
  function pollOpened(info) {
    state.polls.set(info.id, { info, results: { poll: info.id, voters: 0, counts: [] } });
    if (!state.me || !moderates(state.me.role)) tell(`New poll: ${info.question}`);
    renderPolls();
  }
  function pollResults(results, closed = false) {
    const p = state.polls.get(results.poll);
    if (!p) return;
    p.results = results;
    if (closed) p.info.open = false;
    renderPolls();
  }
  function optionsOf(kind) {
    if (kind.type === 'rating') return Array.from({ length: kind.max }, (_, i) => String(i + 1));
    return kind.options || [];
  }
  // A poll's card is made once and updated in place: results arriving while someone picks
  // an answer must not take the half-made choice away.
  const pollCards = new Map(); // poll id -> { el, hint, bars, form, close }
  function pollCard({ info, results }) {
    let c = pollCards.get(info.id);
    if (!c) {
      c = { hint: h('p', { class: 'hint' }), bars: h('div', { class: 'bars' }) };
      c.el = h('section', { class: 'poll', 'data-poll': info.id }, h('h3', {}, info.question), c.hint);
      if (info.open && !state.voted.has(info.id)) c.el.append(c.form = answerForm(info));
      c.el.append(c.bars);
      if (info.open && state.me && moderates(state.me.role)) {
        c.el.append(c.close = h('button', { class: 'close-poll', onclick: () => signal.send({ type: 'close_poll', poll: info.id }) }, 'Close poll'));
      }
      pollCards.set(info.id, c);
    }
    c.hint.textContent = `${results.voters} answered${info.anonymous ? ' · anonymous' : ''}${info.open ? '' : ' · closed'}`;
    if (c.form && (!info.open || state.voted.has(info.id))) c.form = c.form.remove();
    if (c.close && !info.open) c.close = c.close.remove();
    c.bars.replaceChildren(...optionsOf(info.kind).map((label, i) => {
      const n = results.counts[i] || 0;
      const pct = results.voters ? Math.round((100 * n) / results.voters) : 0;
      return h('div', { class: 'bar' },
        h('span', { class: 'fill', style: `width:${pct}%` }),
        h('span', { class: 'label' }, label), h('span', { class: 'n' }, `${n} · ${pct}%`));
    }));
    return c.el;
  }
  function answerForm(info) {
    const kind = info.kind;
    const name = `poll-${info.id}`;
    const form = h('form', { class: 'answer' });
    if (kind.type === 'text') {
      form.append(h('input', { name, maxlength: 500, placeholder: 'Your answer' }));
    } else {
      const type = kind.type === 'multiple' ? 'checkbox' : 'radio';
      optionsOf(kind).forEach((label, i) => form.append(
        h('label', { class: 'check' }, h('input', { type, name, value: String(i) }), label)));
    }
    form.append(h('button', { class: 'primary vote', type: 'submit' }, 'Answer'));
    form.onsubmit = (e) => {
      e.preventDefault();
      const picked = [...form.querySelectorAll(`input[name="${name}"]`)]
        .filter((x) => x.type === 'text' || x.checked).map((x) => x.value);
      let answer;
      if (kind.type === 'text') answer = { type: 'text', text: picked[0] || '' };
      else if (kind.type === 'multiple') answer = { type: 'multiple', options: picked.map(Number) };
      else if (kind.type === 'rating') answer = { type: 'rating', value: Number(picked[0]) + 1 };
      else answer = { type: 'single', option: Number(picked[0]) };
      if (!picked.length || picked[0] === '') return tell('Choose an answer first.');
      if (signal.send({ type: 'vote', poll: info.id, answer })) {
        state.voted.add(info.id);
        renderPolls();
      }
    };
    return form;
  }
  function newPollForm() {
    const question = h('input', { id: 'poll-question', placeholder: 'Question', maxlength: 500 });
    const type = h('select', { id: 'poll-type', 'aria-label': 'Kind' },
      h('option', { value: 'single' }, 'One choice'), h('option', { value: 'multiple' }, 'Several choices'),
      h('option', { value: 'rating' }, 'Rating 1–5'), h('option', { value: 'text' }, 'Free text'));
    const options = h('textarea', { id: 'poll-options', rows: 3, placeholder: 'Options, one per line' });
    const anonymous = h('input', { id: 'poll-anonymous', type: 'checkbox' });
    const form = h('form', { class: 'new-poll' }, question, type, options,
      h('label', { class: 'check' }, anonymous, 'Anonymous'),
      h('button', { id: 'poll-open', class: 'primary', type: 'submit' }, 'Open poll'));
    type.onchange = () => (options.hidden = !['single', 'multiple'].includes(type.value));
    form.onsubmit = (e) => {
      e.preventDefault();
      const kind = { type: type.value };
      if (['single', 'multiple'].includes(type.value)) kind.options = options.value.split('\n').map((o) => o.trim()).filter(Boolean);
      if (type.value === 'rating') kind.max = 5;
      if (signal.send({ type: 'create_poll', question: question.value, kind, anonymous: anonymous.checked })) {
        question.value = '';
        options.value = '';
      }
    };
    return form;
  }
  let pollForm = null;
  function renderPolls() {
    const moderator = Boolean(state.me && moderates(state.me.role));
    if (moderator && !pollForm) pollForm = newPollForm();
    const cards = [...state.polls.values()].reverse().map(pollCard);
    // Only a new card (or the first render) changes the list; cards in it stay where they are.
    const wanted = [...(moderator ? [pollForm] : []), ...cards];
    if (wanted.length !== pollList.children.length || wanted.some((el, k) => pollList.children[k] !== el)) {
      pollList.replaceChildren(...wanted);
    }
    if (!cards.length) pollList.append(h('p', { class: 'hint' }, 'No polls yet.'));
    const waiting = [...state.polls.values()].filter((p) => p.info.open && !state.voted.has(p.info.id)).length;
    pollsBtn.textContent = waiting && !moderator ? `Polls (${waiting})` : 'Polls';
  }

  function handsChanged(ev) {
    state.hands = ev.hands;
    if (state.me && state.handUp && (ev.lowered || []).includes(state.me.id)) {
      state.handUp = false;
      tell('A host lowered your hand.');
    }
    renderHands();
  }

  function stageChanged(participants) {
    const me = state.me?.id;
    const was = canPublish();
    const wasOn = onStage(me);
    state.stage = participants;
    for (const p of participants) state.participants.set(p.id, p);
    if (onStage(me) && !wasOn) {
      state.handUp = false;
      tell('You are on stage: you may turn on your microphone and camera.');
    } else if (wasOn && !onStage(me)) {
      if (was && !canPublish()) stopPublishing();
      tell('You are off the stage.');
    }
    renderHands();
  }

  // The moderators' panel: the hand queue (invite or lower each) and the stage.
  function renderHands() {
    const person = (p, ...actions) => h('li', { 'data-participant': p.id }, h('span', {}, p.name), ...actions);
    handList.replaceChildren(...state.hands.first.map((p) => person(p,
      h('button', { class: 'invite', onclick: () => signal.send({ type: 'stage', participant: p.id, on: true }) }, 'Invite to stage'),
      h('button', { class: 'lower', onclick: () => signal.send({ type: 'lower_hands', participant: p.id }) }, 'Lower'))));
    if (state.hands.raised > state.hands.first.length) {
      handList.append(h('li', { class: 'hint' }, `and ${state.hands.raised - state.hands.first.length} more`));
    }
    if (!state.hands.raised) handList.append(h('li', { class: 'hint' }, 'No hands raised.'));
    lowerAll.hidden = !state.hands.raised;
    stageList.replaceChildren(...state.stage.map((p) => person(p,
      h('button', { class: 'unstage', onclick: () => signal.send({ type: 'stage', participant: p.id, on: false }) }, 'Remove'))));
    if (!state.stage.length) stageList.append(h('li', { class: 'hint' }, 'Nobody is on stage.'));
    const room = state.waitingRoom;
    const decide = (w, admit) => signal.send({ type: 'admit', ticket: w.ticket, admit });
    waitingList.replaceChildren(...room.first.map((w) => h('li', { 'data-ticket': w.ticket }, h('span', {}, w.name),
      h('button', { class: 'admit', onclick: () => decide(w, true) }, 'Admit'),
      h('button', { class: 'deny', onclick: () => decide(w, false) }, 'Deny'))));
    if (room.waiting > room.first.length) waitingList.append(h('li', { class: 'hint' }, `and ${room.waiting - room.first.length} more`));
    if (!room.waiting) waitingList.append(h('li', { class: 'hint' }, room.on ? 'Nobody is waiting.' : 'Off: everyone comes straight in.'));
    admitAll.hidden = denyAll.hidden = room.waiting < 2;
  }

  signal.addEventListener('waiting', () => { waitingScreen.hidden = false; });
  signal.addEventListener('welcome', (e) => {
    const msg = e.detail;
    waitingScreen.hidden = true;
    state.me = msg.you;
    if (msg.snapshot) applySnapshot(msg.snapshot);
    if (!canPublish()) {
      // Nothing to publish: no device stays open, no sender is offered.
      for (const source of Object.keys(media.tracks)) media.setTrack(source, null);
      muted.microphone = muted.camera = muted.screen = true;
    }
    state.participants.set(msg.you.id, msg.you);
    if (inRoom) {
      // Its media is in the breakout room now; this connection only listens.
    } else if (!msg.resumed || !media.pc) {
      media.start();
    } else if (media.awaitingAnswer) {
      // The answer to our last offer was lost with the old connection.
      media.abandonOffer();
      media.negotiate();
    }
    for (const source of ['microphone', 'camera']) if (muted[source] && media.tracks[source]) sendMute(source, true);
    sendView();
    render();
  });
  signal.addEventListener('reset', () => signal.connect());
  signal.addEventListener('event', (e) => { applyEvent(e.detail); render(); });
  signal.addEventListener('answer', (e) => media.onAnswer(e.detail));
  signal.addEventListener('offer', (e) => media.onServerOffer(e.detail));
  signal.addEventListener('slots', (e) => media.onSlots(e.detail));
  signal.addEventListener('media_closed', () => inRoom || media.restart());
  signal.addEventListener('breakout', (e) => enterRoom(e.detail));
  signal.addEventListener('board', (e) => board.onBoard(e.detail));
  signal.addEventListener('error', (e) => {
    const { code, message } = e.detail;
    if (code === 'invalid_sdp' || code === 'internal') media.abandonOffer();
    if (code === 'removed') return ended('You were removed from the meeting.');
    if (code === 'denied') return ended('A host did not let you in.');
    if (code === 'meeting_ended') return ended('The meeting has ended.');
    if (['unauthorized', 'token_expired', 'meeting_not_found', 'meeting_full', 'meeting_locked'].includes(code)) return fatal(`Cannot join: ${message}`);
    if (code === 'already_voted') return tell('You have answered this poll already.');
    if (code === 'forbidden') return tell(`Not allowed: ${message.replace(/^forbidden: /, '')}`);
    if (code === 'bad_message') return tell(`Refused: ${message}`);
    console.warn('server:', code, message);
  });
  signal.addEventListener('state', (e) => {
    const s = e.detail;
    banner.hidden = s === 'connected' || s === 'closed';
    banner.textContent = s === 'reconnecting' ? 'Connection lost. Reconnecting…' : 'Connecting…';
  });

  // A slot's media: audio slots play as they are (whoever speaks), video slots show in the
  // tile of whoever they carry now.
  media.addEventListener('track', (e) => {
    const { mid, media: mt } = e.detail;
    if (mt.kind === 'audio') {
      const el = h('audio', { autoplay: true });
      el.srcObject = new MediaStream([mt]);
      audioEls.get(mid)?.remove();
      audioEls.set(mid, el);
      document.body.append(el);
      el.play().catch(() => showAudioUnlock());
    }
    mt.onunmute = render;
    state.remote = media.remote();
    render();
  });
  media.addEventListener('slots', () => {
    state.remote = media.remote();
    render();
  });

  function showAudioUnlock() {
    if (document.getElementById('unlock')) return;
    const b = h('button', { id: 'unlock', class: 'primary unlock' }, 'Click to enable sound');
    b.onclick = () => { for (const el of audioEls.values()) el.play().catch(() => {}); b.remove(); };
    app.append(b);
  }

  function sendMute(source, value) {
    signal.send({ type: 'mute', source, muted: value });
  }
  async function setMuted(source, value, tell = true) {
    muted[source] = value;
    if (source === 'microphone') {
      if (!media.tracks.microphone && !value) await media.setTrack('microphone', await getTrack('audio').catch(() => null));
      if (media.tracks.microphone) media.tracks.microphone.enabled = !value;
    } else if (source === 'camera') {
      // Stop the camera when off (its light goes out); open it again when on.
      await media.setTrack('camera', value ? null : await getTrack('video').catch(() => null));
    }
    if (tell) sendMute(source, value);
    render();
  }
  micBtn.onclick = () => setMuted('microphone', !muted.microphone);
  camBtn.onclick = () => setMuted('camera', !muted.camera);
  screenBtn.onclick = async () => {
    if (!muted.screen) {
      await media.setTrack('screen', null);
      muted.screen = true;
      sendMute('screen', true);
      return render();
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    } catch (e) {
      console.warn('screen share refused', e);
      return;
    }
    const track = stream.getVideoTracks()[0];
    track.onended = () => !muted.screen && screenBtn.click();
    const republish = Boolean(media.senders.screen);
    await media.setTrack('screen', track);
    muted.screen = false;
    if (republish) sendMute('screen', false);
    render();
  };
  let unread = 0;
  // A chat line; moderators may delete it or stop its sender's chat.
  function chatLine(m) {
    const mine = state.me && m.from === state.me.id;
    const toMe = state.me && (m.mentions || []).includes(state.me.id);
    const cls = [mine ? 'mine' : '', m.to_hosts ? 'to-hosts' : '', toMe ? 'mentions-me' : '', m.flagged ? 'flagged' : ''].join(' ').trim();
    const li = h('li', { class: cls, 'data-chat': m.id }, h('b', {}, mine ? 'You' : m.name),
      m.to_hosts ? h('span', { class: 'hint' }, ' to the hosts') : null, ' ', m.text);
    const moderator = state.me && moderates(state.me.role);
    if (m.flagged && moderator) {
      // Held by the spam filter: the hosts release it to everyone, or delete it.
      li.append(h('span', { class: 'held' }, `Held: ${SPAM_REASONS[m.flagged] || m.flagged}`,
        h('button', { class: 'release-chat', onclick: () => signal.send({ type: 'release_chat', id: m.id }) }, 'Release')));
    }
    if (!mine && !m.only?.length) {
      // A like: many make the message a top quote in the hosts' highlights.
      li.append(h('button', { class: 'like-chat', title: 'Like', onclick: () => signal.send({ type: 'like_chat', id: m.id }) },
        `♥ ${m.likes || ''}`.trim()));
    }
    if (moderator && !mine) {
      li.append(h('span', { class: 'chat-mod' },
        h('button', { class: 'delete-chat', title: 'Delete for everyone', onclick: () => signal.send({ type: 'delete_chat', id: m.id }) }, 'Delete'),
        h('button', { class: 'ban-chat', title: "Stop this person's chat", onclick: () => signal.send({ type: 'ban_chat', participant: m.from, banned: true }) }, 'Mute chat')));
    }
    return li;
  }
  function addChat(ev) {
    const mine = state.me && ev.from === state.me.id;
    state.chats.set(ev.id, ev);
    if (state.chats.size > 500) state.chats.delete(state.chats.keys().next().value);
    highlights.chat(ev);
    // A held message released comes again with its number: it takes its place.
    const shown = chatLog.querySelector(`li[data-chat="${ev.id}"]`);
    if (shown) return shown.replaceWith(chatLine(ev));
    chatLog.append(chatLine(ev));
    while (chatLog.childElementCount > 500) chatLog.querySelector('li[data-chat]')?.remove();
    chatLog.scrollTop = chatLog.scrollHeight;
    if (chatPanel.hidden && !mine) {
      unread++;
      chatBtn.textContent = `Chat (${unread})`;
    }
  }
  // The history a late joiner gets, and older pages on demand.
  const earlier = h('li', { class: 'earlier' }, h('button', { id: 'chat-earlier', onclick: () => {
    const first = chatLog.querySelector('li[data-chat]');
    if (first) signal.send({ type: 'chat_history', before: Number(first.dataset.chat) });
  } }, 'Earlier messages'));
  function showChatHistory(messages) {
    for (const m of messages) {
      state.chats.set(m.id, m);
      highlights.chat(m);
    }
    chatLog.replaceChildren(...(messages.length ? [earlier] : []), ...messages.map(chatLine));
    chatLog.scrollTop = chatLog.scrollHeight;
  }
  signal.addEventListener('chat_history', (e) => {
    const { messages } = e.detail;
    if (!messages.length) return earlier.remove();
    earlier.after(...messages.map(chatLine));
  });
  handBtn.onclick = () => {
    state.handUp = !state.handUp;
    signal.send({ type: 'hand', raised: state.handUp });
    render();
  };
  // The left-hand sheets (hands, polls): one open at a time.
  function toggleSheet(panel) {
    const open = panel.hidden;
    for (const p of [handsPanel, pollsPanel, qaPanel, breakouts.el, highlights.el]) p.hidden = p !== panel || !open;
    root.classList.toggle('handling', open);
    layout();
  }
  handsBtn.onclick = () => {
    toggleSheet(handsPanel);
    renderHands();
  };
  qaBtn.onclick = () => {
    toggleSheet(qaPanel);
    renderQuestions();
  };
  pollsBtn.onclick = () => {
    toggleSheet(pollsPanel);
    renderPolls();
  };
  chatBtn.onclick = () => {
    chatPanel.hidden = !chatPanel.hidden;
    root.classList.toggle('chatting', !chatPanel.hidden);
    unread = 0;
    chatBtn.textContent = 'Chat';
    if (!chatPanel.hidden) chatInput.focus();
    layout();
  };
  chatForm.onsubmit = (e) => {
    e.preventDefault();
    const text = chatInput.value.trim();
    // @Name of someone known, longest names first (so "@Ann Lee" is not "@Ann").
    const named = [...state.participants.values()].sort((a, b) => b.name.length - a.name.length);
    const mentions = named.filter((p) => text.includes(`@${p.name}`)).map((p) => p.id).slice(0, 5);
    const msg = { type: 'chat', text, to_hosts: chatTo.value === 'hosts', mentions };
    if (text && signal.send(msg)) chatInput.value = '';
  };
  leaveBtn.onclick = () => {
    signal.send({ type: 'leave' });
    ended(room ? 'You are back in the main room.' : 'You left the meeting.', true);
  };

  function togglePin(id) {
    if (state.pinned.has(id)) state.pinned.delete(id);
    else state.pinned.add(id);
    render();
    sendView();
  }

  function sendView() {
    const tallest = Math.max(180, ...[...tiles.values()].map((t) => t.el.clientHeight));
    signal.send({
      type: 'view',
      max_height: Math.round(tallest * (window.devicePixelRatio || 1)),
      pinned: [...state.pinned].filter((id) => state.participants.has(id)),
    });
  }
  window.addEventListener('resize', () => { clearTimeout(sendView.t); sendView.t = setTimeout(sendView, 300); });

  boardBtn.onclick = () => {
    if (board.el.hidden) board.open();
    else board.el.hidden = true;
    boardBtn.classList.toggle('active', !board.el.hidden);
  };
  highlightsBtn.onclick = () => {
    toggleSheet(highlights.el);
    highlights.render();
  };
  roomsBtn.onclick = () => {
    toggleSheet(breakouts.el);
    breakouts.render();
  };

  // Breakout rooms: opened, this client goes to its room by itself; called back, it returns.
  function breakoutsChanged(b) {
    const was = state.breakouts;
    state.breakouts = b;
    state.breakoutEndsAt = b.remaining_s == null ? null : Date.now() + b.remaining_s * 1000;
    breakouts.render();
    if (b.open && !was.open && state.me) {
      if (breakouts.mine() !== null && !moderates(state.me.role)) goToRoom(null);
      else tell('The breakout rooms are open.');
    }
    if (!b.open && inRoom) inRoom.leave('The rooms are closed: you are back in the main room.');
  }
  function goToRoom(number) {
    if (inRoom) return;
    signal.send({ type: 'join_breakout', room: number });
  }
  // The server's way into a room: this view's media stops (its devices stay open), the
  // room's view takes the page; the main connection stays, and brings it back.
  async function enterRoom(msg) {
    if (inRoom || room) return;
    media.suspend();
    const clones = Object.fromEntries(Object.entries(media.tracks).filter(([, t]) => t).map(([k, t]) => [k, t.clone()]));
    inRoom = await meeting(msg.meeting, name, clones, { number: msg.room, token: msg.token,
      parent: { back: returnFromRoom, endsAt: () => state.breakoutEndsAt } });
  }
  function returnFromRoom(text) {
    inRoom = null;
    window.myriad = handle;
    app.replaceChildren(root);
    media.start();
    render();
    if (text) tell(text);
  }
  handle.tell = tell;
  handle.leave = (text) => {
    signal.send({ type: 'leave' });
    ended(text);
  };
  if (room) {
    // The time left, each second, while the rooms have a timer.
    const tick = setInterval(() => {
      const ends = room.parent.endsAt();
      const left = ends ? Math.max(0, Math.round((ends - Date.now()) / 1000)) : null;
      roomClock.textContent = left === null ? '' : ` · ${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')} left`;
    }, 1000);
    handle.stopClock = () => clearInterval(tick);
  }

  // Stops this view's connections and devices (and those of the room it is in).
  handle.quit = () => {
    signal.close();
    media.stop();
    for (const el of audioEls.values()) el.remove();
    handle.stopClock?.();
    inRoom?.quit();
  };
  function ended(text, canRejoin = false) {
    handle.quit();
    if (room) return room.parent.back(text);
    app.replaceChildren(
      h('section', { class: 'card' },
        h('h1', {}, text),
        canRejoin ? h('button', { id: 'rejoin', class: 'primary', onclick: () => location.reload() }, 'Rejoin') : null,
      ),
    );
  }

  render();
  signal.connect();
  return handle;
}

function fatal(text) {
  app.replaceChildren(h('section', { class: 'card' }, h('h1', {}, 'Sorry'), h('p', { class: 'error', id: 'fatal' }, text)));
}

const m = location.pathname.match(/^\/m\/([A-Za-z0-9_-]{1,64})$/);
if (m) prejoin(m[1]);
else startPage();
