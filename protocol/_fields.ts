/**
 * Shared HTTP field syntax (RFC 9110 §5): tokens, list headers and the
 * writing of `Name: value` lines. Internal to protocol/.
 *
 * @module
 */

/** RFC 9110 §5.6.2: `token = 1*tchar`. */
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/**
 * RFC 9110 §5.5: a field value holds visible characters, SP and HTAB. Like the
 * parser, the builders stay within ASCII (no obs-text).
 */
export const FIELD_VALUE = /^[\t\x20-\x7e]*$/;

/**
 * Splits a comma-separated list header (RFC 9110 §5.6.1) into its non-empty,
 * trimmed elements.
 */
export function tokenList(value: string | null): string[] {
  if (value === null) return [];
  const items: string[] = [];
  for (const part of value.split(",")) {
    const item = part.trim();
    if (item !== "") items.push(item);
  }
  return items;
}

/** Whether a list header contains `token`, compared ASCII case-insensitively. */
export function hasToken(value: string | null, token: string): boolean {
  return tokenList(value).some((item) => item.toLowerCase() === token);
}

/** Renders `Name: value\r\n` lines, refusing anything that could inject a line. */
export function headerLines(headers: Iterable<[string, string]>): string {
  let text = "";
  for (const [name, value] of headers) {
    if (!TOKEN.test(name)) throw new TypeError(`invalid header name ${JSON.stringify(name)}`);
    if (!FIELD_VALUE.test(value)) {
      throw new TypeError(`invalid value for header ${name}: ${JSON.stringify(value)}`);
    }
    text += `${name}: ${value}\r\n`;
  }
  return text;
}
