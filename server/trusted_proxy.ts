/**
 * The client's address behind a reverse proxy.
 *
 * A proxy (nginx, a load balancer) connects to the server itself, so the TCP
 * peer is the proxy, and per-IP limits would lump every client together. The
 * proxy says who the client was in `Forwarded` (RFC 7239) or the older
 * `X-Forwarded-For`; but anyone can send those headers, so they are believed
 * only when the TCP peer is a proxy the operator listed (`--trusted-proxy`).
 *
 * Each proxy appends the address it received the request from, so the list
 * reads client, proxy 1, proxy 2, … and the TCP peer is the last proxy. It is
 * read from the right: the first address that is not itself a trusted proxy
 * is the client. Entries further left were written by the client or an
 * untrusted hop and could be anything.
 *
 * @module
 */

/**
 * An address range in CIDR notation, parsed by {@linkcode parseCidr}.
 *
 * @example
 * ```ts
 * import { cidrContains, parseCidr } from "@heartwire/heartwire/server";
 * const range = parseCidr("10.0.0.0/8");
 * console.log(range.bits, cidrContains(range, "10.1.2.3")); // 8 true
 * ```
 */
export interface Cidr {
  /** The network address as 16 bytes (IPv4 as an IPv4-mapped IPv6 address). */
  readonly address: Uint8Array;
  /** Prefix length in bits, counted on the 128-bit form. */
  readonly prefix: number;
  /** Prefix length as written (0–32 for IPv4, 0–128 for IPv6). */
  readonly bits: number;
}

/**
 * Parses `"192.168.0.0/16"`, `"::1/128"` or a bare address (a single host).
 *
 * @throws {RangeError} naming the text when it is not an address or range.
 *
 * @example
 * ```ts
 * import { parseCidr } from "@heartwire/heartwire/server";
 * const loopback = parseCidr("127.0.0.0/8");
 * console.log(loopback.bits); // 8
 * ```
 */
export function parseCidr(text: string): Cidr {
  const [host, bitsText, extra] = text.trim().split("/");
  const address = parseIp(host);
  if (address === undefined || extra !== undefined) {
    throw new RangeError(`not an IP address or CIDR range: "${text}"`);
  }
  const v4 = isMappedV4(address);
  const max = v4 ? 32 : 128;
  const bits = bitsText === undefined ? max : Number(bitsText);
  if (!/^\d{1,3}$/.test(bitsText ?? String(max)) || bits > max) {
    throw new RangeError(`bad prefix length in "${text}": 0–${max} expected`);
  }
  return { address, prefix: v4 ? bits + 96 : bits, bits };
}

/**
 * True when `ip` (IPv4 or IPv6 text, as in `Deno.NetAddr.hostname`) is in `range`.
 * An address that does not parse is in no range.
 *
 * @example
 * ```ts
 * import { cidrContains, parseCidr } from "@heartwire/heartwire/server";
 * console.log(cidrContains(parseCidr("::1"), "::1")); // true
 * ```
 */
export function cidrContains(range: Cidr, ip: string): boolean {
  const address = parseIp(ip);
  return address !== undefined && inRange(range, address);
}

/**
 * Options for {@linkcode clientAddress}.
 *
 * @example
 * ```ts
 * import { clientAddress, parseCidr } from "@heartwire/heartwire/server";
 * const options = { trusted: [parseCidr("127.0.0.1")] };
 * const headers = new Headers({ "x-forwarded-for": "203.0.113.9" });
 * console.log(clientAddress("127.0.0.1", headers, options)); // "203.0.113.9"
 * ```
 */
export interface ClientAddressOptions {
  /** The proxies whose forwarding headers are believed. */
  trusted: readonly Cidr[];
}

/**
 * The client's address: the TCP peer's, unless the peer is a trusted proxy,
 * then the right-most forwarded address that is not a trusted proxy (see the
 * module notes). `Forwarded` wins over `X-Forwarded-For` when both are sent.
 * An entry that is not an address (RFC 7239 allows `unknown` and obfuscated
 * `_names`) is returned as written: the trusted proxy vouched for it, and it
 * still tells one client from another.
 *
 * @example
 * ```ts
 * import { clientAddress, parseCidr } from "@heartwire/heartwire/server";
 * const trusted = [parseCidr("10.0.0.0/8")];
 * const headers = new Headers({ forwarded: 'for=198.51.100.7, for="[2001:db8::1]:4711"' });
 * console.log(clientAddress("10.0.0.2", headers, { trusted })); // "2001:db8::1"
 * console.log(clientAddress("198.51.100.1", headers, { trusted })); // "198.51.100.1"
 * ```
 */
export function clientAddress(
  peer: string,
  headers: Headers,
  options: ClientAddressOptions,
): string {
  const trusted = (ip: string) => {
    const address = parseIp(ip);
    return address !== undefined && options.trusted.some((range) => inRange(range, address));
  };
  if (!trusted(peer)) return peer;
  const hops = forwardedFor(headers);
  for (let i = hops.length - 1; i >= 0; i--) {
    if (!trusted(hops[i])) return hops[i];
  }
  // Every hop is a proxy of ours (or there were none): the left-most one is
  // as close to the client as anyone can tell.
  return hops[0] ?? peer;
}

