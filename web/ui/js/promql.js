// PromQL knowledge for the editor: the language's words, a tokenizer for
// highlighting, and where in an expression the cursor stands.

// Functions: name, argument list, what it gives.
export const functions = [
  ['abs', 'v instant-vector', 'absolute value of every sample'],
  ['absent', 'v instant-vector', '1-element vector when v has no series'],
  ['absent_over_time', 'v range-vector', '1-element vector when v has no samples in the range'],
  ['acos', 'v instant-vector', 'arccosine'], ['acosh', 'v instant-vector', 'inverse hyperbolic cosine'],
  ['asin', 'v instant-vector', 'arcsine'], ['asinh', 'v instant-vector', 'inverse hyperbolic sine'],
  ['atan', 'v instant-vector', 'arctangent'], ['atanh', 'v instant-vector', 'inverse hyperbolic tangent'],
  ['avg_over_time', 'v range-vector', 'average of the samples in the range'],
  ['ceil', 'v instant-vector', 'round up to an integer'],
  ['changes', 'v range-vector', 'how often the value changed in the range'],
  ['clamp', 'v instant-vector, min scalar, max scalar', 'limit samples to [min, max]'],
  ['clamp_max', 'v instant-vector, max scalar', 'limit samples to at most max'],
  ['clamp_min', 'v instant-vector, min scalar', 'limit samples to at least min'],
  ['cos', 'v instant-vector', 'cosine'], ['cosh', 'v instant-vector', 'hyperbolic cosine'],
  ['count_over_time', 'v range-vector', 'number of samples in the range'],
  ['day_of_month', 'v=vector(time()) instant-vector', 'day of the month, 1–31, UTC'],
  ['day_of_week', 'v=vector(time()) instant-vector', 'day of the week, 0 (Sunday)–6, UTC'],
  ['day_of_year', 'v=vector(time()) instant-vector', 'day of the year, 1–366, UTC'],
  ['days_in_month', 'v=vector(time()) instant-vector', 'days in the month, 28–31, UTC'],
  ['deg', 'v instant-vector', 'radians to degrees'],
  ['delta', 'v range-vector', 'difference between first and last value of a gauge'],
  ['deriv', 'v range-vector', 'per-second derivative by linear regression'],
  ['double_exponential_smoothing', 'v range-vector, sf scalar, tf scalar', 'smoothed value (experimental)'],
  ['exp', 'v instant-vector', 'e to the power of the sample'],
  ['floor', 'v instant-vector', 'round down to an integer'],
  ['histogram_avg', 'v instant-vector', 'average of the observations of native histograms'],
  ['histogram_count', 'v instant-vector', 'observation count of native histograms'],
  ['histogram_fraction', 'lower scalar, upper scalar, v instant-vector', 'fraction of observations in [lower, upper]'],
  ['histogram_quantile', 'φ scalar, b instant-vector', 'φ-quantile from classic buckets or native histograms'],
  ['histogram_stddev', 'v instant-vector', 'standard deviation of native histogram observations'],
  ['histogram_stdvar', 'v instant-vector', 'variance of native histogram observations'],
  ['histogram_sum', 'v instant-vector', 'sum of the observations of native histograms'],
  ['hour', 'v=vector(time()) instant-vector', 'hour of the day, 0–23, UTC'],
  ['idelta', 'v range-vector', 'difference between the last two samples'],
  ['increase', 'v range-vector', 'increase of a counter over the range'],
  ['info', 'v instant-vector, [selector]', 'add info metric labels (experimental)'],
  ['irate', 'v range-vector', 'per-second rate from the last two samples'],
  ['label_join', 'v instant-vector, dst string, sep string, src...', 'join label values into a new label'],
  ['label_replace', 'v instant-vector, dst string, repl string, src string, regex string', 'set a label from a regex match'],
  ['last_over_time', 'v range-vector', 'most recent sample in the range'],
  ['ln', 'v instant-vector', 'natural logarithm'],
  ['log10', 'v instant-vector', 'decimal logarithm'],
  ['log2', 'v instant-vector', 'binary logarithm'],
  ['mad_over_time', 'v range-vector', 'median absolute deviation in the range'],
  ['max_over_time', 'v range-vector', 'largest sample in the range'],
  ['min_over_time', 'v range-vector', 'smallest sample in the range'],
  ['minute', 'v=vector(time()) instant-vector', 'minute of the hour, 0–59, UTC'],
  ['month', 'v=vector(time()) instant-vector', 'month of the year, 1–12, UTC'],
  ['pi', '', 'π'],
  ['predict_linear', 'v range-vector, t scalar', 'value t seconds from now by linear regression'],
  ['present_over_time', 'v range-vector', '1 for every series with a sample in the range'],
  ['quantile_over_time', 'φ scalar, v range-vector', 'φ-quantile of the samples in the range'],
  ['rad', 'v instant-vector', 'degrees to radians'],
  ['rate', 'v range-vector', 'per-second increase of a counter over the range'],
  ['resets', 'v range-vector', 'number of counter resets in the range'],
  ['round', 'v instant-vector, to_nearest=1 scalar', 'round to the nearest multiple'],
  ['scalar', 'v instant-vector', 'the one sample as a scalar, else NaN'],
  ['sgn', 'v instant-vector', 'sign: -1, 0 or 1'],
  ['sin', 'v instant-vector', 'sine'], ['sinh', 'v instant-vector', 'hyperbolic sine'],
  ['sort', 'v instant-vector', 'sort by value, ascending'],
  ['sort_by_label', 'v instant-vector, label string...', 'sort by label values, ascending'],
  ['sort_by_label_desc', 'v instant-vector, label string...', 'sort by label values, descending'],
  ['sort_desc', 'v instant-vector', 'sort by value, descending'],
  ['sqrt', 'v instant-vector', 'square root'],
  ['stddev_over_time', 'v range-vector', 'standard deviation of the samples in the range'],
  ['stdvar_over_time', 'v range-vector', 'variance of the samples in the range'],
  ['sum_over_time', 'v range-vector', 'sum of the samples in the range'],
  ['tan', 'v instant-vector', 'tangent'], ['tanh', 'v instant-vector', 'hyperbolic tangent'],
  ['time', '', 'seconds since the epoch at evaluation time'],
  ['timestamp', 'v instant-vector', 'timestamp of every sample'],
  ['vector', 's scalar', 'the scalar as a vector without labels'],
  ['year', 'v=vector(time()) instant-vector', 'year, UTC'],
];

