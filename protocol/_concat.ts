/**
 * One byte array from several, for the few places that need the pieces in
 * one buffer (a test's `take()`, a zlib stream's output, a small HTTP
 * response written in one go).
 *
 * @module
 */

/** `chunks` joined into a new array; a single chunk is returned as it is, not copied. */
export function concat(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  let length = 0;
  for (const chunk of chunks) length += chunk.length;
  const joined = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    joined.set(chunk, offset);
    offset += chunk.length;
  }
  return joined;
}