/** The `for=` addresses of `Forwarded`, else those of `X-Forwarded-For`, left to right. */
/**
 * The key per-address limits (`maxConnectionsPerIp`, `maxConnectionRatePerIp`)
 * count `ip` under: an IPv4 address as itself (also written IPv4-mapped), an
 * IPv6 address by its /64 — the network one subscriber is given, whose hosts
 * may take any number of its addresses, so a per-address limit on full IPv6
 * addresses would limit nothing. Text that is not an address is its own key.
 *
 * @example
 * ```ts
 * import { ipLimitKey } from "@heartwire/heartwire/server";
 * ipLimitKey("2001:db8:1:2:aaaa::1"); // "2001:db8:1:2::/64"
 * ipLimitKey("2001:db8:1:2:bbbb::7"); // "2001:db8:1:2::/64": the same network
 * ipLimitKey("::ffff:192.0.2.1"); // "192.0.2.1"
 * ```
 */
export function ipLimitKey(ip: string): string {
  if (!ip.includes(":")) return ip; // IPv4 (or not an address): itself, without a parse per accept
  const address = parseIp(ip);
  if (address === undefined) return ip;
  if (isMappedV4(address)) return address.subarray(12).join(".");
  const words: string[] = [];
  for (let i = 0; i < 8; i += 2) words.push(((address[i] << 8) | address[i + 1]).toString(16));
  return `${words.join(":")}::/64`;
}

function forwardedFor(headers: Headers): string[] {
  const forwarded = headers.get("forwarded");
  if (forwarded !== null) {
    const hops: string[] = [];
    // RFC 7239 §4: elements separated by ",", pairs by ";", a value may be quoted.
    for (const element of forwarded.split(",")) {
      for (const pair of element.split(";")) {
        const eq = pair.indexOf("=");
        if (eq < 0 || pair.slice(0, eq).trim().toLowerCase() !== "for") continue;
        hops.push(stripPort(pair.slice(eq + 1).trim().replace(/^"(.*)"$/, "$1")));
      }
    }
    return hops;
  }
  const xff = headers.get("x-forwarded-for");
  if (xff === null) return [];
  return xff.split(",").map((hop) => stripPort(hop.trim())).filter((hop) => hop !== "");
}

/** `[2001:db8::1]:4711` → `2001:db8::1`; `192.0.2.4:80` → `192.0.2.4`; bare IPv6 stays. */
function stripPort(hop: string): string {
  if (hop.startsWith("[")) {
    const end = hop.indexOf("]");
    return end > 0 ? hop.slice(1, end) : hop;
  }
  const colon = hop.indexOf(":");
  // One colon: IPv4 with a port. More than one: a bare IPv6 address.
  return colon > 0 && hop.indexOf(":", colon + 1) < 0 ? hop.slice(0, colon) : hop;
}

function inRange(range: Cidr, address: Uint8Array): boolean {
  const whole = range.prefix >> 3;
  for (let i = 0; i < whole; i++) {
    if (address[i] !== range.address[i]) return false;
  }
  const rest = range.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (address[whole] & mask) === (range.address[whole] & mask);
}

function isMappedV4(address: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (address[i] !== 0) return false;
  return address[10] === 0xff && address[11] === 0xff;
}

/** IPv4 or IPv6 text to 16 bytes (IPv4 mapped into IPv6, RFC 4291 §2.5.5.2), or undefined. */
function parseIp(text: string): Uint8Array | undefined {
  const zone = text.indexOf("%"); // fe80::1%eth0: the zone is not part of the address
  if (zone >= 0) text = text.slice(0, zone);
  const out = new Uint8Array(16);
  if (!text.includes(":")) {
    const v4 = parseV4(text);
    if (v4 === undefined) return undefined;
    out[10] = out[11] = 0xff;
    out.set(v4, 12);
    return out;
  }
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (part: string): number[] | undefined => {
    if (part === "") return [];
    const words: number[] = [];
    const pieces = part.split(":");
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i];
      if (i === pieces.length - 1 && piece.includes(".")) {
        const v4 = parseV4(piece); // ::ffff:192.0.2.1
        if (v4 === undefined) return undefined;
        words.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else if (/^[0-9a-f]{1,4}$/i.test(piece)) {
        words.push(parseInt(piece, 16));
      } else {
        return undefined;
      }
    }
    return words;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (head === undefined || tail === undefined) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const words = [...head, ...new Array(halves.length === 2 ? missing : 0).fill(0), ...tail];
  for (let i = 0; i < 8; i++) {
    out[2 * i] = words[i] >> 8;
    out[2 * i + 1] = words[i] & 0xff;
  }
  return out;
}

function parseV4(text: string): number[] | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const bytes: number[] = [];
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) return undefined;
    bytes.push(Number(part));
  }
  return bytes;
}
