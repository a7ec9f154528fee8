import { assertEquals, assertStrictEquals } from "@std/assert";
import { isValidUtf8, Utf8Validator } from "../protocol/utf8.ts";

const bytes = (...values: number[]) => new Uint8Array(values);
const encode = (text: string) => new TextEncoder().encode(text);

const VALID: [string, Uint8Array][] = [
  ["empty", bytes()],
  ["ASCII", encode("Hello, WebSocket! 0123456789 ~")],
  ["NUL and DEL", bytes(0x00, 0x7f)],
  ["2-byte é", encode("é")],
  ["2-byte lowest U+0080", bytes(0xc2, 0x80)],
  ["2-byte highest U+07FF", bytes(0xdf, 0xbf)],
  ["3-byte €", encode("€")],
  ["3-byte lowest U+0800", bytes(0xe0, 0xa0, 0x80)],
  ["3-byte U+D7FF below the surrogates", bytes(0xed, 0x9f, 0xbf)],
  ["3-byte U+E000 above the surrogates", bytes(0xee, 0x80, 0x80)],
  ["3-byte U+FEFF (BOM)", bytes(0xef, 0xbb, 0xbf)],
  ["3-byte U+FFFF", bytes(0xef, 0xbf, 0xbf)],
  ["4-byte lowest U+10000", bytes(0xf0, 0x90, 0x80, 0x80)],
  ["4-byte emoji", encode("😀")],
  ["4-byte U+40000", bytes(0xf1, 0x80, 0x80, 0x80)],
  ["4-byte highest U+10FFFF", bytes(0xf4, 0x8f, 0xbf, 0xbf)],
  ["mixed", encode("κόσμε — ascii — 日本語 — 🎉 — end")],
  ["long ASCII run then multibyte", encode("a".repeat(101) + "ü" + "b".repeat(7) + "😀")],
];

/** Invalid inputs and the index of the first byte that must be rejected (-1: only at finish). */
const INVALID: [string, Uint8Array, number][] = [
  ["overlong NUL C0 80", bytes(0xc0, 0x80), 0],
  ["overlong C1 BF", bytes(0xc1, 0xbf), 0],
  ["overlong 3-byte E0 80 80", bytes(0xe0, 0x80, 0x80), 1],
  ["overlong 3-byte E0 9F BF", bytes(0xe0, 0x9f, 0xbf), 1],
  ["overlong 4-byte F0 80 80 80", bytes(0xf0, 0x80, 0x80, 0x80), 1],
  ["overlong 4-byte F0 8F BF BF", bytes(0xf0, 0x8f, 0xbf, 0xbf), 1],
  ["surrogate ED A0 80 (U+D800)", bytes(0xed, 0xa0, 0x80), 1],
  ["surrogate ED BF BF (U+DFFF)", bytes(0xed, 0xbf, 0xbf), 1],
  ["above U+10FFFF F4 90 80 80", bytes(0xf4, 0x90, 0x80, 0x80), 1],
  ["F5 lead", bytes(0xf5, 0x80, 0x80, 0x80), 0],
  ["FE", bytes(0xfe), 0],
  ["FF", bytes(0xff), 0],
  ["lone continuation 80", bytes(0x80), 0],
  ["lone continuation BF after ASCII", bytes(0x41, 0x42, 0xbf), 2],
  ["continuation after a complete character", bytes(0xc3, 0xa9, 0xa9), 2],
  ["ASCII where a continuation belongs", bytes(0xc3, 0x41), 1],
  ["lead where a continuation belongs", bytes(0xe2, 0x82, 0xe2), 2],
  ["2-byte truncated", bytes(0xc3), -1],
  ["3-byte truncated", bytes(0x41, 0xe2, 0x82), -1],
  ["4-byte truncated", bytes(0xf0, 0x9f, 0x98), -1],
];

Deno.test("Utf8Validator accepts every valid sample in one push", () => {
  for (const [name, input] of VALID) {
    const validator = new Utf8Validator();
    assertStrictEquals(validator.push(input), true, name);
    assertStrictEquals(validator.finish(), true, name);
    assertStrictEquals(isValidUtf8(input), true, name);
  }
});

Deno.test("Utf8Validator accepts every valid sample split byte by byte", () => {
  for (const [name, input] of VALID) {
    const validator = new Utf8Validator();
    for (let i = 0; i < input.length; i++) {
      assertStrictEquals(validator.push(input.subarray(i, i + 1)), true, `${name} at ${i}`);
    }
    assertStrictEquals(validator.finish(), true, name);
  }
});

Deno.test("Utf8Validator accepts every valid sample at every split point", () => {
  for (const [name, input] of VALID) {
    for (let split = 0; split <= input.length; split++) {
      const validator = new Utf8Validator();
      assertStrictEquals(validator.push(input.subarray(0, split)), true, `${name} / ${split}`);
      assertStrictEquals(validator.push(input.subarray(split)), true, `${name} / ${split}`);
      assertStrictEquals(validator.finish(), true, `${name} / ${split}`);
    }
  }
});

