/**
 * Reading Prometheus exposition text (0.0.4) in tests, through npm
 * parse-prometheus-text-format, an independent parser.
 *
 * @module
 */
import parsePrometheus from "npm:parse-prometheus-text-format@1.1.1";
import { assert } from "@std/assert";

/** One sample as the parser gives it (histograms: buckets, count, sum). */
export interface PrometheusSample {
  value?: string;
  labels?: Record<string, string>;
  buckets?: Record<string, string>;
  count?: string;
  sum?: string;
}

/** One metric family as the parser gives it. */
export interface PrometheusFamily {
  name: string;
  help: string;
  type: string;
  metrics: PrometheusSample[];
}

/** The families in `text`, by name. */
export function parseFamilies(text: string): Map<string, PrometheusFamily> {
  const families = parsePrometheus(text) as PrometheusFamily[];
  return new Map(families.map((family) => [family.name, family]));
}

/**
 * The value of the sample of `name` whose labels include `labels` (without
 * them, its first sample); fails if there is none.
 */
export function sampleValue(
  families: Map<string, PrometheusFamily>,
  name: string,
  labels?: Record<string, string>,
): number {
  const family = families.get(name);
  assert(family, `${name} is exposed`);
  const sample = family.metrics.find((m) =>
    !labels || Object.entries(labels).every(([k, v]) => m.labels?.[k] === v)
  );
  assert(sample, `${name} ${JSON.stringify(labels)} is exposed`);
  return Number(sample.value);
}

/** `text` parsed once, read as `(name, labels?) => value` (see {@linkcode sampleValue}). */
export function sampleReader(
  text: string,
): (name: string, labels?: Record<string, string>) => number {
  const families = parseFamilies(text);
  return (name, labels) => sampleValue(families, name, labels);
}
