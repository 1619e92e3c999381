// The expression editor: a textarea over a highlighted copy of its text,
// with completion of metric names, label names and values (asked from the
// API) and PromQL's functions and keywords.
import {h, clear, api} from './lib.js';
import {tokenize, context, functions, aggregations, keywords, durations} from './promql.js';

const LOOKBACK = 12 * 3600; // seconds of data label lookups cover
const TTL = 60 * 1000;
const MAX_ITEMS = 60;

// A small cache of lookups, per tenant and question.
const cache = new Map();
function cached(key, f) {
  const hit = cache.get(key);
  if (hit && Date.now() - hit.at < TTL) return hit.p;
  const p = f().catch(() => []);
  cache.set(key, {at: Date.now(), p});
  return p;
}

function range() {
  const end = Math.floor(Date.now() / 1000);
  return {start: end - LOOKBACK, end};
}

const lookups = {
  metrics(tenant) {
    return cached(`m|${tenant}`, async () => {
      const [names, meta] = await Promise.all([
        api('/api/v1/label/__name__/values', range(), {tenant}).then(r => r.data || []),
        api('/api/v1/metadata', null, {tenant}).then(r => r.data || {}).catch(() => ({})),
      ]);
      return names.map(n => {
        const m = (meta[n] || [])[0];
        return {text: n, kind: m ? m.type : 'metric', detail: m ? m.help : ''};
      });
    });
  },
  labels(tenant, metric) {
    return cached(`l|${tenant}|${metric}`, async () => {
      const p = range();
      if (metric) p['match[]'] = metric;
      const r = await api('/api/v1/labels', p, {tenant});
      return (r.data || []).filter(n => n !== '__name__').map(n => ({text: n, kind: 'label', detail: ''}));
    });
  },
  values(tenant, label, metric) {
    return cached(`v|${tenant}|${label}|${metric}`, async () => {
      const p = range();
      if (metric) p['match[]'] = metric;
      const r = await api(`/api/v1/label/${encodeURIComponent(label)}/values`, p, {tenant});
      return (r.data || []).map(v => ({text: v, kind: 'value', detail: ''}));
    });
  },
};

const fnItems = functions.map(([n, args, d]) => ({text: n, kind: 'function', detail: `${n}(${args}): ${d}`, call: true}));
const aggItems = aggregations.map(([n, d]) => ({text: n, kind: 'aggregation', detail: d, call: true}));
const kwItems = keywords.map(([n, d]) => ({text: n, kind: 'keyword', detail: d}));
const durItems = durations.map(d => ({text: d, kind: 'duration', detail: ''}));

// rank keeps the items matching prefix: prefix matches first, then those
// containing it, each group in its own order.
function rank(items, prefix) {
  const p = prefix.toLowerCase();
  const first = [], then = [];
  for (const it of items) {
    const t = it.text.toLowerCase();
    if (t === p && it.kind !== 'function' && it.kind !== 'aggregation') continue;
    if (t.startsWith(p)) first.push(it);
    else if (p && t.includes(p)) then.push(it);
  }
  return first.concat(then);
}

export class Editor {
  // opts: value, placeholder, tenant() (current tenant), onExecute, onChange.
  constructor(opts) {
    this.opts = opts;
    this.ta = h('textarea', {rows: 1, spellcheck: 'false', autocomplete: 'off', autocapitalize: 'off',
      placeholder: opts.placeholder || 'Expression (press Shift+Enter for a new line)', 'aria-label': 'PromQL expression', class: 'expr'});
    this.ta.value = opts.value || '';
    this.pre = h('pre', {'aria-hidden': 'true'});
    this.menu = h('div', {class: 'complete hidden', role: 'listbox'});
    this.el = h('div', {class: 'editor-wrap'}, h('div', {class: 'editor'}, this.pre, this.ta), this.menu);
    this.items = [];
    this.sel = 0;
    this.seq = 0;
    this.ta.addEventListener('input', () => { this.sync(); this.opts.onChange?.(this.ta.value); this.suggest(false); });
    this.ta.addEventListener('keydown', e => this.key(e));
    this.ta.addEventListener('blur', () => setTimeout(() => this.close(), 120));
    this.ta.addEventListener('click', () => this.close());
    this.ta.addEventListener('scroll', () => { this.pre.scrollTop = this.ta.scrollTop; });
    this.menu.addEventListener('mousedown', e => e.preventDefault());
    this.sync();
  }

  get value() { return this.ta.value; }
  set value(v) { this.ta.value = v; this.sync(); }
  focus() { this.ta.focus(); }

  // sync redraws the highlighted copy and fits the height to the text.
  sync() {
    const pre = clear(this.pre);
    for (const [kind, text] of tokenize(this.ta.value)) {
      if (kind === 'ws' || kind === 'p') pre.append(text);
      else pre.append(h('span', {class: 'hl-' + kind}, text));
    }
    pre.append('\n');
    this.ta.style.height = 'auto';
    this.ta.style.height = this.ta.scrollHeight + 2 + 'px';
  }

