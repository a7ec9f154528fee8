/**
 * Masking (RFC 6455 §5.3), shared by the encoder (a client masks what it
 * sends) and the decoder (a server unmasks what it receives): octet i of the
 * payload is XORed with octet i mod 4 of the masking key, so applying the
 * same key twice gives the original back.
 *
 * @module
 */

/** Below this many bytes the word-at-a-time path costs more than it saves. */
const WORD_MIN = 64;

/** True on little-endian platforms (all the usual ones); decides how 4 key bytes read as a word. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * XORs `bytes[start..end)` in place with the 4-byte key at
 * `key[keyOffset..keyOffset + 4)`. Long runs that start on a 4-byte boundary
 * of their buffer are XORed a 32-bit word at a time; the rest a byte at a
 * time, unrolled by four so the key index is never computed in the loop.
 */
export function applyMask(
  bytes: Uint8Array,
  start: number,
  end: number,
  key: Uint8Array,
  keyOffset: number,
): void {
  const k0 = key[keyOffset], k1 = key[keyOffset + 1];
  const k2 = key[keyOffset + 2], k3 = key[keyOffset + 3];
  let i = start;
  if (end - start >= WORD_MIN && ((bytes.byteOffset + start) & 3) === 0) {
    const wordCount = (end - start) >>> 2;
    const words = new Int32Array(bytes.buffer, bytes.byteOffset + start, wordCount);
    // The same 4 key bytes, read as one word in platform byte order.
    const keyWord = LITTLE_ENDIAN
      ? k0 | (k1 << 8) | (k2 << 16) | (k3 << 24)
      : (k0 << 24) | (k1 << 16) | (k2 << 8) | k3;
    for (let w = 0; w < wordCount; w++) words[w] ^= keyWord;
    i = start + (wordCount << 2);
  }
  // i - start is a multiple of 4 here, so key octet 0 lines up with bytes[i].
  const whole = i + ((end - i) & ~3);
  for (; i < whole; i += 4) {
    bytes[i] ^= k0;
    bytes[i + 1] ^= k1;
    bytes[i + 2] ^= k2;
    bytes[i + 3] ^= k3;
  }
  if (i < end) bytes[i++] ^= k0;
  if (i < end) bytes[i++] ^= k1;
  if (i < end) bytes[i] ^= k2;
}
