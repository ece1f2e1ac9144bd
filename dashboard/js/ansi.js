// ANSI SGR escape sequences → text segments with CSS classes. Only text
// comes out; other escape sequences are dropped.

// CSI ... final byte, or OSC ... BEL/ST, or a lone two-byte escape.
const ESCAPE = /\x1b(?:\[([0-9;:?]*)([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])/g;

const initial = () => ({ fg: null, bg: null, bold: false, dim: false, italic: false, underline: false });

function classes(state) {
  const list = [];
  if (state.bold) list.push('ansi-bold');
  if (state.dim) list.push('ansi-dim');
  if (state.italic) list.push('ansi-italic');
  if (state.underline) list.push('ansi-underline');
  if (typeof state.fg === 'number') list.push(`ansi-fg-${state.fg}`);
  if (typeof state.bg === 'number') list.push(`ansi-bg-${state.bg}`);
  return list;
}

// xterm 256-colour index → rgb string, for indices past the 16 classes.
function xterm(n) {
  if (n >= 232) {
    const v = 8 + (n - 232) * 10;
    return `rgb(${v}, ${v}, ${v})`;
  }
  const i = n - 16;
  const level = (x) => (x === 0 ? 0 : 55 + x * 40);
  return `rgb(${level(Math.floor(i / 36))}, ${level(Math.floor(i / 6) % 6)}, ${level(i % 6)})`;
}

function extended(codes, k) {
  // 38;5;n or 38;2;r;g;b: returns [colour, codes consumed]
  if (codes[k + 1] === 5 && codes[k + 2] !== undefined) {
    const n = codes[k + 2];
    return [n < 16 ? n : xterm(n), 3];
  }
  if (codes[k + 1] === 2 && codes[k + 4] !== undefined) {
    return [`rgb(${codes[k + 2]}, ${codes[k + 3]}, ${codes[k + 4]})`, 5];
  }
  return [null, 1];
}

function apply(state, params) {
  const codes = params === '' ? [0] : params.split(/[;:]/).map((p) => (p === '' ? 0 : Number(p)));
  for (let k = 0; k < codes.length; ) {
    const c = codes[k];
    let used = 1;
    if (c === 0) Object.assign(state, initial());
    else if (c === 1) state.bold = true;
    else if (c === 2) state.dim = true;
    else if (c === 3) state.italic = true;
    else if (c === 4) state.underline = true;
    else if (c === 22) { state.bold = false; state.dim = false; }
    else if (c === 23) state.italic = false;
    else if (c === 24) state.underline = false;
    else if (c >= 30 && c <= 37) state.fg = c - 30;
    else if (c >= 90 && c <= 97) state.fg = c - 90 + 8;
    else if (c === 39) state.fg = null;
    else if (c >= 40 && c <= 47) state.bg = c - 40;
    else if (c >= 100 && c <= 107) state.bg = c - 100 + 8;
    else if (c === 49) state.bg = null;
    else if (c === 38) [state.fg, used] = extended(codes, k);
    else if (c === 48) [state.bg, used] = extended(codes, k);
    k += used;
  }
}

/**
 * Splits a line into [{text, classes: [...], fg?: css colour, bg?: css colour}].
 * A line without escapes gives one plain segment.
 */
export function parseAnsi(line) {
  const segments = [];
  const state = initial();
  let last = 0;
  const push = (text) => {
    if (!text) return;
    const segment = { text, classes: classes(state) };
    if (typeof state.fg === 'string') segment.fg = state.fg;
    if (typeof state.bg === 'string') segment.bg = state.bg;
    segments.push(segment);
  };
  ESCAPE.lastIndex = 0;
  for (let m = ESCAPE.exec(line); m; m = ESCAPE.exec(line)) {
    push(line.slice(last, m.index));
    if (m[2] === 'm') apply(state, m[1] ?? '');
    last = ESCAPE.lastIndex;
  }
  push(line.slice(last));
  return segments;
}

/** The line without any escape sequence (for search and copy). */
export function stripAnsi(line) {
  return line.replace(ESCAPE, '');
}
