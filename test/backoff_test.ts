import { assert, assertEquals, assertStringIncludes } from "@std/assert";
import { Backoff, backoffDelay, type BackoffOptions } from "../client/backoff.ts";

Deno.test("backoffDelay: random 0 gives the floor, random 1 the ceiling, ceiling doubles to 30 s", () => {
  const ceilings = [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000];
  ceilings.forEach((ceiling, attempt) => {
    assertEquals(backoffDelay(attempt, { random: () => 0 }), 500);
    assertEquals(backoffDelay(attempt, { random: () => 1 }), ceiling);
  });
  // A huge attempt count overflows the power to Infinity; still capped.
  assertEquals(backoffDelay(5_000, { random: () => 1 }), 30_000);
});

Deno.test("backoffDelay: full jitter spreads uniformly over [min, ceiling]", () => {
  for (const attempt of [0, 3, 8]) {
    const ceiling = Math.min(30_000, 1_000 * 2 ** attempt);
    const samples = Array.from({ length: 2_000 }, () => backoffDelay(attempt));
    for (const delay of samples) assert(delay >= 500 && delay <= ceiling, `${delay}`);
    const span = ceiling - 500;
    // Full jitter, not "ceiling ± a little": both ends of the window get used.
    assert(Math.min(...samples) < 500 + span * 0.05);
    assert(Math.max(...samples) > ceiling - span * 0.05);
    const mean = samples.reduce((sum, delay) => sum + delay, 0) / samples.length;
    assert(Math.abs(mean - (500 + span / 2)) < span * 0.05, `mean ${mean}`);
  }
});

Deno.test("backoffDelay: options change floor, first ceiling, factor and cap", () => {
  const options = { minDelay: 100, initialDelay: 200, factor: 3, maxDelay: 5_000 };
  assertEquals(backoffDelay(0, { ...options, random: () => 1 }), 200);
  assertEquals(backoffDelay(2, { ...options, random: () => 1 }), 1_800);
  assertEquals(backoffDelay(4, { ...options, random: () => 1 }), 5_000);
  assertEquals(backoffDelay(4, { ...options, random: () => 0.5 }), 2_550);
  // A floor above the ceiling wins: never below minDelay.
  assertEquals(backoffDelay(0, { minDelay: 3_000, initialDelay: 1_000, random: () => 0.7 }), 3_000);
});

Deno.test("Backoff: next() climbs, reset() starts over", () => {
  const backoff = new Backoff({ random: () => 1 });
  assertEquals([backoff.next(), backoff.next(), backoff.next()], [1_000, 2_000, 4_000]);
  assertEquals(backoff.attempt, 3);
  backoff.reset();
  assertEquals(backoff.attempt, 0);
  assertEquals(backoff.next(), 1_000);
});

Deno.test("Backoff: options that are not usable numbers are a RangeError naming them", () => {
  const bad: [BackoffOptions, string][] = [
    [{ minDelay: -1 }, "backoff.minDelay"],
    [{ minDelay: NaN }, "backoff.minDelay"],
    [{ initialDelay: 0 }, "backoff.initialDelay"],
    [{ initialDelay: Infinity }, "backoff.initialDelay"],
    [{ maxDelay: 0 }, "backoff.maxDelay"],
    [{ maxDelay: -5 }, "backoff.maxDelay"],
    [{ factor: 0 }, "backoff.factor"],
    [{ factor: Infinity }, "backoff.factor"],
  ];
  for (const [options, name] of bad) {
    const error = thrown(() => new Backoff(options));
    assert(error instanceof RangeError, `${JSON.stringify(options)}: ${error}`);
    assertStringIncludes(error.message, name);
  }
  // 0 is a floor that makes sense; factors below 1 shrink the ceiling, as documented.
  const backoff = new Backoff({ minDelay: 0, factor: 0.5, random: () => 1 });
  assertEquals([backoff.next(), backoff.next()], [1_000, 500]);
});

/** What `fn` throws, or undefined. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
}
