import { assertEquals } from "@std/assert";
import { applyMask } from "../protocol/_mask.ts";
import { Random } from "./_random.ts";

/** The definition (RFC 6455 §5.3), one octet at a time. */
function naiveMask(bytes: Uint8Array, start: number, end: number, key: Uint8Array): Uint8Array {
  const out = bytes.slice();
  for (let i = start; i < end; i++) out[i] ^= key[(i - start) % 4];
  return out;
}

Deno.test("applyMask matches the §5.3 definition at every length, offset and alignment", () => {
  const random = new Random(5);
  const key = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);
  for (let length = 0; length <= 200; length++) {
    for (let start = 0; start < 8; start++) {
      const bytes = new Uint8Array(start + length + 3).map(() => random.below(256));
      const expected = naiveMask(bytes, start, start + length, key);
      applyMask(bytes, start, start + length, key, 0);
      assertEquals(bytes, expected, `length ${length}, start ${start}`);
    }
  }
});

Deno.test("applyMask reads the key at an offset and undoes itself", () => {
  const frame = new Uint8Array([
    9,
    9,
    0x01,
    0x02,
    0x03,
    0x04,
    ...new TextEncoder().encode("Hello"),
  ]);
  const original = frame.slice();
  applyMask(frame, 6, frame.length, frame, 2);
  assertEquals(Array.from(frame.subarray(6)), [0x49, 0x67, 0x6f, 0x68, 0x6e]);
  applyMask(frame, 6, frame.length, frame, 2);
  assertEquals(frame, original);
});