  key(e) {
    const open = !this.menu.classList.contains('hidden');
    if (open) {
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        this.select(this.sel + (e.key === 'ArrowDown' ? 1 : -1));
        return;
      }
      if ((e.key === 'Enter' && !e.shiftKey) || e.key === 'Tab') {
        e.preventDefault();
        this.accept(this.items[this.sel]);
        return;
      }
      if (e.key === 'Escape') { e.preventDefault(); this.close(); return; }
    }
    if (e.key === ' ' && e.ctrlKey) { e.preventDefault(); this.suggest(true); return; }
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      this.close();
      this.opts.onExecute?.();
    }
  }

  // suggest opens the menu for what the cursor is writing. Typing opens
  // it for words of at least one letter and inside {} or quotes; Ctrl+Space
  // always.
  async suggest(forced) {
    const pos = this.ta.selectionStart;
    if (pos !== this.ta.selectionEnd) return this.close();
    const ctx = context(this.ta.value, pos);
    const tenant = this.opts.tenant?.() || '';
    const seq = ++this.seq;
    let items = [];
    switch (ctx.kind) {
      case 'metric':
        if (!ctx.prefix && !forced) return this.close();
        items = rank([...await lookups.metrics(tenant), ...aggItems, ...fnItems, ...kwItems], ctx.prefix);
        break;
      case 'label':
        items = rank(await lookups.labels(tenant, ctx.metric), ctx.prefix);
        break;
      case 'value':
        items = rank(await lookups.values(tenant, ctx.label, ctx.metric), ctx.prefix);
        break;
      case 'duration':
        items = rank(durItems, ctx.prefix);
        break;
      default:
        return this.close();
    }
    if (seq !== this.seq || document.activeElement !== this.ta) return;
    this.ctx = ctx;
    this.show(items.slice(0, MAX_ITEMS), ctx.prefix);
  }

  show(items, prefix) {
    this.items = items;
    if (!items.length) return this.close();
    const menu = clear(this.menu);
    items.forEach((it, i) => {
      const t = it.text;
      const at = t.toLowerCase().indexOf(prefix.toLowerCase());
      const text = prefix && at >= 0
        ? [t.slice(0, at), h('mark', null, t.slice(at, at + prefix.length)), t.slice(at + prefix.length)]
        : [t];
      const row = h('div', {class: 'item', role: 'option', dataset: {i}},
        h('span', {class: 'k'}, it.kind), h('span', {class: 't'}, text), h('span', {class: 'd', title: it.detail}, it.detail));
      row.addEventListener('click', () => this.accept(it));
      row.addEventListener('mousemove', () => { if (this.sel !== i) this.select(i); });
      menu.append(row);
    });
    const c = caret(this.ta, this.ta.selectionStart);
    menu.style.left = Math.min(c.left, Math.max(0, this.el.clientWidth - 320)) + 'px';
    menu.style.top = c.top + c.height + 4 + 'px';
    menu.classList.remove('hidden');
    this.select(0);
  }

  select(i) {
    const n = this.items.length;
    this.sel = (i + n) % n;
    [...this.menu.children].forEach((row, k) => row.classList.toggle('sel', k === this.sel));
    this.menu.children[this.sel]?.scrollIntoView({block: 'nearest'});
  }

  close() {
    this.menu.classList.add('hidden');
    this.items = [];
  }

  // accept puts an item in place of the word being written.
  accept(it) {
    if (!it) return;
    const ta = this.ta, pos = ta.selectionStart, v = ta.value;
    const from = pos - this.ctx.prefix.length;
    let after = v.slice(pos);
    let insert = it.text;
    // Replace the rest of the word under the cursor too.
    const tail = /^[a-zA-Z0-9_:]*/.exec(after)[0];
    if (this.ctx.kind !== 'value') after = after.slice(tail.length);
    let cursor = from + insert.length;
    if (this.ctx.kind === 'value') {
      insert = insert.replace(/\\/g, '\\\\').replace(new RegExp(this.ctx.quote, 'g'), '\\' + this.ctx.quote);
      // Drop the rest of the value being replaced, and close the quote
      // unless it already is.
      const rest = /^[\w.:\/-]*/.exec(after)[0];
      after = after.slice(rest.length);
      if (!after.startsWith(this.ctx.quote)) after = this.ctx.quote + after;
      cursor = from + insert.length + 1;
    } else if (it.call && !after.trimStart().startsWith('(')) {
      insert += '(';
      after = ')' + after;
      cursor = from + insert.length;
    }
    ta.value = v.slice(0, from) + insert + after;
    ta.setSelectionRange(cursor, cursor);
    this.close();
    this.sync();
    this.opts.onChange?.(ta.value);
    // A label name is followed by its value: offer nothing until = is typed.
    if (this.ctx.kind === 'metric' && it.call) this.suggest(true);
  }
}

// caret returns the pixel position of pos in a textarea, relative to it,
// from a hidden copy laid out the same way.
function caret(ta, pos) {
  const st = getComputedStyle(ta);
  const mirror = h('div');
  for (const p of ['fontFamily', 'fontSize', 'fontWeight', 'lineHeight', 'letterSpacing', 'paddingTop', 'paddingRight',
    'paddingBottom', 'paddingLeft', 'borderTopWidth', 'borderRightWidth', 'borderBottomWidth', 'borderLeftWidth',
    'boxSizing', 'tabSize', 'wordBreak', 'overflowWrap']) mirror.style[p] = st[p];
  Object.assign(mirror.style, {position: 'absolute', visibility: 'hidden', whiteSpace: 'pre-wrap', top: '0', left: '-9999px',
    width: ta.offsetWidth + 'px', borderStyle: 'solid'});
  mirror.textContent = ta.value.slice(0, pos);
  const mark = h('span', null, ta.value.slice(pos) || '.');
  mirror.append(mark);
  document.body.append(mirror);
  const out = {left: mark.offsetLeft, top: mark.offsetTop - ta.scrollTop, height: parseFloat(st.lineHeight) || 20};
  mirror.remove();
  return out;
}
