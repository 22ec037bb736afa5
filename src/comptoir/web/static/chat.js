// chat: the browser's client of a chat site (templates/chat.html), over the JSON protocol
// (subprotocol comptoir.chat.v1, described in the README).
//
// Safety: what users write (messages, nicknames, room names) only ever reaches the DOM as text
// nodes (textContent, append(string)); links are <a> elements built here, for http(s) URLs only.
// Recovery: each room remembers the last message id it was sent; a new connection gives it back
// (`/ws?last_id=N` for #general, `last_id` in each other room's join), so the server sends
// exactly what was missed, and ids already shown are dropped anyway.
"use strict";
(function () {
  const root = document.getElementById("chat");
  if (!root) {
    return;
  }
  const cfg = root.dataset;
  const $ = (id) => document.getElementById(id);
  const FIXED = cfg.fixed === "true";
  const MAX = Number(cfg.max) || 4096;
  const KEEP = 500; // messages kept in memory per conversation
  const TYPING_EVERY = 3000; // a typing event at most this often
  const TYPING_SHOWN = 5000; // and shown this long
  const BACKOFF_FIRST = 500;
  const BACKOFF_MAX = 30000;
  // One place per site (its WebSocket path) for the rooms joined and what was read in each.
  const STORE = "comptoir.chat:" + cfg.ws;

  const el = {
    menu: $("chat-menu"),
    title: $("chat-title"),
    state: $("chat-state"),
    offline: $("chat-offline"),
    side: $("chat-side"),
    rooms: $("chat-rooms"),
    dms: $("chat-dms"),
    people: $("chat-people"),
    join: $("chat-join"),
    joinName: $("chat-join-name"),
    list: $("chat-messages"),
    typing: $("chat-typing"),
    nickForm: $("chat-nick"),
    nickName: $("chat-nick-name"),
    nickError: $("chat-nick-error"),
    compose: $("chat-compose"),
    text: $("chat-text"),
    help: $("chat-help"),
    helpButton: $("chat-help-button"),
  };

  // Conversations by key: "#room" or "@nick".
  const convs = new Map();
  const shownIds = new Set(); // every message id shown: a second copy is never displayed
  let active = "#general";
  let me = null; // the nickname the server knows this connection by
  let wanted = cfg.nick || ""; // the nickname chosen (the preference cookie)
  let nickAsked = null; // a nick request waiting for its answer
  let nickRetries = 0;
  let sendAfterNick = false;
  let pendingJoin = null;
  let otherRooms = []; // rooms of the site this page is not in (GET /api/rooms)
  let ws = null;
  let connected = false;
  let attempts = 0;
  let retryTimer = null;
  let retryAt = 0;
  let lastTyping = 0;

  const saved = load();

  function load() {
    try {
      const data = JSON.parse(localStorage.getItem(STORE) || "{}");
      return {
        rooms: Array.isArray(data.rooms) ? data.rooms.filter((r) => typeof r === "string") : [],
        read: data.read && typeof data.read === "object" ? data.read : {},
      };
    } catch (err) {
      return { rooms: [], read: {} };
    }
  }

  function save() {
    const rooms = [];
    const read = {};
    for (const c of convs.values()) {
      if (c.room && c.want) {
        rooms.push(c.name);
      }
      if (c.read) {
        read[c.key] = c.read;
      }
    }
    try {
      localStorage.setItem(STORE, JSON.stringify({ rooms: rooms, read: read }));
    } catch (err) {
      // Storage refused (private mode, quota): the page works, it just forgets.
    }
  }

  function conv(key) {
    let c = convs.get(key);
    if (!c) {
      c = {
        key: key,
        room: key[0] === "#",
        name: key.slice(1),
        messages: [],
        seen: 0, // the last message id received in this room (what recovery starts from)
        joined: false, // the server confirmed the join at least once
        want: false, // this page means to be in the room
        read: Number(saved.read[key]) || 0,
        unread: 0,
        members: [],
        count: 0, // people in the room; more than `members` lists when it is crowded
        typing: new Map(),
      };
      convs.set(key, c);
    }
    return c;
  }

  // Connection --------------------------------------------------------------------------

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = null;
    const url = new URL(cfg.ws, location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const general = conv("#general");
    if (general.joined) {
      url.searchParams.set("last_id", String(general.seen));
    }
    setState("connecting…");
    let sock;
    try {
      sock = new WebSocket(url.href, "comptoir.chat.v1");
    } catch (err) {
      retry();
      return;
    }
    ws = sock;
    sock.onmessage = function (e) {
      if (ws !== sock) {
        return;
      }
      let ev;
      try {
        ev = JSON.parse(e.data);
      } catch (err) {
        return; // a plain line before the subprotocol took effect: not for this page
      }
      handle(ev);
    };
    sock.onclose = function (e) {
      if (ws !== sock) {
        return;
      }
      ws = null;
      connected = false;
      retry();
    };
  }

  function retry() {
    const delay = Math.min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** attempts) * (0.75 + Math.random() / 2);
    attempts += 1;
    retryAt = Date.now() + delay;
    retryTimer = setTimeout(connect, delay);
    showOffline();
  }

  function showOffline() {
    if (connected || !retryTimer) {
      return;
    }
    const left = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
    el.offline.textContent =
      "Offline: reconnecting " + (left ? "in " + left + " s" : "now") + "… (messages missed meanwhile will follow)";
    el.offline.hidden = false;
    setState("offline");
  }

  function send(frame) {
    if (!ws || !connected) {
      return false;
    }
    ws.send(JSON.stringify(frame));
    return true;
  }

  function setState(text) {
    el.state.textContent = text;
  }

  // Events from the server ---------------------------------------------------------------

  function handle(ev) {
    switch (ev.type) {
      case "welcome":
        return welcome(ev);
      case "joined":
        return joined(ev);
      case "message":
        return addMessage(conv("#" + ev.room), ev);
      case "dm":
        return addMessage(conv("@" + (ev.from === me ? ev.to : ev.from)), ev);
      case "truncated":
        return system(conv("#" + ev.room), "Some older messages were missed: they are no longer kept.");
      case "join":
        return presence(ev.room, ev.from, true);
      case "leave":
        return presence(ev.room, ev.from, false);
      case "presence":
        return recount(ev);
      case "nick":
        return renamed(ev);
      case "typing":
        return typing(ev);
      case "who":
        return system(conv("#" + ev.room), "In #" + ev.room + ": " + (ev.members.join(", ") || "nobody"));
      case "left":
        return left(ev.room);
      case "ping":
        return send({ type: "pong" });
      case "error":
        return failed(ev);
      default:
        return undefined;
    }
  }

  function welcome(ev) {
    connected = true;
    attempts = 0;
    me = ev.nick;
    el.offline.hidden = true;
    setState(wanted ? "" : "reading as a guest");
    // #general comes with the connection; the other rooms are joined again, from where they were.
    for (const c of convs.values()) {
      if (c.room && c.want && c.name !== "general") {
        const frame = { type: "join", room: c.name };
        if (c.joined) {
          frame.last_id = c.seen;
        }
        send(frame);
      }
    }
    if (wanted && wanted !== me) {
      askServerForNick(wanted);
    }
    refreshRooms();
  }

  function joined(ev) {
    const c = conv("#" + ev.room);
    c.joined = true;
    c.want = true;
    c.members = ev.members.slice();
    c.count = typeof ev.count === "number" ? ev.count : c.members.length;
    if (pendingJoin === ev.room) {
      pendingJoin = null;
    }
    save();
    renderSide();
  }

  function left(room) {
    const c = conv("#" + room);
    c.want = false;
    c.joined = false;
    c.members = [];
    c.count = 0;
    if (active === c.key) {
      show("#general");
    }
    save();
    refreshRooms();
  }

  function presence(room, nick, here) {
    const c = conv("#" + room);
    const i = c.members.indexOf(nick);
    if (here && i < 0) {
      c.members.push(nick);
      c.members.sort((a, b) => a.localeCompare(b, undefined, { sensitivity: "base" }));
    } else if (!here && i >= 0) {
      c.members.splice(i, 1);
    }
    c.count = c.members.length;
    c.typing.delete(nick);
    if (c.key === active) {
      renderPeople();
      renderTyping();
    }
  }

  // A crowded room (over a hundred people) sends its count every few seconds instead of each
  // arrival and departure; with the full list again once it is back to few.
  function recount(ev) {
    const c = conv("#" + ev.room);
    c.count = ev.count;
    c.members = Array.isArray(ev.members) ? ev.members.slice() : [];
    if (c.key === active) {
      renderPeople();
    }
  }

  function renamed(ev) {
    for (const c of convs.values()) {
      const i = c.members.indexOf(ev.from);
      if (i >= 0) {
        c.members[i] = ev.nick;
      }
    }
    if (ev.from === me) {
      me = ev.nick;
      wanted = ev.nick;
      nickAsked = null;
      nickRetries = 0;
      rememberNick(ev.nick);
      el.nickForm.hidden = true;
      el.nickError.textContent = "";
      setState("");
      if (sendAfterNick) {
        sendAfterNick = false;
        submit();
      }
    }
    renderSide();
  }

  function typing(ev) {
    if (ev.from === me) {
      return;
    }
    const c = conv("#" + ev.room);
    c.typing.set(ev.from, Date.now() + TYPING_SHOWN);
    if (c.key === active) {
      renderTyping();
    }
  }

  function failed(ev) {
    if (nickAsked !== null && (ev.code === "nick_taken" || ev.code === "bad_request")) {
      const asked = nickAsked;
      nickAsked = null;
      // Back from a drop, the old connection may still hold the name for a moment: ask again.
      if (ev.code === "nick_taken" && asked === wanted && !sendAfterNick && nickRetries < 8) {
        nickRetries += 1;
        setTimeout(function () {
          if (connected && wanted === asked && me !== asked) {
            askServerForNick(asked);
          }
        }, 1000 * nickRetries);
        setState("taking the name " + asked + "…");
        return;
      }
      askNick(ev.message);
      return;
    }
    if (pendingJoin !== null && ["no_such_room", "too_many_rooms", "bad_request"].includes(ev.code)) {
      const c = convs.get("#" + pendingJoin);
      pendingJoin = null;
      if (c && !c.joined) {
        convs.delete(c.key);
        save();
        show("#general");
      }
    }
    system(convs.get(active) || conv("#general"), ev.message);
  }

  // Messages -----------------------------------------------------------------------------

  function addMessage(c, ev) {
    if (typeof ev.id !== "number" || shownIds.has(ev.id)) {
      return;
    }
    shownIds.add(ev.id);
    if (c.room) {
      c.seen = Math.max(c.seen, ev.id);
    }
    c.typing.delete(ev.from);
    // In id order, whatever order they come in (a notice stays where it was said).
    let at = c.messages.length;
    while (at > 0 && c.messages[at - 1].id !== undefined && c.messages[at - 1].id > ev.id) {
      at -= 1;
    }
    c.messages.splice(at, 0, ev);
    if (c.messages.length > KEEP) {
      c.messages.splice(0, c.messages.length - KEEP);
    }
    if (c.key === active) {
      c.read = Math.max(c.read, ev.id);
      const stick = nearBottom();
      const next = el.list.children[at] || null;
      el.list.insertBefore(messageNode(ev), next);
      while (el.list.children.length > c.messages.length) {
        el.list.removeChild(el.list.firstChild);
      }
      if (stick || ev.from === me) {
        el.list.scrollTop = el.list.scrollHeight;
      }
      renderTyping();
    } else if (ev.id > c.read && ev.from !== me) {
      c.unread += 1;
    }
    save();
    renderConvs();
  }

  function system(c, text) {
    c.messages.push({ system: true, text: text });
    if (c.key === active) {
      el.list.appendChild(messageNode(c.messages[c.messages.length - 1]));
      el.list.scrollTop = el.list.scrollHeight;
    }
  }

  function nearBottom() {
    return el.list.scrollHeight - el.list.scrollTop - el.list.clientHeight < 60;
  }

  function messageNode(m) {
    const li = document.createElement("li");
    if (m.system) {
      li.className = "chat-system";
      li.textContent = m.text;
      return li;
    }
    li.dataset.id = String(m.id);
    if (m.from === me) {
      li.classList.add("chat-mine");
    }
    const when = new Date(m.ts);
    const time = document.createElement("time");
    time.dateTime = when.toISOString();
    time.title = when.toLocaleString();
    time.textContent = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const from = document.createElement("span");
    from.className = "chat-from";
    from.textContent = m.from;
    const text = document.createElement("span");
    text.className = "chat-text";
    text.dir = "auto";
    appendLinked(text, m.text);
    li.append(time, " ", from, " ", text);
    return li;
  }

  // URLs in a message, made links; the rest stays text.
  const LINK = /https?:\/\/[^\s<>"'`]+/gi;

  function appendLinked(parent, text) {
    let last = 0;
    for (const match of text.matchAll(LINK)) {
      // A sentence's punctuation after a URL is not part of it.
      const raw = match[0].replace(/[.,;:!?)\]}]+$/, "");
      parent.append(text.slice(last, match.index));
      parent.append(safeLink(raw) || raw);
      last = match.index + raw.length;
    }
    parent.append(text.slice(last));
  }

  function safeLink(raw) {
    let url;
    try {
      url = new URL(raw);
    } catch (err) {
      return null;
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      return null;
    }
    const a = document.createElement("a");
    a.href = url.href;
    a.textContent = raw;
    a.rel = "noopener noreferrer";
    a.target = "_blank";
    return a;
  }

  // The side: rooms, direct messages, people -------------------------------------------

  function refreshRooms() {
    fetch(cfg.api + "/rooms", { credentials: "same-origin", headers: { accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : { rooms: [] }))
      .then(function (data) {
        otherRooms = (data.rooms || []).map((r) => r.name).filter((n) => !(convs.get("#" + n) || {}).want);
        renderConvs();
      })
      .catch(function () {
        // Offline: the list is made again at the next connection.
      });
  }

  function ordered() {
    const rooms = [];
    const dms = [];
    for (const c of convs.values()) {
      if (c.room ? c.want : true) {
        (c.room ? rooms : dms).push(c);
      }
    }
    rooms.sort((a, b) => (a.name === "general" ? -1 : b.name === "general" ? 1 : a.name.localeCompare(b.name)));
    return rooms.concat(dms);
  }

  function convButton(c, label) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "chat-conv";
    b.dataset.key = c.key;
    const name = document.createElement("span");
    name.className = "chat-conv-name";
    name.textContent = label;
    b.append(name);
    if (c.unread) {
      const badge = document.createElement("span");
      badge.className = "chat-unread";
      badge.textContent = String(c.unread);
      badge.title = c.unread + " unread";
      b.append(badge);
    }
    if (c.key === active) {
      b.setAttribute("aria-current", "true");
    }
    b.addEventListener("click", () => show(c.key));
    li.append(b);
    return li;
  }

  function renderConvs() {
    const rooms = [];
    const dms = [];
    for (const c of ordered()) {
      (c.room ? rooms : dms).push(convButton(c, (c.room ? "#" : "@") + c.name));
    }
    for (const name of otherRooms) {
      if ((convs.get("#" + name) || {}).want) {
        continue;
      }
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "chat-conv chat-other";
      b.textContent = "#" + name;
      b.title = "join #" + name;
      b.addEventListener("click", () => joinRoom(name));
      li.append(b);
      rooms.push(li);
    }
    el.rooms.replaceChildren(...rooms);
    if (dms.length) {
      el.dms.replaceChildren(...dms);
    }
    const unread = ordered().reduce((n, c) => n + c.unread, 0);
    el.menu.textContent = unread ? "Rooms (" + unread + ")" : "Rooms";
    document.title = (unread ? "(" + unread + ") " : "") + active + " · chat";
  }

  function renderPeople() {
    const c = convs.get(active);
    const items = [];
    const names = c && c.room ? c.members : c ? [c.name] : [];
    if (c && c.room && c.count > names.length) {
      const li = document.createElement("li");
      li.textContent = c.count.toLocaleString() + " here: too many to follow one by one. ";
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = "List them";
      b.addEventListener("click", () => send({ type: "who", room: c.name }));
      li.append(b);
      items.push(li);
    }
    for (const nick of names) {
      const li = document.createElement("li");
      if (nick === me) {
        li.textContent = nick + " (you)";
      } else {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "chat-person";
        b.textContent = nick;
        b.title = "direct message to " + nick;
        b.addEventListener("click", () => show("@" + nick));
        li.append(b);
      }
      items.push(li);
    }
    el.people.replaceChildren(...items);
  }

  function renderTyping() {
    const c = convs.get(active);
    const now = Date.now();
    const who = [];
    if (c) {
      for (const [nick, until] of c.typing) {
        if (until > now) {
          who.push(nick);
        } else {
          c.typing.delete(nick);
        }
      }
    }
    el.typing.textContent = who.length
      ? who.slice(0, 3).join(", ") + (who.length > 3 ? " and others" : "") + (who.length === 1 ? " is" : " are") + " typing…"
      : "";
  }

  function renderSide() {
    renderConvs();
    renderPeople();
  }

  function show(key) {
    const c = conv(key);
    if (c.room && !c.want) {
      return joinRoom(c.name);
    }
    active = key;
    c.unread = 0;
    for (const m of c.messages) {
      if (m.id !== undefined) {
        c.read = Math.max(c.read, m.id);
      }
    }
    save();
    el.title.textContent = key;
    el.text.placeholder = "Message " + key + " (Enter sends, ? for help)";
    el.list.replaceChildren(...c.messages.map(messageNode));
    el.list.scrollTop = el.list.scrollHeight;
    renderSide();
    renderTyping();
    closeSide();
    return undefined;
  }

  function joinRoom(raw) {
    const name = raw.trim().replace(/^#/, "").toLowerCase();
    if (!name) {
      return;
    }
    const c = conv("#" + name);
    if (c.want) {
      show(c.key);
      return;
    }
    c.want = true;
    pendingJoin = name;
    otherRooms = otherRooms.filter((n) => n !== name);
    if (connected) {
      send({ type: "join", room: name });
    }
    show(c.key);
  }

  // Writing --------------------------------------------------------------------------------

  function submit() {
    const text = el.text.value.trim();
    if (!text) {
      return;
    }
    if (text[0] === "/" && !text.startsWith("//")) {
      if (command(text)) {
        el.text.value = "";
      }
      return;
    }
    if (!wanted || me !== wanted) {
      // Reading needs no name, writing does: the draft waits in the box until one is taken.
      sendAfterNick = true;
      if (!wanted || nickAsked === null) {
        askNick(wanted ? "" : "Choose a nickname to write.");
      }
      return;
    }
    if (new TextEncoder().encode(text).length > MAX) {
      system(conv(active), "Too long: at most " + MAX + " bytes a message.");
      return;
    }
    const c = conv(active);
    const frame = c.room ? { type: "message", room: c.name, text: text } : { type: "dm", to: c.name, text: text };
    if (!send(frame)) {
      system(c, "Offline: not sent (it stays in the box).");
      return;
    }
    el.text.value = "";
    sizeBox();
  }

  function command(line) {
    const parts = line.slice(1).split(/\s+/);
    const name = parts[0].toLowerCase();
    const rest = line.slice(1 + parts[0].length).trim();
    const c = conv(active);
    switch (name) {
      case "nick":
        if (rest) {
          chooseNick(rest);
        } else {
          askNick("");
        }
        return true;
      case "join":
        if (!FIXED || rest) {
          joinRoom(rest);
        }
        return true;
      case "leave":
      case "part": {
        const room = rest ? rest.replace(/^#/, "").toLowerCase() : c.room ? c.name : "";
        if (room) {
          send({ type: "leave", room: room });
        }
        return true;
      }
      case "who":
        send({ type: "who", room: rest ? rest.replace(/^#/, "").toLowerCase() : c.room ? c.name : "general" });
        return true;
      case "dm":
      case "msg": {
        const to = rest.split(/\s+/)[0];
        const text = rest.slice(to.length).trim();
        if (!to) {
          system(c, "usage: /dm NICK TEXT");
          return false;
        }
        if (text) {
          if (!wanted || me !== wanted) {
            askNick("");
            return false;
          }
          send({ type: "dm", to: to, text: text });
        }
        show("@" + to);
        return true;
      }
      case "help":
        toggleHelp(true);
        return true;
      default:
        system(c, "Unknown command /" + name + ": /help lists them.");
        return false;
    }
  }

  function askNick(message) {
    el.nickForm.hidden = false;
    el.nickError.textContent = message || "";
    if (!el.nickName.value) {
      el.nickName.value = wanted;
    }
    el.nickName.focus();
    el.nickName.select();
  }

  function chooseNick(raw) {
    const nick = raw.trim();
    if (!nick) {
      askNick("Write a nickname.");
      return;
    }
    wanted = nick;
    nickRetries = 0;
    if (connected) {
      askServerForNick(nick);
    } else {
      el.nickError.textContent = "Offline: your nickname is taken when back online.";
    }
  }

  function askServerForNick(nick) {
    nickAsked = nick;
    send({ type: "nick", nick: nick });
  }

  function rememberNick(nick) {
    // A preference cookie, for this site's path: the page comes back with the name filled in.
    const secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie =
      cfg.cookie + "=" + encodeURIComponent(nick) + "; Path=" + (cfg.prefix || "") + "/; Max-Age=31536000; SameSite=Lax" + secure;
  }

  function sizeBox() {
    el.text.rows = Math.min(6, Math.max(1, el.text.value.split("\n").length));
  }

  // The page's controls and keyboard -------------------------------------------------------

  el.compose.addEventListener("submit", function (e) {
    e.preventDefault();
    submit();
    el.text.focus();
  });
  el.text.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    }
  });
  el.text.addEventListener("input", function () {
    sizeBox();
    const c = convs.get(active);
    const now = Date.now();
    if (c && c.room && el.text.value && el.text.value[0] !== "/" && now - lastTyping > TYPING_EVERY) {
      lastTyping = now;
      send({ type: "typing", room: c.name });
    }
  });
  el.nickForm.addEventListener("submit", function (e) {
    e.preventDefault();
    chooseNick(el.nickName.value);
  });
  if (el.join) {
    el.join.addEventListener("submit", function (e) {
      e.preventDefault();
      joinRoom(el.joinName.value);
      el.joinName.value = "";
      el.text.focus();
    });
  }
  el.menu.addEventListener("click", function () {
    const open = !root.classList.contains("chat-side-open");
    root.classList.toggle("chat-side-open", open);
    el.menu.setAttribute("aria-expanded", String(open));
  });
  el.helpButton.addEventListener("click", () => toggleHelp());

  function closeSide() {
    root.classList.remove("chat-side-open");
    el.menu.setAttribute("aria-expanded", "false");
  }

  function toggleHelp(open) {
    const show = open === undefined ? el.help.hidden : open;
    el.help.hidden = !show;
    el.helpButton.setAttribute("aria-expanded", String(show));
  }

  function typingInAField(target) {
    return target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
  }

  document.addEventListener("keydown", function (e) {
    if (e.altKey && (e.key === "ArrowUp" || e.key === "ArrowDown")) {
      const list = ordered();
      const i = list.findIndex((c) => c.key === active);
      const next = list[(i + (e.key === "ArrowUp" ? -1 : 1) + list.length) % list.length];
      if (next) {
        e.preventDefault();
        show(next.key);
      }
      return;
    }
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "k" && el.joinName) {
      e.preventDefault();
      root.classList.add("chat-side-open");
      el.joinName.focus();
      return;
    }
    if (e.key === "Escape") {
      toggleHelp(false);
      closeSide();
      return;
    }
    if (typingInAField(e.target) || e.ctrlKey || e.metaKey || e.altKey) {
      return;
    }
    if (e.key === "/") {
      e.preventDefault();
      el.text.focus();
    } else if (e.key === "?") {
      e.preventDefault();
      toggleHelp();
    }
  });

  // The browser knows first when the network goes: reconnect at once when it is back.
  window.addEventListener("offline", function () {
    if (ws) {
      ws.close();
    }
  });
  window.addEventListener("online", function () {
    if (!ws) {
      attempts = 0;
      connect();
    }
  });

  setInterval(function () {
    showOffline();
    renderTyping();
  }, 1000);

  // #general first, then the rooms this browser was in.
  conv("#general").want = true;
  for (const name of saved.rooms) {
    conv("#" + name).want = true;
  }
  show("#general");
  if (!wanted) {
    setState("reading as a guest");
  }
  connect();
})();
