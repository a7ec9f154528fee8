/**
 * UTF-8 samples shared by the codec tests.
 *
 * @module
 */

/**
 * Valid scalar values where UTF-8 codecs tend to break: the first and last of
 * each encoding length (1 to 4 bytes), both sides of the surrogate gap, the
 * byte-order mark (content in WebSocket text, RFC 6455 §5.6), U+FFFD (what a
 * lenient decoder substitutes) and the noncharacters U+FFFE and U+FFFF (valid
 * UTF-8 all the same).
 */
export const UTF8_EDGE_CODE_POINTS: readonly number[] = [
  0x0000,
  0x007f,
  0x0080,
  0x07ff,
  0x0800,
  0xd7ff,
  0xe000,
  0xfeff,
  0xfffd,
  0xfffe,
  0xffff,
  0x10000,
  0x10ffff,
];
