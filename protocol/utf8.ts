/**
 * Incremental UTF-8 validation (RFC 6455 §8.1, RFC 3629, Unicode Table 3-7).
 *
 * A text message may arrive in many fragments, and a fragment may end in the
 * middle of a character. RFC 6455 §8.1 asks an endpoint to fail the connection
 * as soon as the bytes received cannot be valid UTF-8, so the validator keeps
 * the state of the character in progress between calls and rejects a byte the
 * moment it breaks the grammar, without waiting for the rest.
 *
 * The grammar (Unicode Standard, Table 3-7, "Well-Formed UTF-8 Byte Sequences"):
 *
 * ```text
 * code points          1st byte  2nd byte  3rd byte  4th byte
 * U+0000..U+007F       00..7F
 * U+0080..U+07FF       C2..DF    80..BF
 * U+0800..U+0FFF       E0        A0..BF    80..BF
 * U+1000..U+CFFF       E1..EC    80..BF    80..BF
 * U+D000..U+D7FF       ED        80..9F    80..BF
 * U+E000..U+FFFF       EE..EF    80..BF    80..BF
 * U+10000..U+3FFFF     F0        90..BF    80..BF    80..BF
 * U+40000..U+FFFFF     F1..F3    80..BF    80..BF    80..BF
 * U+100000..U+10FFFF   F4        80..8F    80..BF    80..BF
 * ```
 *
 * Only the second byte ever has a range narrower than 80..BF; those narrow
 * ranges are what exclude overlong forms (E0, F0), UTF-16 surrogates (ED) and
 * code points above U+10FFFF (F4). C0, C1 and F5..FF never appear at all.
 *
 * @module
 */

/**
 * A streaming UTF-8 validator: feed it bytes in pieces of any size with
 * {@linkcode Utf8Validator.push}, then call {@linkcode Utf8Validator.finish}
 * when the input ends.
 *
 * @example
 * ```ts
 * import { Utf8Validator } from "@heartwire/heartwire/protocol";
 * const validator = new Utf8Validator();
 * validator.push(new Uint8Array([0xe2, 0x82])); // true: "€" has begun
 * validator.finish(); // false: it stopped in the middle of "€"
 * validator.reset();
 * validator.push(new Uint8Array([0xed, 0xa0])); // false: a surrogate, rejected at once
 * ```
 */
export class Utf8Validator {
  /** Continuation bytes still owed by the character in progress (0 at a boundary). */
  #needed = 0;
  /** The range the next continuation byte must fall in (Table 3-7). */
  #lower = 0x80;
  #upper = 0xbf;
  /** Set once a byte broke the grammar; the validator stays failed until reset(). */
  #failed = false;

  /**
   * Checks the next bytes of the input. Returns false as soon as the bytes seen
   * so far cannot be the start of valid UTF-8, and keeps returning false after
   * that. Returns true if they still can (possibly ending mid-character).
   *
   * The validator does not keep `bytes`.
   */
  push(bytes: Uint8Array): boolean {
    if (this.#failed) return false;
    let needed = this.#needed;
    let lower = this.#lower;
    let upper = this.#upper;
    const length = bytes.length;
    let i = 0;
    while (i < length) {
      if (needed === 0) {
        // ASCII fast path: most text is ASCII, so skip it four bytes at a time.
        while (
          i + 4 <= length && ((bytes[i] | bytes[i + 1] | bytes[i + 2] | bytes[i + 3]) & 0x80) === 0
        ) i += 4;
        while (i < length && bytes[i] < 0x80) i++;
        if (i === length) break;

        // A lead byte: how many continuation bytes follow, and the range of the first one.
        const lead = bytes[i++];
        if (lead >= 0xc2 && lead <= 0xdf) {
          needed = 1;
        } else if (lead >= 0xe0 && lead <= 0xef) {
          needed = 2;
          if (lead === 0xe0) lower = 0xa0; // below A0 would be an overlong 2-byte form
          else if (lead === 0xed) upper = 0x9f; // A0..BF would encode a surrogate D800..DFFF
        } else if (lead >= 0xf0 && lead <= 0xf4) {
          needed = 3;
          if (lead === 0xf0) lower = 0x90; // below 90 would be an overlong 3-byte form
          else if (lead === 0xf4) upper = 0x8f; // 90..BF would be above U+10FFFF
        } else {
          // 80..BF: a continuation byte with no lead; C0, C1: always overlong; F5..FF: too big.
          return this.#fail();
        }
      } else {
        const byte = bytes[i++];
        if (byte < lower || byte > upper) return this.#fail();
        // Only the first continuation byte has a narrowed range.
        lower = 0x80;
        upper = 0xbf;
        needed--;
      }
    }
    this.#needed = needed;
    this.#lower = lower;
    this.#upper = upper;
    return true;
  }

  /**
   * Ends the input. Returns true if every byte was valid and the input ended at
   * a character boundary, false if it failed or stopped mid-character.
   */
  finish(): boolean {
    return !this.#failed && this.#needed === 0;
  }

  /** Forgets all input, ready for a new, independent byte string. */
  reset(): void {
    this.#needed = 0;
    this.#lower = 0x80;
    this.#upper = 0xbf;
    this.#failed = false;
  }

  #fail(): false {
    this.#failed = true;
    return false;
  }
}

/**
 * Whether `bytes` is, as a whole, well-formed UTF-8 (Unicode Table 3-7).
 *
 * @example
 * ```ts
 * import { isValidUtf8 } from "@heartwire/heartwire/protocol";
 * isValidUtf8(new TextEncoder().encode("héllo")); // true
 * isValidUtf8(new Uint8Array([0xc0, 0x80])); // false: an overlong NUL
 * ```
 */
export function isValidUtf8(bytes: Uint8Array): boolean {
  const validator = new Utf8Validator();
  return validator.push(bytes) && validator.finish();
}

/**
 * The number of bytes `text` takes as UTF-8, counted without encoding it
 * (what `new TextEncoder().encode(text).length` gives: a lone surrogate
 * becomes U+FFFD, 3 bytes).
 *
 * @example
 * ```ts
 * import { utf8Length } from "@heartwire/heartwire/protocol";
 * utf8Length("héllo ✓ 😀"); // 15
 * ```
 */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) continue;
    if (unit < 0x800) bytes += 1;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 2; // a surrogate pair: 2 units, 4 bytes
        i++;
        continue;
      }
      bytes += 2; // a lone surrogate becomes U+FFFD: 3 bytes
    } else bytes += 2;
  }
  return bytes;
}
