import { assertEquals, assertThrows } from "@std/assert";
import { cidrContains, clientAddress, ipLimitKey, parseCidr } from "../server/trusted_proxy.ts";

Deno.test("parseCidr: IPv4, IPv6, bare hosts; bad text is a RangeError naming it", () => {
  assertEquals(parseCidr("10.0.0.0/8").bits, 8);
  assertEquals(parseCidr("10.0.0.0/8").prefix, 104);
  assertEquals(parseCidr("127.0.0.1").bits, 32);
  assertEquals(parseCidr("::1").bits, 128);
  assertEquals(parseCidr("2001:db8::/32").bits, 32);
  for (const bad of ["", "10.0.0/8", "10.0.0.256", "10.0.0.0/33", "::1/129", "1::2::3", "x/8"]) {
    assertThrows(() => parseCidr(bad), RangeError, bad === "" ? undefined : bad.split("/")[0]);
  }
  assertThrows(() => parseCidr("10.0.0.0/8/1"), RangeError);
  assertThrows(() => parseCidr("10.0.0.0/-1"), RangeError);
});

Deno.test("cidrContains: prefix boundaries, IPv4-mapped IPv6, zones, junk", () => {
  const net = parseCidr("192.168.4.0/22");
  assertEquals(cidrContains(net, "192.168.4.0"), true);
  assertEquals(cidrContains(net, "192.168.7.255"), true);
  assertEquals(cidrContains(net, "192.168.8.0"), false);
  assertEquals(cidrContains(net, "192.168.3.255"), false);
  assertEquals(cidrContains(net, "::ffff:192.168.5.1"), true);
  assertEquals(cidrContains(parseCidr("0.0.0.0/0"), "8.8.8.8"), true);
  assertEquals(cidrContains(parseCidr("0.0.0.0/0"), "::1"), false); // v4 ranges hold only v4
  const v6 = parseCidr("fe80::/10");
  assertEquals(cidrContains(v6, "fe80::1%eth0"), true);
  assertEquals(cidrContains(v6, "febf:ffff::1"), true);
  assertEquals(cidrContains(v6, "fec0::1"), false);
  assertEquals(cidrContains(parseCidr("::/0"), "2001:db8:0:0:0:0:0:1"), true);
  assertEquals(cidrContains(v6, "not an ip"), false);
  assertEquals(cidrContains(v6, "1:2:3:4:5:6:7"), false); // seven groups
});

const trusted = [parseCidr("127.0.0.1"), parseCidr("10.0.0.0/8")];

Deno.test("clientAddress: headers from an untrusted peer are ignored", () => {
  const headers = new Headers({ "x-forwarded-for": "1.2.3.4", forwarded: "for=5.6.7.8" });
  assertEquals(clientAddress("203.0.113.5", headers, { trusted }), "203.0.113.5");
  assertEquals(clientAddress("127.0.0.1", headers, { trusted: [] }), "127.0.0.1");
});

Deno.test("clientAddress: read from the right, skipping trusted proxies", () => {
  // client, then an address the client forged, then our two proxies.
  const xff = new Headers({ "x-forwarded-for": "6.6.6.6, 198.51.100.7, 10.0.0.9" });
  assertEquals(clientAddress("127.0.0.1", xff, { trusted }), "198.51.100.7");
  // With ports (IIS and others append them).
  const ported = new Headers({ "x-forwarded-for": "198.51.100.7:5123, [2001:db8::9]:80" });
  assertEquals(clientAddress("10.1.1.1", ported, { trusted }), "2001:db8::9");
  // All hops trusted: the left-most is the best guess.
  const inner = new Headers({ "x-forwarded-for": "10.0.0.3, 10.0.0.4" });
  assertEquals(clientAddress("127.0.0.1", inner, { trusted }), "10.0.0.3");
  // No header at all: the peer.
  assertEquals(clientAddress("127.0.0.1", new Headers(), { trusted }), "127.0.0.1");
});

Deno.test("clientAddress: RFC 7239 Forwarded wins, with quotes, ports, case and other pairs", () => {
  const headers = new Headers({
    forwarded: 'For="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.2;by=10.0.0.1',
    "x-forwarded-for": "9.9.9.9",
  });
  assertEquals(clientAddress("10.0.0.1", headers, { trusted }), "2001:db8:cafe::17");
  const hidden = new Headers({ forwarded: "for=_hidden, for=10.0.0.2" });
  assertEquals(clientAddress("10.0.0.1", hidden, { trusted }), "_hidden");
  const unknown = new Headers({ forwarded: "for=unknown" });
  assertEquals(clientAddress("10.0.0.1", unknown, { trusted }), "unknown");
});

Deno.test("ipLimitKey: IPv4 as itself, IPv6 by its /64", () => {
  assertEquals(ipLimitKey("203.0.113.5"), "203.0.113.5");
  assertEquals(ipLimitKey("::ffff:203.0.113.5"), "203.0.113.5");
  assertEquals(ipLimitKey("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
  assertEquals(ipLimitKey("2001:0db8:0001:0002:bbbb:0:0:7"), "2001:db8:1:2::/64");
  assertEquals(ipLimitKey("2001:db8:1:3::1"), "2001:db8:1:3::/64");
  assertEquals(ipLimitKey("::1"), "0:0:0:0::/64");
  assertEquals(ipLimitKey("fe80::1%eth0"), "fe80:0:0:0::/64");
  assertEquals(ipLimitKey("not an address"), "not an address");
});
