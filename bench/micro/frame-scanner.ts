// A PROTOTYPE for issue 16's first W2 lever, measured by decode.ts and not used
// by the server: one validating pass over a client frame that routes on
// `type`/`to`/`device`/`id` and cuts the payload's text out, instead of
// JSON.parse (which builds every object and internalises every key) followed by
// json-member.ts's scan for the payload. It validates the whole text as JSON, as
// strictly as JSON.parse (RFC 8259: no trailing commas, no leading zeros,
// escapes checked, control characters refused), and gives up (undefined) on
// what it does not handle itself (an escape inside a routing field), where the
// server would fall back to JSON.parse.

export interface ScannedFrame {
  type: string;
  to: string | undefined;
  device: string | undefined;
  id: string | undefined;
  payloadJson: string | undefined;
}

const QUOTE = 0x22;
// eslint-disable-next-line no-control-regex -- control characters are exactly what a JSON string may not hold raw
const STRING_SPECIAL = /["\\\u0000-\u001f]/g;
const BACKSLASH = 0x5c;

/** Scans `text`; undefined when it is not valid JSON, not an object, or needs the slow path. */
export function scanFrame(text: string): ScannedFrame | undefined {
  const s = new Scanner(text);
  s.ws();
  if (s.peek() !== 0x7b) return undefined;
  s.at++;
  const out: ScannedFrame = { type: '', to: undefined, device: undefined, id: undefined, payloadJson: undefined };
  let hasType = false;
  s.ws();
  if (s.peek() === 0x7d) return undefined; // {}: no type (the slow path says so)
  for (;;) {
    if (s.peek() !== QUOTE) return undefined;
    const keyStart = s.at + 1;
    if (!s.string()) return undefined;
    const key = text.slice(keyStart, s.at - 1);
    s.ws();
    if (s.peek() !== 0x3a) return undefined;
    s.at++;
    s.ws();
    const valueStart = s.at;
    if (key === 'type' || key === 'to' || key === 'device' || key === 'id') {
      // Not a string, or escaped: the slow path (JSON.parse) decides, and words the error.
      if (s.peek() !== QUOTE || !s.string()) return undefined;
      const raw = text.slice(valueStart + 1, s.at - 1);
      if (raw.includes('\\')) return undefined;
      if (key === 'type') {
        out.type = raw;
        hasType = true;
      } else out[key] = raw;
    } else {
      if (!s.value()) return undefined;
      if (key === 'payload') out.payloadJson = text.slice(valueStart, s.at);
    }
    s.ws();
    const c = s.peek();
    s.at++;
    if (c === 0x2c) {
      s.ws();
      continue;
    }
    if (c !== 0x7d) return undefined;
    break;
  }
  s.ws();
  return s.at === text.length && hasType ? out : undefined;
}

class Scanner {
  at = 0;
  constructor(private readonly text: string) {}

  peek(): number {
    return this.text.charCodeAt(this.at);
  }

  ws(): void {
    for (;;) {
      const c = this.text.charCodeAt(this.at);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) this.at++;
      else return;
    }
  }

  /** At a quote: moves past the closing quote; false when the string is invalid. */
  string(): boolean {
    const text = this.text;
    let i = this.at + 1;
    for (;;) {
      // Jumps to the next quote, backslash or control character (native regex, not a loop per character).
      STRING_SPECIAL.lastIndex = i;
      if (STRING_SPECIAL.exec(text) === null) return false;
      i = STRING_SPECIAL.lastIndex - 1;
      const c = text.charCodeAt(i);
      if (c === QUOTE) {
        this.at = i + 1;
        return true;
      }
      if (c < 0x20) return false;
      if (c === BACKSLASH) {
        const e = text.charCodeAt(i + 1);
        if (e === 0x75 /* u */) {
          for (let k = 2; k < 6; k++) if (!isHex(text.charCodeAt(i + k))) return false;
          i += 6;
          continue;
        }
        if (e !== QUOTE && e !== BACKSLASH && e !== 0x2f && e !== 0x62 && e !== 0x66 && e !== 0x6e && e !== 0x72 && e !== 0x74) return false;
        i += 2;
        continue;
      }
    }
  }

  /** Any JSON value; false when invalid. */
  value(): boolean {
    const c = this.peek();
    if (c === QUOTE) return this.string();
    if (c === 0x7b) return this.container(0x7d, true);
    if (c === 0x5b) return this.container(0x5d, false);
    if (c === 0x74) return this.literal('true');
    if (c === 0x66) return this.literal('false');
    if (c === 0x6e) return this.literal('null');
    return this.number();
  }

  private container(close: number, object: boolean): boolean {
    this.at++;
    this.ws();
    if (this.peek() === close) {
      this.at++;
      return true;
    }
    for (;;) {
      if (object) {
        if (this.peek() !== QUOTE || !this.string()) return false;
        this.ws();
        if (this.peek() !== 0x3a) return false;
        this.at++;
        this.ws();
      }
      if (!this.value()) return false;
      this.ws();
      const c = this.peek();
      this.at++;
      if (c === close) return true;
      if (c !== 0x2c) return false;
      this.ws();
    }
  }

  private literal(word: string): boolean {
    if (!this.text.startsWith(word, this.at)) return false;
    this.at += word.length;
    return true;
  }

  private number(): boolean {
    const text = this.text;
    let i = this.at;
    if (text.charCodeAt(i) === 0x2d) i++;
    const first = text.charCodeAt(i);
    if (first === 0x30) i++;
    else if (first >= 0x31 && first <= 0x39) while (isDigit(text.charCodeAt(i))) i++;
    else return false;
    if (text.charCodeAt(i) === 0x2e) {
      i++;
      if (!isDigit(text.charCodeAt(i))) return false;
      while (isDigit(text.charCodeAt(i))) i++;
    }
    const e = text.charCodeAt(i);
    if (e === 0x65 || e === 0x45) {
      i++;
      const sign = text.charCodeAt(i);
      if (sign === 0x2b || sign === 0x2d) i++;
      if (!isDigit(text.charCodeAt(i))) return false;
      while (isDigit(text.charCodeAt(i))) i++;
    }
    this.at = i;
    return true;
  }
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isHex(c: number): boolean {
  return isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}
