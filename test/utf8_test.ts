import { assertEquals, assertStrictEquals } from "@std/assert";
import { isValidUtf8, utf8Length, Utf8Validator } from "../protocol/utf8.ts";
import { bytesOf, utf8 } from "./_bytes.ts";
import { Random } from "./_random.ts";

const VALID: [string, Uint8Array][] = [
  ["empty", bytesOf()],
  ["ASCII", utf8("Hello, WebSocket! 0123456789 ~")],
  ["NUL and DEL", bytesOf(0x00, 0x7f)],
  ["2-byte é", utf8("é")],
  ["2-byte lowest U+0080", bytesOf(0xc2, 0x80)],
  ["2-byte highest U+07FF", bytesOf(0xdf, 0xbf)],
  ["3-byte €", utf8("€")],
  ["3-byte lowest U+0800", bytesOf(0xe0, 0xa0, 0x80)],
  ["3-byte U+D7FF below the surrogates", bytesOf(0xed, 0x9f, 0xbf)],
  ["3-byte U+E000 above the surrogates", bytesOf(0xee, 0x80, 0x80)],
  ["3-byte U+FEFF (BOM)", bytesOf(0xef, 0xbb, 0xbf)],
  ["3-byte U+FFFF", bytesOf(0xef, 0xbf, 0xbf)],
  ["4-byte lowest U+10000", bytesOf(0xf0, 0x90, 0x80, 0x80)],
  ["4-byte emoji", utf8("😀")],
  ["4-byte U+40000", bytesOf(0xf1, 0x80, 0x80, 0x80)],
  ["4-byte highest U+10FFFF", bytesOf(0xf4, 0x8f, 0xbf, 0xbf)],
  ["mixed", utf8("κόσμε — ascii — 日本語 — 🎉 — end")],
  ["long ASCII run then multibyte", utf8("a".repeat(101) + "ü" + "b".repeat(7) + "😀")],
];

/** Invalid inputs and the index of the first byte that must be rejected (-1: only at finish). */
const INVALID: [string, Uint8Array, number][] = [
  ["overlong NUL C0 80", bytesOf(0xc0, 0x80), 0],
  ["overlong C1 BF", bytesOf(0xc1, 0xbf), 0],
  ["overlong 3-byte E0 80 80", bytesOf(0xe0, 0x80, 0x80), 1],
  ["overlong 3-byte E0 9F BF", bytesOf(0xe0, 0x9f, 0xbf), 1],
  ["overlong 4-byte F0 80 80 80", bytesOf(0xf0, 0x80, 0x80, 0x80), 1],
  ["overlong 4-byte F0 8F BF BF", bytesOf(0xf0, 0x8f, 0xbf, 0xbf), 1],
  ["surrogate ED A0 80 (U+D800)", bytesOf(0xed, 0xa0, 0x80), 1],
  ["surrogate ED BF BF (U+DFFF)", bytesOf(0xed, 0xbf, 0xbf), 1],
  ["above U+10FFFF F4 90 80 80", bytesOf(0xf4, 0x90, 0x80, 0x80), 1],
  ["F5 lead", bytesOf(0xf5, 0x80, 0x80, 0x80), 0],
  ["FE", bytesOf(0xfe), 0],
  ["FF", bytesOf(0xff), 0],
  ["lone continuation 80", bytesOf(0x80), 0],
  ["lone continuation BF after ASCII", bytesOf(0x41, 0x42, 0xbf), 2],
  ["continuation after a complete character", bytesOf(0xc3, 0xa9, 0xa9), 2],
  ["ASCII where a continuation belongs", bytesOf(0xc3, 0x41), 1],
  ["lead where a continuation belongs", bytesOf(0xe2, 0x82, 0xe2), 2],
  ["2-byte truncated", bytesOf(0xc3), -1],
  ["3-byte truncated", bytesOf(0x41, 0xe2, 0x82), -1],
  ["4-byte truncated", bytesOf(0xf0, 0x9f, 0x98), -1],
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
  for (const input of [bytesOf(0xf4, 0x90), bytesOf(0xed, 0xa0)]) {
    const validator = new Utf8Validator();
    assertStrictEquals(validator.push(input.subarray(0, 1)), true);
    assertStrictEquals(validator.push(input.subarray(1, 2)), false);
    assertStrictEquals(validator.finish(), false);
  }
});

Deno.test("Utf8Validator stays failed until reset", () => {
  const validator = new Utf8Validator();
  assertStrictEquals(validator.push(bytesOf(0xff)), false);
  assertStrictEquals(validator.push(utf8("fine")), false);
  assertStrictEquals(validator.finish(), false);
  validator.reset();
  assertStrictEquals(validator.push(utf8("fine")), true);
  assertStrictEquals(validator.finish(), true);
});

Deno.test("Utf8Validator reset forgets a character in progress", () => {
  const validator = new Utf8Validator();
  assertStrictEquals(validator.push(bytesOf(0xe2, 0x82)), true);
  assertStrictEquals(validator.finish(), false);
  validator.reset();
  assertStrictEquals(validator.push(bytesOf(0x41)), true);
  assertStrictEquals(validator.finish(), true);
});

Deno.test("Utf8Validator does not modify its input", () => {
  const input = utf8("héllo 😀");
  const copy = input.slice();
  new Utf8Validator().push(input);
  assertEquals(input, copy);
});

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
  const random = new Random(6455);
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let valid = 0;
  for (let n = 0; n < 20_000; n++) {
    const input = new Uint8Array(random.below(10));
    for (let i = 0; i < input.length; i++) {
      input[i] = random.chance(0.7) ? random.pick(INTERESTING) : random.below(256);
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
    const split = random.below(input.length + 1);
    const validator = new Utf8Validator();
    const ok = validator.push(input.subarray(0, split)) && validator.push(input.subarray(split)) &&
      validator.finish();
    assertStrictEquals(ok, expected, `${label} split at ${split}`);
  }
  // The generator must produce both outcomes for the comparison to mean anything.
  assertStrictEquals(valid > 1000 && valid < 19_000, true, `valid count ${valid}`);
});

Deno.test("Utf8Validator agrees with TextDecoder on random valid text", () => {
  const random = new Random(42);
  for (let n = 0; n < 500; n++) {
    let text = "";
    const length = random.below(40);
    for (let i = 0; i < length; i++) {
      let codePoint = random.below(0x110000);
      if (codePoint >= 0xd800 && codePoint <= 0xdfff) codePoint = 0x41;
      text += String.fromCodePoint(codePoint);
    }
    assertStrictEquals(isValidUtf8(utf8(text)), true, text);
  }
});

Deno.test("utf8Length counts what TextEncoder writes, lone surrogates included", () => {
  const random = new Random(11);
  const units = [
    0x41,
    0x7f,
    0x80,
    0x7ff,
    0x800,
    0xd7ff,
    0xd800,
    0xdbff,
    0xdc00,
    0xdfff,
    0xe000,
    0xffff,
  ];
  for (let round = 0; round < 500; round++) {
    let text = "";
    const length = random.below(12);
    for (let i = 0; i < length; i++) text += String.fromCharCode(random.pick(units));
    assertEquals(utf8Length(text), utf8(text).length, JSON.stringify(text));
  }
  assertEquals(utf8Length("héllo ✓ 😀"), 15);
});