export const aggregations = [
  ['sum', 'sum over dimensions'], ['avg', 'average over dimensions'], ['min', 'smallest over dimensions'],
  ['max', 'largest over dimensions'], ['count', 'number of series'], ['group', '1 per group'],
  ['stddev', 'standard deviation over dimensions'], ['stdvar', 'variance over dimensions'],
  ['count_values', 'series per distinct value'], ['topk', 'k largest samples'], ['bottomk', 'k smallest samples'],
  ['quantile', 'φ-quantile over dimensions'], ['limitk', 'k series, any'], ['limit_ratio', 'a ratio of the series, deterministic'],
];

export const keywords = [
  ['by', 'keep these labels'], ['without', 'drop these labels'], ['on', 'match on these labels'],
  ['ignoring', 'match ignoring these labels'], ['group_left', 'many-to-one match'], ['group_right', 'one-to-many match'],
  ['offset', 'shift the time'], ['bool', 'return 0/1 instead of filtering'],
  ['and', 'intersection'], ['or', 'union'], ['unless', 'complement'], ['atan2', 'arctangent of two vectors'],
  ['start', '@ start(): the query start'], ['end', '@ end(): the query end'],
];

const fnSet = new Set(functions.map(f => f[0]));
const aggSet = new Set(aggregations.map(a => a[0]));
const kwSet = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'and', 'or', 'unless', 'atan2', 'inf', 'nan']);

export const durations = ['1m', '5m', '10m', '15m', '30m', '1h', '2h', '6h', '12h', '1d', '7d'];

