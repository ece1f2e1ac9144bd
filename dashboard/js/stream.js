// Follows WS /ws/deployments/{id}?after=<last seq>: history, then live.
// After a dropped connection it reconnects with backoff, asking only for
// what comes after the last seq it delivered, and drops any seq it has
// already delivered: each event reaches `onEvent` once, in seq order.

const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 5000;

/**
 * States reported to onState: 'connecting', 'live', 'reconnecting',
 * 'ended' (the deployment settled), 'denied' (no session), 'closed'.
 */
export class DeploymentStream {
  constructor(id, { after = 0, onEvent = () => {}, onState = () => {} } = {}) {
    this.id = id;
    this.lastSeq = after;
    this.onEvent = onEvent;
    this.onState = onState;
    this.socket = null;
    this.attempt = 0;
    this.timer = null;
    this.stopped = false;
    this.ended = false;
    this.reconnects = 0;
  }

  start() {
    this.connect();
    return this;
  }

  /** Stops following (page left). */
  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000, 'viewer left');
    this.socket = null;
  }

  /** Drops the socket as a network failure would (for tests and "retry"). */
  drop() {
    if (this.socket) this.socket.close(4000, 'dropped by the viewer');
  }

  url() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}/ws/deployments/${encodeURIComponent(this.id)}?after=${this.lastSeq}`;
  }

  connect() {
    if (this.stopped || this.ended) return;
    this.state(this.attempt === 0 && this.reconnects === 0 ? 'connecting' : 'reconnecting');
    let socket;
    try {
      socket = new WebSocket(this.url());
    } catch {
      this.retry();
      return;
    }
    this.socket = socket;
    socket.addEventListener('open', () => {
      if (this.socket !== socket) return;
      this.attempt = 0;
      this.state('live');
    });
    socket.addEventListener('message', (message) => {
      if (this.socket !== socket) return;
      this.receive(message.data, socket);
    });
    socket.addEventListener('close', (close) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.stopped) {
        this.state('closed');
      } else if (close.code === 1008) {
        this.state('denied', close.reason);
      } else if (close.code === 1000 && this.ended) {
        this.state('ended');
      } else if (close.code === 1000 && close.reason === 'deployment settled') {
        // Settled with no result event left to send (e.g. failed by the
        // watchdog): nothing more will come.
        this.ended = true;
        this.state('ended');
      } else {
        this.retry();
      }
    });
  }

  receive(data, socket) {
    let event;
    try {
      event = JSON.parse(data);
    } catch {
      return;
    }
    const seq = Number(event?.seq);
    if (!Number.isSafeInteger(seq) || seq <= this.lastSeq) return; // seen already
    if (seq !== this.lastSeq + 1) {
      // A gap: never skip. Reconnect and ask again from the last seq.
      socket.close(4001, 'gap');
      return;
    }
    this.lastSeq = seq;
    if (event.body?.type === 'result') this.ended = true;
    try {
      this.onEvent(event);
    } catch (err) {
      console.error('stream handler failed', err);
    }
  }

  retry() {
    if (this.stopped || this.ended) return;
    this.reconnects += 1;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    const delay = base / 2 + Math.random() * (base / 2);
    this.attempt += 1;
    this.state('reconnecting', `retrying in ${(delay / 1000).toFixed(1)} s`);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  state(name, detail = '') {
    this.current = name;
    try {
      this.onState(name, detail);
    } catch (err) {
      console.error('stream state handler failed', err);
    }
  }
}
