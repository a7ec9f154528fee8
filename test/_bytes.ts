/**
 * Byte helpers shared by the tests: building, joining and filling byte arrays.
 *
 * @module
 */

const encoder = new TextEncoder();

/** Bytes as tests like to write them: UTF-8 text, a byte array, or byte values. */
export type ByteSource = string | Uint8Array | readonly number[];

/** The bytes of `source`: a string as UTF-8, a `Uint8Array` as itself (no copy), numbers in a new array. */
export function toBytes(source: ByteSource): Uint8Array {
  if (typeof source === "string") return encoder.encode(source);
  return source instanceof Uint8Array ? source : new Uint8Array(source);
}

/** The given byte values in a new array: `bytesOf(0x81, 0x00)`. */
export function bytesOf(...values: number[]): Uint8Array {
  return new Uint8Array(values);
}

/** The UTF-8 encoding of `text`. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** The parts joined into one new array: `concat([[0x03, 0xe8], "bye"])` (parts as in {@linkcode toBytes}). */
export function concat(parts: readonly ByteSource[]): Uint8Array {
  const all = parts.map(toBytes);
  const out = new Uint8Array(all.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of all) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** `length` bytes of a pattern that repeats only every 256 bytes, so a misplaced byte shows. */
export function pattern(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + 7) & 0xff;
  return bytes;
}
