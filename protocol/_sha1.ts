/**
 * SHA-1 (FIPS 180-4 §6.1), synchronous and dependency-free.
 *
 * The opening handshake needs SHA-1 for exactly one thing: the
 * `Sec-WebSocket-Accept` value (RFC 6455 §4.2.2). Web Crypto's digest is
 * asynchronous, and a handshake with no awaits is simpler to read and to test,
 * so this small implementation follows the standard step by step. SHA-1 is
 * broken for collision resistance, which does not matter here: the accept
 * value only proves the server read the key, it protects no secret.
 *
 * @module
 */

/**
 * Computes the SHA-1 digest of `message`.
 *
 * @example
 * ```ts ignore
 * import { sha1 } from "./_sha1.ts";
 * sha1(new TextEncoder().encode("abc")); // a9993e36 4706816a ba3e2571 7850c26c 9cd0d89d
 * ```
 */
export function sha1(message: Uint8Array): Uint8Array {
  // §5.3.1: the initial hash value H(0).
  const state = new Int32Array([0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0]);
  const schedule = new Int32Array(80);

  // §6.1.2: hash every complete 512-bit (64-byte) block straight from the input.
  const whole = message.length - (message.length % 64);
  for (let offset = 0; offset < whole; offset += 64) {
    compress(state, schedule, message, offset);
  }

  // §5.1.1 padding, applied only to the tail: the remaining bytes, a single 1
  // bit (0x80), zeros up to 56 bytes mod 64, then the message length in bits
  // as a 64-bit big-endian integer. That takes one block, or two when fewer
  // than 9 bytes are left in the first.
  const rest = message.length - whole;
  const tail = new Uint8Array(rest < 56 ? 64 : 128);
  tail.set(message.subarray(whole));
  tail[rest] = 0x80;
  const bitsHigh = Math.floor(message.length / 0x2000_0000); // length × 8 / 2^32
  const bitsLow = (message.length * 8) >>> 0;
  const end = tail.length;
  writeUint32(tail, end - 8, bitsHigh);
  writeUint32(tail, end - 4, bitsLow);
  for (let offset = 0; offset < end; offset += 64) {
    compress(state, schedule, tail, offset);
  }

  const digest = new Uint8Array(20);
  for (let i = 0; i < 5; i++) writeUint32(digest, i * 4, state[i]);
  return digest;
}

function writeUint32(target: Uint8Array, offset: number, value: number): void {
  target[offset] = value >>> 24;
  target[offset + 1] = (value >>> 16) & 0xff;
  target[offset + 2] = (value >>> 8) & 0xff;
  target[offset + 3] = value & 0xff;
}

/** ROTL^n(x) (§3.2): rotate a 32-bit word left by n bits. */
function rotl(x: number, n: number): number {
  return (x << n) | (x >>> (32 - n));
}

/**
 * Processes one 64-byte block at `bytes[offset]` into `state` (§6.1.2).
 * All arithmetic is on 32-bit words: `| 0` keeps additions modulo 2^32.
 */
function compress(state: Int32Array, w: Int32Array, bytes: Uint8Array, offset: number): void {
  // Step 1: the message schedule W0..W79. The first 16 words are the block
  // read big-endian; each later word mixes four earlier ones.
  for (let t = 0; t < 16; t++) {
    const i = offset + t * 4;
    w[t] = (bytes[i] << 24) | (bytes[i + 1] << 16) | (bytes[i + 2] << 8) | bytes[i + 3];
  }
  for (let t = 16; t < 80; t++) {
    w[t] = rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
  }

  // Step 2: the working variables start as the current hash value.
  let a = state[0];
  let b = state[1];
  let c = state[2];
  let d = state[3];
  let e = state[4];

  // Step 3: 80 rounds in four stages of 20, each with its own function f_t
  // (§4.1.1) and constant K_t (§4.2.1).
  for (let t = 0; t < 80; t++) {
    let f: number;
    let k: number;
    if (t < 20) {
      f = (b & c) | (~b & d); // Ch(x, y, z)
      k = 0x5a827999;
    } else if (t < 40) {
      f = b ^ c ^ d; // Parity(x, y, z)
      k = 0x6ed9eba1;
    } else if (t < 60) {
      f = (b & c) | (b & d) | (c & d); // Maj(x, y, z)
      k = 0x8f1bbcdc;
    } else {
      f = b ^ c ^ d; // Parity again
      k = 0xca62c1d6;
    }
    const temp = (rotl(a, 5) + f + e + k + w[t]) | 0;
    e = d;
    d = c;
    c = rotl(b, 30);
    b = a;
    a = temp;
  }

  // Step 4: add this block's result into the hash value.
  state[0] = (state[0] + a) | 0;
  state[1] = (state[1] + b) | 0;
  state[2] = (state[2] + c) | 0;
  state[3] = (state[3] + d) | 0;
  state[4] = (state[4] + e) | 0;
}