Deno.test("Utf8Validator rejects every invalid sample", () => {
  for (const [name, input] of INVALID) {
    assertStrictEquals(isValidUtf8(input), false, name);
    const validator = new Utf8Validator();
    validator.push(input);
    assertStrictEquals(validator.finish(), false, name);
  }
});

Deno.test("Utf8Validator fails fast at the first byte that breaks the grammar", () => {
  for (const [name, input, failAt] of INVALID) {
    const validator = new Utf8Validator();
    let firstFalse = -1;
    for (let i = 0; i < input.length; i++) {
      if (!validator.push(input.subarray(i, i + 1))) {
        firstFalse = i;
        break;
      }
    }
    assertStrictEquals(firstFalse, failAt, name);
  }
});

Deno.test("Utf8Validator fails F4 90 and ED A0 at the second byte", () => {
  for (const input of [bytes(0xf4, 0x90), bytes(0xed, 0xa0)]) {
    const validator = new Utf8Validator();
    assertStrictEquals(validator.push(input.subarray(0, 1)), true);
    assertStrictEquals(validator.push(input.subarray(1, 2)), false);
    assertStrictEquals(validator.finish(), false);
  }
});

Deno.test("Utf8Validator stays failed until reset", () => {
  const validator = new Utf8Validator();
  assertStrictEquals(validator.push(bytes(0xff)), false);
  assertStrictEquals(validator.push(encode("fine")), false);
  assertStrictEquals(validator.finish(), false);
  validator.reset();
  assertStrictEquals(validator.push(encode("fine")), true);
  assertStrictEquals(validator.finish(), true);
});

Deno.test("Utf8Validator reset forgets a character in progress", () => {
  const validator = new Utf8Validator();
  assertStrictEquals(validator.push(bytes(0xe2, 0x82)), true);
  assertStrictEquals(validator.finish(), false);
  validator.reset();
  assertStrictEquals(validator.push(bytes(0x41)), true);
  assertStrictEquals(validator.finish(), true);
});

Deno.test("Utf8Validator does not modify its input", () => {
  const input = encode("héllo 😀");
  const copy = input.slice();
  new Utf8Validator().push(input);
  assertEquals(input, copy);
});

/** mulberry32: a tiny seeded PRNG so the random cases are the same on every run. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Bytes near every boundary of Table 3-7, so random strings hit the edge cases often.
const INTERESTING = [
  0x00,
  0x41,
  0x7f,
  0x80,
  0x8f,
  0x90,
  0x9f,
  0xa0,
  0xbf,
  0xc0,
  0xc1,
  0xc2,
  0xdf,
  0xe0,
  0xe1,
  0xec,
  0xed,
  0xee,
  0xef,
  0xf0,
  0xf1,
  0xf3,
  0xf4,
  0xf5,
  0xf8,
  0xfe,
  0xff,
];

Deno.test("Utf8Validator agrees with a fatal TextDecoder on seeded random input", () => {
  const random = seededRandom(6455);
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let valid = 0;
  for (let n = 0; n < 20_000; n++) {
    const input = new Uint8Array(Math.floor(random() * 10));
    for (let i = 0; i < input.length; i++) {
      input[i] = random() < 0.7
        ? INTERESTING[Math.floor(random() * INTERESTING.length)]
        : Math.floor(random() * 256);
    }
    let expected = true;
    try {
      decoder.decode(input);
    } catch {
      expected = false;
    }
    if (expected) valid++;
    const label = Array.from(input, (b) => b.toString(16)).join(" ");
    assertStrictEquals(isValidUtf8(input), expected, label);

    // The same answer when the input arrives in two pieces.
    const split = Math.floor(random() * (input.length + 1));
    const validator = new Utf8Validator();
    const ok = validator.push(input.subarray(0, split)) && validator.push(input.subarray(split)) &&
      validator.finish();
    assertStrictEquals(ok, expected, `${label} split at ${split}`);
  }
  // The generator must produce both outcomes for the comparison to mean anything.
  assertStrictEquals(valid > 1000 && valid < 19_000, true, `valid count ${valid}`);
});

Deno.test("Utf8Validator agrees with TextDecoder on random valid text", () => {
  const random = seededRandom(42);
  for (let n = 0; n < 500; n++) {
    let text = "";
    const length = Math.floor(random() * 40);
    for (let i = 0; i < length; i++) {
      let codePoint = Math.floor(random() * 0x110000);
      if (codePoint >= 0xd800 && codePoint <= 0xdfff) codePoint = 0x41;
      text += String.fromCodePoint(codePoint);
    }
    assertStrictEquals(isValidUtf8(encode(text)), true, text);
  }
});