// tokenize splits an expression into [kind, text] pieces that cover it
// exactly, for highlighting. Kinds: name, fn, kw, label, str, num, op, com,
// ws, p (punctuation).
export function tokenize(src) {
  const out = [];
  const parens = []; // per open paren: does it hold grouping labels?
  let i = 0, depthBrace = 0, lastWord = '';
  while (i < src.length) {
    const c = src[i];
    const rest = src.slice(i);
    let m;
    if (c === '#') {
      const end = src.indexOf('\n', i);
      const j = end < 0 ? src.length : end;
      out.push(['com', src.slice(i, j)]); i = j; continue;
    }
    if (c === '"' || c === "'" || c === '`') {
      let j = i + 1;
      while (j < src.length && src[j] !== c) j += src[j] === '\\' && c !== '`' ? 2 : 1;
      j = Math.min(src.length, j + 1);
      out.push(['str', src.slice(i, j)]); i = j; lastWord = ''; continue;
    }
    if ((m = /^\s+/.exec(rest))) { out.push(['ws', m[0]]); i += m[0].length; continue; }
    if ((m = /^(?:\d+(?:\.\d+)?(?:ms|[smhdwy]))+(?![a-zA-Z0-9_])/.exec(rest)) || (m = /^(?:0x[0-9a-fA-F]+|\d*\.?\d+(?:[eE][+-]?\d+)?)/.exec(rest))) {
      out.push(['num', m[0]]); i += m[0].length; lastWord = ''; continue;
    }
    if ((m = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(rest))) {
      const w = m[0];
      const next = src.slice(i + w.length).trimStart();
      let kind = 'name';
      if (depthBrace > 0 || parens[parens.length - 1]) kind = 'label';
      else if (kwSet.has(w.toLowerCase())) kind = 'kw';
      else if (fnSet.has(w) || aggSet.has(w)) kind = next[0] === '(' || /^(by|without)\b/i.test(next) || next === '' ? 'fn' : 'name';
      out.push([kind, w]); i += w.length; lastWord = kind === 'kw' ? w.toLowerCase() : ''; continue;
    }
    if (c === '{') depthBrace++;
    else if (c === '}') depthBrace = Math.max(0, depthBrace - 1);
    else if (c === '(') parens.push(/^(by|without|on|ignoring|group_left|group_right)$/.test(lastWord));
    else if (c === ')') parens.pop();
    lastWord = '';
    if ((m = /^(?:=~|!~|!=|==|>=|<=|[-+*/%^=<>@])/.exec(rest))) { out.push(['op', m[0]]); i += m[0].length; continue; }
    out.push(['p', c]); i++;
  }
  return out;
}

// context says what the cursor at pos is writing:
//   {kind: 'metric', prefix}                 a metric name, function or keyword
//   {kind: 'label', prefix, metric}          a label name (in {} or by (...))
//   {kind: 'value', prefix, label, metric, quote}  a label value inside quotes
//   {kind: 'duration', prefix}              inside [...]
//   {kind: 'none'}
export function context(src, pos) {
  const before = src.slice(0, pos);
  // Inside a quoted label value?
  const strStart = openString(before);
  if (strStart >= 0) {
    const head = before.slice(0, strStart);
    const m = /([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*$/.exec(head);
    if (!m) return {kind: 'none'};
    const brace = head.lastIndexOf('{');
    return {kind: 'value', prefix: before.slice(strStart + 1), label: m[1], metric: metricBefore(head.slice(0, brace)), quote: before[strStart]};
  }
  const code = stripStrings(before);
  const openBrace = code.lastIndexOf('{') > code.lastIndexOf('}');
  const openBracket = code.lastIndexOf('[') > code.lastIndexOf(']');
  const word = /[a-zA-Z_:][a-zA-Z0-9_:]*$/.exec(code);
  const prefix = word ? word[0] : '';
  const head = code.slice(0, code.length - prefix.length);
  if (openBracket) {
    return /[\[:]\s*[0-9a-z]*$/.test(code) ? {kind: 'duration', prefix: /[0-9a-z]*$/.exec(code)[0]} : {kind: 'none'};
  }
  if (openBrace) {
    if (/[{,]\s*$/.test(head)) {
      const brace = code.lastIndexOf('{');
      return {kind: 'label', prefix, metric: metricBefore(code.slice(0, brace))};
    }
    return {kind: 'none'};
  }
  if (inGrouping(head)) return {kind: 'label', prefix, metric: ''};
  if (/[0-9.]$/.test(head) && prefix && /^[smhdwy]/.test(prefix)) return {kind: 'none'};
  return {kind: 'metric', prefix};
}

// openString returns where the string the text ends in starts, or -1.
function openString(text) {
  let start = -1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (start >= 0) {
      if (c === '\\' && text[start] !== '`') { i++; continue; }
      if (c === text[start]) start = -1;
    } else if (c === '"' || c === "'" || c === '`') {
      start = i;
    } else if (c === '#') {
      const nl = text.indexOf('\n', i);
      if (nl < 0) return -1;
      i = nl;
    }
  }
  return start;
}

function stripStrings(text) {
  return text.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, m => ' '.repeat(m.length));
}

function metricBefore(text) {
  const m = /([a-zA-Z_:][a-zA-Z0-9_:]*)\s*$/.exec(text);
  if (!m || fnSet.has(m[1]) || aggSet.has(m[1]) || kwSet.has(m[1])) return '';
  return m[1];
}

// inGrouping: the innermost open paren belongs to by/without/on/ignoring/group_x.
function inGrouping(head) {
  let depth = 0;
  for (let i = head.length - 1; i >= 0; i--) {
    const c = head[i];
    if (c === ')') depth++;
    else if (c === '(') {
      if (depth === 0) {
        return /\b(by|without|on|ignoring|group_left|group_right)\s*$/i.test(head.slice(0, i));
      }
      depth--;
    }
  }
  return false;
}
