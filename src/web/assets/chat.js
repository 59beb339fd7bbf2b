// Causerie's web chat client: log in, list chats, start one, read history, talk live.
// Plain script, no dependencies. User text only ever reaches the page through textContent.
'use strict';

(() => {
  const ACCESS = 'causerie.access';
  const REFRESH = 'causerie.refresh';
  const CHAT_PATH = /^\/chat\/([0-9a-fA-F-]{36})\/?$/;

  const $ = (id) => document.getElementById(id);
  const el = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  };

  const state = {
    me: null,
    chats: new Map(), // id -> chat JSON
    chatId: null,
    generation: 0, // bumps whenever the open chat changes, so late answers are dropped
    messages: new Map(), // id -> <li>
    hasOlder: false,
    socket: null,
    retries: 0,
    reconnectTimer: null,
    needsCatchUp: false,
    refreshing: null,
    chatsTimer: null,
    errorTimer: null,
    uploading: false,
  };

  // ---- HTTP with tokens ------------------------------------------------------------------

  class HttpError extends Error {
    constructor(status, body) {
      super(describeError(body) || `Request failed (HTTP ${status}).`);
      this.status = status;
      this.body = body;
    }
  }

  /** The first readable message in a DRF error body. */
  function describeError(body) {
    if (!body || typeof body !== 'object') return '';
    if (typeof body.detail === 'string') return body.detail;
    for (const [field, messages] of Object.entries(body)) {
      const text = Array.isArray(messages) ? messages.join(' ') : String(messages);
      return field === 'non_field_errors' ? text : `${field}: ${text}`;
    }
    return '';
  }

  /** Exchanges the refresh token for a new access token, once for all concurrent callers. */
  function refreshAccess() {
    if (!state.refreshing) {
      state.refreshing = (async () => {
        const refresh = sessionStorage.getItem(REFRESH);
        if (!refresh) return false;
        const res = await fetch('/auth/jwt/refresh/', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
          body: JSON.stringify({ refresh }),
        });
        if (!res.ok) return false;
        const data = await res.json();
        sessionStorage.setItem(ACCESS, data.access);
        if (data.refresh) sessionStorage.setItem(REFRESH, data.refresh);
        return true;
      })().finally(() => {
        state.refreshing = null;
      });
    }
    return state.refreshing;
  }

  /** A JSON request, or a multipart one when `body` is FormData (the browser sets its
   *  boundary). */
  async function api(method, path, body, { auth = true, retry = true } = {}) {
    const headers = { Accept: 'application/json' };
    const multipart = body instanceof FormData;
    if (body !== undefined && !multipart) headers['Content-Type'] = 'application/json';
    const access = sessionStorage.getItem(ACCESS);
    if (auth && access) headers.Authorization = `Bearer ${access}`;
    const res = await fetch(path, {
      method,
      headers,
      body: body === undefined || multipart ? body : JSON.stringify(body),
    });
    if (res.status === 401 && auth && retry) {
      if (await refreshAccess()) return api(method, path, body, { auth, retry: false });
      signOut('Your session has expired. Please log in again.');
      throw new HttpError(401, { detail: 'Session expired.' });
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = { detail: text.slice(0, 200) };
      }
    }
    if (!res.ok) throw new HttpError(res.status, data);
    return data;
  }

  // ---- names and small views -------------------------------------------------------------

  function fullName(user) {
    if (!user) return 'Deleted user';
    const name = `${user.first_name || ''} ${user.last_name || ''}`.trim();
    return name || user.email || 'Unnamed user';
  }

  function otherUser(chat) {
    const me = state.me && state.me.id;
    for (const user of [chat.fromUser, chat.toUser]) {
      if (user && user.id !== me) return user;
    }
    return null;
  }

  function chatName(chat) {
    if (chat.isGroup && chat.title) return chat.title;
    return fullName(otherUser(chat));
  }

  function preview(message) {
    if (!message) return 'No messages yet';
    const mine = state.me && message.author === state.me.id ? 'You: ' : '';
    if (message.type === 1) return `${mine}📍 Location`;
    if (message.type === 2) return `${mine}📷 Photo`;
    return mine + message.message;
  }

  /** Where a picture the server gave may be loaded from: its own attachment URLs as paths on
   *  this origin (the server's public URL may name another host or port than the one this page
   *  came from), data: images, and same-origin paths; nothing else. */
  function pictureSource(url) {
    if (typeof url !== 'string' || !url) return '';
    if (url.startsWith('data:image/')) return url;
    let parsed;
    try {
      parsed = new URL(url, location.href);
    } catch {
      return '';
    }
    if (parsed.pathname.startsWith('/api/attachments/')) return parsed.pathname + parsed.search;
    if (url.startsWith('/') && !url.startsWith('//')) return url;
    return '';
  }

  function timeOf(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return '';
    const sameDay = date.toDateString() === new Date().toDateString();
    const time = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    return sameDay ? time : `${date.toLocaleDateString()} ${time}`;
  }

  // ---- views -----------------------------------------------------------------------------

  function showLogin(message) {
    $('app-view').hidden = true;
    $('who').hidden = true;
    $('login-view').hidden = false;
    const error = $('login-error');
    error.textContent = message || '';
    error.hidden = !message;
    $('login-submit').disabled = false;
    document.title = 'Causerie';
    (($('login-email').value && $('login-password')) || $('login-email')).focus();
  }

  function showApp() {
    $('login-view').hidden = true;
    $('app-view').hidden = false;
    $('who').hidden = false;
    $('me-name').textContent = state.me.email;
  }

  function signOut(message) {
    closeChat();
    sessionStorage.removeItem(ACCESS);
    sessionStorage.removeItem(REFRESH);
    state.me = null;
    state.chats.clear();
    $('chat-list').replaceChildren();
    $('search-results').replaceChildren();
    $('search-results').hidden = true;
    $('search-empty').hidden = true;
    $('login-password').value = '';
    showLogin(message);
  }

  async function logOut() {
    const refresh = sessionStorage.getItem(REFRESH);
    signOut('');
    if (refresh) {
      // Best effort: revoke the refresh token.
      fetch('/auth/jwt/blacklist/', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ refresh }),
      }).catch(() => {});
    }
    if (location.pathname !== '/chat/') history.pushState(null, '', '/chat/');
  }

  async function logIn(event) {
    event.preventDefault();
    const email = $('login-email').value.trim();
    const password = $('login-password').value;
    const error = $('login-error');
    if (!email || !password) {
      error.textContent = 'Enter your email and password.';
      error.hidden = false;
      return;
    }
    $('login-submit').disabled = true;
    error.hidden = true;
    try {
      const tokens = await api('POST', '/auth/jwt/create/', { email, password }, { auth: false });
      sessionStorage.setItem(ACCESS, tokens.access);
      sessionStorage.setItem(REFRESH, tokens.refresh);
      $('login-password').value = '';
      await start();
    } catch (err) {
      showLogin(err.message || 'Could not log in.');
    }
  }

  /** After login (or a reload with tokens kept): who am I, my chats, the chat in the URL. */
  async function start() {
    state.me = await api('GET', '/auth/users/me/');
    showApp();
    offerNotifications().catch(() => {});
    await loadChats();
    routeFromLocation();
  }

  function routeFromLocation() {
    const match = CHAT_PATH.exec(location.pathname);
    if (match) openChat(match[1].toLowerCase(), { push: false });
    else closeChat();
  }

  // ---- chat list and search --------------------------------------------------------------

  async function loadChats() {
    const page = await api('GET', '/api/chat/?page_size=100');
    state.chats.clear();
    const list = $('chat-list');
    const items = page.results.map((chat) => {
      state.chats.set(chat.id, chat);
      const button = el('button');
      button.type = 'button';
      button.dataset.testid = 'chat-item';
      button.dataset.chatId = chat.id;
      if (chat.id === state.chatId) button.setAttribute('aria-current', 'true');
      const name = el('span', 'name');
      const label = el('span', null, chatName(chat));
      const other = otherUser(chat);
      if (other && other.online) label.append(el('span', 'dot'));
      name.append(label);
      if (chat.unreadCount > 0 && chat.id !== state.chatId) {
        name.append(el('span', 'badge', chat.unreadCount));
      }
      button.append(name, el('span', 'preview', preview(chat.lastMessage && chat.lastMessage[0])));
      button.addEventListener('click', () => openChat(chat.id, { push: true }));
      const li = el('li');
      li.append(button);
      return li;
    });
    list.replaceChildren(...items);
    $('chat-list-empty').hidden = items.length > 0;
  }

  function reloadChatsSoon() {
    clearTimeout(state.chatsTimer);
    state.chatsTimer = setTimeout(() => loadChats().catch(() => {}), 700);
  }

  async function search(event) {
    event.preventDefault();
    const terms = $('search-input').value.trim();
    const results = $('search-results');
    if (!terms) {
      results.hidden = true;
      $('search-empty').hidden = true;
      return;
    }
    try {
      const page = await api('GET', `/api/searchUser/?search=${encodeURIComponent(terms)}`);
      const items = page.results.map((user) => {
        const button = el('button');
        button.type = 'button';
        button.dataset.testid = 'search-result';
        button.dataset.userId = user.id;
        const name = el('span', 'name');
        const label = el('span', null, fullName(user));
        if (user.online) label.append(el('span', 'dot'));
        name.append(label);
        button.append(name, el('span', 'preview', 'Start a chat'));
        button.addEventListener('click', () => startChat(user));
        const li = el('li');
        li.append(button);
        return li;
      });
      results.replaceChildren(...items);
      results.hidden = items.length === 0;
      $('search-empty').hidden = items.length > 0;
    } catch (err) {
      showError(err.message);
    }
  }

  async function startChat(user) {
    try {
      const chat = await api('POST', '/api/createChat/', {
        refUser: state.me.id,
        chatWithUser: user.id,
      });
      $('search-input').value = '';
      $('search-results').hidden = true;
      $('search-empty').hidden = true;
      state.chats.set(chat.id, chat);
      await openChat(chat.id, { push: true });
      await loadChats();
    } catch (err) {
      showError(err.message);
    }
  }

  // ---- one chat --------------------------------------------------------------------------

  function markCurrent() {
    for (const button of $('chat-list').querySelectorAll('button[data-chat-id]')) {
      if (button.dataset.chatId === state.chatId) button.setAttribute('aria-current', 'true');
      else button.removeAttribute('aria-current');
    }
  }

  function closeChat() {
    disconnect();
    state.generation += 1;
    state.chatId = null;
    state.messages.clear();
    $('messages').replaceChildren();
    $('chat-view').hidden = true;
    $('chat-placeholder').hidden = false;
    document.body.classList.remove('in-chat');
    if (state.me) document.title = 'Causerie';
    markCurrent();
  }

  async function openChat(id, { push }) {
    if (push && location.pathname !== `/chat/${id}/`) history.pushState(null, '', `/chat/${id}/`);
    if (state.chatId === id && state.socket) return;
    closeChat();
    const generation = state.generation;
    state.chatId = id;
    state.hasOlder = false;
    $('chat-placeholder').hidden = true;
    $('chat-view').hidden = false;
    $('load-older').hidden = true;
    $('chat-error').hidden = true;
    document.body.classList.add('in-chat');
    markCurrent();
    let chat = state.chats.get(id);
    try {
      if (!chat) chat = await api('GET', `/api/chat/${encodeURIComponent(id)}/`);
      if (generation !== state.generation) return;
      state.chats.set(id, chat);
      $('chat-title').textContent = chatName(chat);
      document.title = `${chatName(chat)} · Causerie`;
      await loadMessages({ older: false, initial: true });
      if (generation !== state.generation) return;
      connect();
      $('message-input').focus();
    } catch (err) {
      if (generation !== state.generation) return;
      $('chat-title').textContent = err.status === 404 ? 'Chat not found' : 'Chat';
      showError(err.status === 404 ? 'This chat does not exist or is not yours.' : err.message);
    }
  }

  /** A page of history: the newest page, or the page before the oldest message shown. */
  async function loadMessages({ older, initial }) {
    const id = state.chatId;
    const generation = state.generation;
    let path = `/api/message/?refChat=${encodeURIComponent(id)}`;
    const first = $('messages').firstElementChild;
    if (older && first) path += `&before=${encodeURIComponent(first.dataset.messageId)}`;
    const page = await api('GET', path);
    if (generation !== state.generation) return;
    const scroller = $('messages-scroll');
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    // Newest first on the wire; shown oldest first.
    for (const message of page.results.slice().reverse()) insertMessage(message);
    if (older || initial) {
      state.hasOlder = page.next !== null;
      $('load-older').hidden = !state.hasOlder;
    }
    if (older) scroller.scrollTop = scroller.scrollHeight - fromBottom;
    else scrollToBottom();
    markRead(page.results);
  }

  function messageKey(message) {
    return `${message.createdAt}|${message.id}`;
  }

  function renderMessage(message, li) {
    const mine = state.me && message.author === state.me.id;
    li.className = `message ${mine ? 'mine' : 'theirs'}`;
    li.dataset.testid = 'message';
    li.dataset.messageId = message.id;
    li.dataset.key = messageKey(message);
    li.dataset.author = message.author || '';
    const bubble = el('div', 'bubble');
    bubble.dataset.testid = 'message-text';
    const extra = typeof message.extraData === 'string' ? message.extraData : '';
    if (message.type === 1) {
      bubble.textContent = `📍 ${message.message || 'Location'}${extra ? ` (${extra})` : ''}`;
    } else if (message.type === 2) {
      const source = pictureSource(extra);
      if (source) {
        const img = el('img');
        img.alt = 'Photo';
        img.dataset.testid = 'message-image';
        // A picture grows the list when it arrives: stay at the bottom if we were there.
        img.addEventListener('load', () => {
          const s = $('messages-scroll');
          if (s.scrollHeight - s.scrollTop - s.clientHeight < img.clientHeight + 120) scrollToBottom();
        });
        img.src = source;
        bubble.append(img);
      }
      if (message.message) bubble.append(el('span', null, message.message));
      if (!bubble.childNodes.length) bubble.textContent = '📷 Photo';
    } else {
      bubble.textContent = message.message;
    }
    const chat = state.chats.get(message.refChat);
    const author = mine ? 'You' : fullName(chat ? otherUser(chat) : null);
    let meta = `${author} · ${timeOf(message.createdAt)}`;
    if (mine && message.isRead) meta += ' · read';
    const metaEl = el('span', 'meta', meta);
    const time = el('time');
    time.dateTime = message.createdAt;
    li.replaceChildren(bubble, metaEl, time);
  }

  /** Adds (or updates) a message in time order; duplicates from history and socket merge. */
  function insertMessage(message) {
    if (!message || message.refChat !== state.chatId || !message.id) return;
    const existing = state.messages.get(message.id);
    if (existing) {
      renderMessage(message, existing);
      return;
    }
    const li = el('li');
    renderMessage(message, li);
    const list = $('messages');
    let after = list.lastElementChild;
    while (after && after.dataset.key > li.dataset.key) after = after.previousElementSibling;
    if (after) after.after(li);
    else list.prepend(li);
    state.messages.set(message.id, li);
  }

  function nearBottom() {
    const s = $('messages-scroll');
    return s.scrollHeight - s.scrollTop - s.clientHeight < 120;
  }

  function scrollToBottom() {
    const s = $('messages-scroll');
    s.scrollTop = s.scrollHeight;
  }

  /** Tells the server the other person's messages shown here are read. */
  function markRead(messages) {
    if (!state.me || document.visibilityState !== 'visible') return;
    const ids = messages
      .filter((m) => m && m.author !== state.me.id && !m.isRead && m.refChat === state.chatId)
      .map((m) => m.id);
    if (ids.length === 0) return;
    api('POST', '/api/updateMessagesStatus/', { messageIds: ids }).catch(() => {});
  }

  function showError(text) {
    const banner = $('chat-error');
    banner.textContent = text || 'Something went wrong.';
    banner.hidden = false;
    clearTimeout(state.errorTimer);
    state.errorTimer = setTimeout(() => {
      banner.hidden = true;
    }, 8000);
    if ($('chat-view').hidden) {
      // No chat open: show it where the user looks.
      $('search-empty').textContent = banner.textContent;
      $('search-empty').hidden = false;
    }
  }

  // ---- the socket ------------------------------------------------------------------------

  function setStatus(stateName, text) {
    const status = $('conn-status');
    status.dataset.state = stateName;
    status.textContent = text;
    $('send-button').disabled = stateName !== 'open';
    $('attach-button').disabled = stateName !== 'open' || state.uploading;
  }

  function disconnect() {
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    const socket = state.socket;
    state.socket = null;
    if (socket) socket.close(1000);
    setStatus('closed', 'offline');
  }

  function connect() {
    const id = state.chatId;
    const token = sessionStorage.getItem(ACCESS);
    if (!id || !token) return;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${scheme}//${location.host}/ws/chat/${encodeURIComponent(id)}/` +
      `?token=${encodeURIComponent(token)}&format=object`;
    const socket = new WebSocket(url);
    state.socket = socket;
    setStatus('connecting', 'connecting…');
    socket.addEventListener('open', () => {
      if (state.socket !== socket) return;
      state.retries = 0;
      setStatus('open', 'online');
      if (state.needsCatchUp) {
        // Whatever arrived while the socket was down.
        state.needsCatchUp = false;
        loadMessages({ older: false, initial: false }).catch(() => {});
      }
    });
    socket.addEventListener('message', (event) => {
      if (state.socket !== socket) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (!frame || typeof frame !== 'object') return;
      if (frame.error) {
        showError((frame.error && (frame.error.detail || frame.error.code)) || 'Error');
        return;
      }
      const message = frame.message;
      if (!message || typeof message !== 'object') return;
      const stick = nearBottom() || (state.me && message.author === state.me.id);
      insertMessage(message);
      if (stick) scrollToBottom();
      markRead([message]);
      reloadChatsSoon();
    });
    socket.addEventListener('close', () => {
      if (state.socket !== socket) return;
      state.socket = null;
      setStatus('closed', 'offline – reconnecting');
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    const delay = Math.min(30000, 1000 * 2 ** state.retries) + Math.random() * 500;
    state.retries += 1;
    const id = state.chatId;
    state.reconnectTimer = setTimeout(async () => {
      if (state.chatId !== id || state.socket) return;
      try {
        // Refreshes the access token if it expired (the handshake would be refused).
        await api('GET', '/auth/users/me/');
      } catch (err) {
        if (err.status === 401) return;
      }
      if (state.chatId !== id || state.socket) return;
      state.needsCatchUp = true;
      connect();
    }, delay);
  }

  function send(event) {
    event.preventDefault();
    const input = $('message-input');
    const text = input.value;
    const socket = state.socket;
    if (!text.trim() || !socket || socket.readyState !== WebSocket.OPEN) return;
    socket.send(JSON.stringify({
      message: text,
      refChat: state.chatId,
      author: state.me.id,
      type: 0,
      extraData: '',
    }));
    input.value = '';
    autosize();
    input.focus();
  }

  /** Uploads the chosen picture for this chat, then sends it as a photo message whose
   *  `extraData` is the attachment's URL (the text typed, if any, goes with it). */
  async function attach() {
    const input = $('attach-input');
    const file = input.files && input.files[0];
    input.value = '';
    const chatId = state.chatId;
    if (!file || !chatId) return;
    const form = new FormData();
    form.append('file', file, file.name);
    form.append('chat', chatId);
    state.uploading = true;
    $('attach-button').disabled = true;
    try {
      const attachment = await api('POST', '/api/attachments/', form);
      const socket = state.socket;
      if (state.chatId !== chatId || !socket || socket.readyState !== WebSocket.OPEN) {
        showError('The connection dropped; the picture was not sent.');
        return;
      }
      const caption = $('message-input');
      socket.send(JSON.stringify({
        message: caption.value,
        refChat: chatId,
        author: state.me.id,
        type: 2,
        extraData: attachment.url,
      }));
      caption.value = '';
      autosize();
    } catch (err) {
      showError(err.message);
    } finally {
      state.uploading = false;
      const open = state.socket && state.socket.readyState === WebSocket.OPEN;
      $('attach-button').disabled = !open;
    }
  }

  function autosize() {
    const input = $('message-input');
    input.style.height = 'auto';
    input.style.height = `${Math.min(input.scrollHeight + 2, 128)}px`;
  }

  // ---- Web Push (docs/push.md) -----------------------------------------------------------

  const PUSH_SW = '/static/web/sw.js';

  function pushSupported() {
    return 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
  }

  function base64UrlBytes(text) {
    const padded = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  }

  /** Shows the button when this browser and the server can do Web Push. */
  async function offerNotifications() {
    const button = $('notify');
    button.hidden = true;
    if (!pushSupported() || Notification.permission === 'denied') return;
    try {
      await api('GET', '/api/push/vapid/');
    } catch {
      return; // Web Push is off on this server
    }
    button.hidden = false;
    if (Notification.permission === 'granted') enableNotifications().catch(() => {});
  }

  /** Asks permission, subscribes, and registers the subscription as a `web` device. */
  async function enableNotifications() {
    if ((await Notification.requestPermission()) !== 'granted') {
      $('notify').hidden = true;
      return;
    }
    const { publicKey } = await api('GET', '/api/push/vapid/');
    const registration = await navigator.serviceWorker.register(PUSH_SW, { scope: '/chat/' });
    await navigator.serviceWorker.ready;
    const subscription =
      (await registration.pushManager.getSubscription()) ||
      (await registration.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: base64UrlBytes(publicKey),
      }));
    try {
      await api('POST', '/devices/', {
        name: 'Web browser',
        registration_id: JSON.stringify(subscription.toJSON()),
        active: true,
        type: 'web',
      });
    } catch (err) {
      // Already registered by this user: nothing to do.
      if (!(err.status === 400 && err.body && err.body.registration_id)) throw err;
    }
    $('notify').textContent = 'Notifications on';
    $('notify').disabled = true;
  }

  // ---- wiring ----------------------------------------------------------------------------

  function init() {
    $('login-form').addEventListener('submit', logIn);
    $('logout').addEventListener('click', logOut);
    $('notify').addEventListener('click', () => {
      enableNotifications().catch((err) => showError(`Notifications: ${err.message}`));
    });
    $('search-form').addEventListener('submit', search);
    $('send-form').addEventListener('submit', send);
    $('attach-button').addEventListener('click', () => $('attach-input').click());
    $('attach-input').addEventListener('change', () => {
      attach().catch((err) => showError(err.message));
    });
    $('load-older').addEventListener('click', () => {
      $('load-older').disabled = true;
      loadMessages({ older: true, initial: false })
        .catch((err) => showError(err.message))
        .finally(() => {
          $('load-older').disabled = false;
        });
    });
    $('back').addEventListener('click', () => {
      closeChat();
      history.pushState(null, '', '/chat/');
      loadChats().catch(() => {});
    });
    const input = $('message-input');
    input.addEventListener('input', autosize);
    input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        $('send-form').requestSubmit();
      }
    });
    window.addEventListener('popstate', () => {
      if (state.me) routeFromLocation();
    });
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible' && state.me) {
        reloadChatsSoon();
        if (state.chatId) loadMessages({ older: false, initial: false }).catch(() => {});
      }
    });
    if (sessionStorage.getItem(ACCESS) || sessionStorage.getItem(REFRESH)) {
      start().catch((err) => {
        if (err.status === 401) return; // signOut has shown the form
        showLogin(`Could not reach the server: ${err.message}`);
      });
    } else {
      showLogin('');
    }
  }

  init();
})();
