#!/usr/bin/env python3
"""Writes testdata/native_oracle.txt: the native histogram's bucket boundaries and
bucket indices, computed exactly with Python's integers (no floating-point
logarithm), for the unit tests of src/metrics/native/bounds.rs.

With schema s, bucket k holds the v with 2^((k-1)/2^s) < v <= 2^(k/2^s).

  bound <schema> <j> <bits>     the largest f64 at or below 2^(j/2^s) (bits in hex)
  index <schema> <bits> <k>     the bucket index of the f64 with these bits

    python3 scripts/native_oracle.py > testdata/native_oracle.txt
"""
import math
import random
import struct


def bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def ratio(x):
    """x = n / 2^t, exactly."""
    n, d = x.as_integer_ratio()
    return n, d.bit_length() - 1


def at_most(x, j, s):
    """Whether x <= 2^(j/2^s), i.e. x^(2^s) <= 2^j, for x > 0 (x a float or (n, t))."""
    n, t = ratio(x) if isinstance(x, float) else x
    # (n / 2^t)^(2^s) <= 2^j  <=>  n^(2^s) <= 2^(j + t*2^s)
    e = j + t * (1 << s)
    if e < 0:
        return False
    return n ** (1 << s) <= 1 << e


def bound_below(j, s):
    """The largest f64 at or below 2^(j/2^s): the last value of bucket j's octave slot."""
    x = 2.0 ** (j / (1 << s))
    while not at_most(x, j, s):
        x = math.nextafter(x, 0.0)
    while at_most(math.nextafter(x, math.inf), j, s):
        x = math.nextafter(x, math.inf)
    return x


def index(v, s):
    """The least k with v <= 2^(k/2^s)."""
    if s < 0:
        k0 = index(v, 0)
        return -((-k0) // (1 << -s))  # ceil(k0 / 2^-s)
    n, t = ratio(v)
    p = n ** (1 << s)
    b = p.bit_length()
    least = b - 1 if p & (p - 1) == 0 else b  # least e with p <= 2^e
    return least - t * (1 << s)


def main():
    out = []
    bounds = {}
    for s in range(1, 9):
        for j in range((1 << s) + 1):
            b = bound_below(j, s)
            bounds[(s, j)] = b
            out.append(f"bound {s} {j} {bits(b):016x}")
    rng = random.Random(20240601)
    randoms = []
    while len(randoms) < 150:
        v = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(63)))[0]
        if 0.0 < v < math.inf:
            randoms.append(v)
    extremes = [5e-324, 1e-310, 2.2250738585072014e-308, 1.7976931348623157e308]
    powers = [math.ldexp(1.0, e) for e in range(-1074, 1024, 53)]
    for s in range(-4, 9):
        # This schema's boundaries and their neighbours, in a few octaves (the
        # subnormal ones included); for s <= 0 the boundaries are powers of two.
        own = [b for (t, j), b in bounds.items() if t == s and (s < 6 or j % 8 == 0 or j in (1, 3))]
        if s <= 0:
            own = [math.ldexp(1.0, e) for e in range(0, 1 << -s)]
        values = set(extremes + powers + randoms)
        for b in own:
            for e in (-1060, -1022, -10, 0, 1023):
                try:
                    v = math.ldexp(b, e)
                except OverflowError:
                    continue
                for w in (v, math.nextafter(v, 0.0), math.nextafter(v, math.inf)):
                    if 0.0 < w < math.inf:
                        values.add(w)
        for v in sorted(values):
            out.append(f"index {s} {bits(v):016x} {index(v, s)}")
    print("\n".join(out))


main()
