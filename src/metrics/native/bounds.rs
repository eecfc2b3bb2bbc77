//! The native histogram's buckets: which bucket an observation falls in.
//!
//! With schema `s`, the bucket of index `k` holds the values `v` with
//! `2^((k-1)/2^s) < v <= 2^(k/2^s)`: each power of two is cut into `2^s`
//! buckets (for `s <= 0`, each bucket spans `2^-s` powers of two). Bucket 0 ends
//! at 1, bucket `2^s` at 2. Placing is exact, by that definition: the
//! boundaries inside an octave, `2^(j/2^s)`, are computed once in double-double
//! precision and kept as the largest `f64` at or below each (the last value of
//! its bucket; the tests check every one against an exact integer computation),
//! and an observation is placed by its exponent and a comparison of its
//! mantissa with them, never by a floating-point logarithm. (A library that
//! compares with boundaries rounded to nearest puts the one `f64` that rounds
//! up onto a boundary in the bucket below; that is the only difference.)
//!
//! Finding the mantissa's bucket among up to 256 boundaries takes one table
//! look-up and one comparison: the top `s + 1` bits of the mantissa pick one of
//! `2^(s+1)` equal slices of `[1, 2)`, each narrower than the gap between two
//! boundaries (`2^(1/2^s) - 1 > ln 2 / 2^s > 1 / 2^(s+1)`), so a slice holds at
//! most one boundary; the table gives the first boundary at or above the slice's
//! start (with its bits, in the same entry), and the mantissa is either at or
//! below it, or in the next bucket. Positive floats compare as their bits do,
//! so the comparison is of integers.

use std::sync::LazyLock;

/// The coarsest schema: a bucket spans 2^16 (16 powers of two).
pub(crate) const MIN_SCHEMA: i32 = -4;
/// The finest schema: 256 buckets per power of two.
pub(crate) const MAX_SCHEMA: i32 = 8;

/// The boundaries of one schema `s >= 1` within `[1, 2]`, and the slices' table.
#[derive(Debug)]
pub(crate) struct Octave {
    /// `bounds[j]` is the largest `f64` at or below `2^(j/2^s)`, `j` in `0..=2^s`
    /// (of a fixed size, so that a masked index needs no bounds check).
    pub(crate) bounds: [f64; TABLE],
    /// For each of the `2^(s+1)` slices of `[1, 2)`, the least `j` with
    /// `bounds[j]` at or above the slice's start, and that bound's bits.
    slices: [Slice; TABLE],
}

/// A slice's first boundary: its index in the octave, and its bits.
#[derive(Debug, Clone, Copy, Default)]
struct Slice {
    bound: u64,
    j: u32,
}

/// Room for the 2^9 slices of schema 8 (and its 257 boundaries).
const TABLE: usize = 512;

/// The octaves of the schemas 1 to 8 (index `s - 1`).
pub(crate) static OCTAVES: LazyLock<[Octave; 8]> =
    LazyLock::new(|| std::array::from_fn(|i| Octave::new(i as u32 + 1)));

const MANTISSA_BITS: u32 = 52;
const MANTISSA: u64 = (1 << MANTISSA_BITS) - 1;

impl Octave {
    fn new(schema: u32) -> Octave {
        let roots = roots();
        let n = 1usize << schema;
        let mut bounds = [f64::INFINITY; TABLE];
        for (j, bound) in bounds.iter_mut().enumerate().take(n + 1) {
            *bound = {
                // 2^(j/2^s) = the product of 2^(2^i/2^s) = roots[s - i] over the bits i of j.
                let mut product = Dd(1.0, 0.0);
                for i in 0..=schema {
                    if j >> i & 1 == 1 {
                        product = product.mul(roots[(schema - i) as usize]);
                    }
                }
                product.below()
            };
        }
        let slices = 1usize << (schema + 1);
        let mut table = [Slice::default(); TABLE];
        for (t, slice) in table.iter_mut().enumerate().take(slices) {
            let start = 1.0 + t as f64 / slices as f64;
            let j = (0..=n).find(|&j| bounds[j] >= start).unwrap_or(n);
            *slice = Slice {
                bound: bounds[j].to_bits(),
                j: j as u32,
            };
        }
        Octave {
            bounds,
            slices: table,
        }
    }
}

/// `roots[k] = 2^(2^-k)` in double-double, `k` in `0..=8`, by square roots of 2.
fn roots() -> [Dd; 9] {
    let mut roots = [Dd(2.0, 0.0); 9];
    for k in 1..roots.len() {
        roots[k] = roots[k - 1].sqrt();
    }
    roots
}

/// A double-double number `hi + lo`, `|lo| <= ulp(hi) / 2`: about 106 bits.
#[derive(Clone, Copy, Debug)]
struct Dd(f64, f64);

/// `a + b` as a double-double, for `|a| >= |b|`.
fn quick_two_sum(a: f64, b: f64) -> Dd {
    let s = a + b;
    Dd(s, b - (s - a))
}

/// `a * b` exactly, as a double-double (the fused multiply-add gives the error).
fn two_prod(a: f64, b: f64) -> Dd {
    let p = a * b;
    Dd(p, a.mul_add(b, -p))
}

impl Dd {
    /// The largest `f64` at or below the value (`hi` is its nearest).
    fn below(self) -> f64 {
        if self.1 < 0.0 {
            f64::from_bits(self.0.to_bits() - 1)
        } else {
            self.0
        }
    }

    fn mul(self, other: Dd) -> Dd {
        let p = two_prod(self.0, other.0);
        quick_two_sum(p.0, p.1 + (self.0 * other.1 + self.1 * other.0))
    }

    /// One Newton step from the correctly rounded square root of `hi`.
    fn sqrt(self) -> Dd {
        let x = self.0.sqrt();
        let square = two_prod(x, x);
        // `self.0 - square.0` is exact: the two are within a factor of 2.
        let correction = ((self.0 - square.0) - square.1 + self.1) / (2.0 * x);
        quick_two_sum(x, correction)
    }
}

/// The bucket index of `v`, finite and greater than 0 (a subnormal too), at
/// `schema` (`MIN_SCHEMA..=MAX_SCHEMA`); `octaves` is [`OCTAVES`].
#[inline]
pub(crate) fn index(v: f64, schema: i32, octaves: &[Octave; 8]) -> i32 {
    let bits = v.to_bits();
    let biased = (bits >> MANTISSA_BITS) as i32 & 0x7ff;
    let (exponent, mantissa) = if biased != 0 {
        (biased - 1023, bits & MANTISSA)
    } else {
        // A subnormal, 0.m x 2^-1022: normalize it to 1.m' x 2^e.
        let m = bits & MANTISSA;
        let top = 63 - m.leading_zeros() as i32; // the leading bit's position, 0..=51
        (top - 1074, (m << (MANTISSA_BITS as i32 - top)) & MANTISSA)
    };
    if schema > 0 {
        // (The masks change nothing but spare the bounds checks.) A power of
        // two, mantissa 0, is in slice 0, whose first bound is 1 itself: j = 0,
        // the upper bound of its bucket.
        let octave = &octaves[(schema as usize - 1) & 7];
        let slice = (mantissa >> (MANTISSA_BITS - schema as u32 - 1)) as usize;
        let first = octave.slices[slice & (TABLE - 1)];
        let m = (1023 << MANTISSA_BITS) | mantissa; // the bits of 1.m
        let j = first.j + u32::from(m > first.bound);
        (exponent << schema) + j as i32
    } else {
        // At schema 0, (2^(e-1), 2^e] is bucket e; coarser ones merge 2^-s of them.
        let index = exponent + i32::from(mantissa != 0);
        reduce(index, (-schema) as u32)
    }
}

/// The index of the bucket that holds bucket `index` once the schema is lower
/// by `by`: each step merges buckets `2k - 1` and `2k` into `k`, so the result
/// is `ceil(index / 2^by)`.
#[inline]
pub(crate) fn reduce(index: i32, by: u32) -> i32 {
    if by == 0 {
        return index;
    }
    ((i64::from(index) + (1i64 << by) - 1) >> by) as i32
}

/// The bucket of `+Inf` (and, negated, of `-Inf`) observations: the one after
/// the bucket of the largest finite value.
pub(crate) fn infinite_index(schema: i32, octaves: &[Octave; 8]) -> i32 {
    index(f64::MAX, schema, octaves) + 1
}

/// The factor between two bucket boundaries at `schema`, `2^(2^-schema)`
/// (for schemas above 0 the largest `f64` at or below it).
pub(crate) fn growth(schema: i32, octaves: &[Octave; 8]) -> f64 {
    if schema > 0 {
        octaves[schema as usize - 1].bounds[1]
    } else {
        2f64.powi(1 << -schema)
    }
}

/// The coarsest schema whose boundaries are at most `factor` apart (which
/// must be above 1), as the other clients pick it: 8 for factors below
/// `2^(1/256)`, -4 for factors of `2^16` or more.
pub(crate) fn schema_for_growth(factor: f64, octaves: &[Octave; 8]) -> i32 {
    (MIN_SCHEMA..=MAX_SCHEMA)
        .find(|&s| growth(s, octaves) <= factor)
        .unwrap_or(MAX_SCHEMA)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The oracle's file: `bound <schema> <j> <bits>` and `index <schema> <value
    /// bits> <index>` lines, computed exactly (integer arithmetic) by
    /// `scripts/native_oracle.py`.
    const ORACLE: &str = include_str!("../../../testdata/native_oracle.txt");

    fn hex(s: &str) -> u64 {
        u64::from_str_radix(s, 16).unwrap()
    }

    #[test]
    fn every_boundary_is_the_largest_value_at_or_below_the_exact_power_of_two() {
        let octaves = &*OCTAVES;
        let mut checked = 0;
        for line in ORACLE.lines().filter(|l| l.starts_with("bound ")) {
            let f: Vec<&str> = line.split(' ').collect();
            let (s, j): (usize, usize) = (f[1].parse().unwrap(), f[2].parse().unwrap());
            let got = octaves[s - 1].bounds[j];
            assert_eq!(got.to_bits(), hex(f[3]), "schema {s}, j {j}: {got:e}");
            checked += 1;
        }
        assert_eq!(checked, (1..=8).map(|s| (1 << s) + 1).sum::<usize>());
    }

    #[test]
    fn indices_match_the_exact_computation() {
        let octaves = &*OCTAVES;
        let mut checked = 0;
        for line in ORACLE.lines().filter(|l| l.starts_with("index ")) {
            let f: Vec<&str> = line.split(' ').collect();
            let schema: i32 = f[1].parse().unwrap();
            let v = f64::from_bits(hex(f[2]));
            let want: i32 = f[3].parse().unwrap();
            assert_eq!(index(v, schema, octaves), want, "{v:e} at schema {schema}");
            checked += 1;
        }
        assert!(checked > 4000, "only {checked} cases");
    }

    #[test]
    fn powers_of_the_growth_factor_end_their_bucket() {
        let octaves = &*OCTAVES;
        // Powers of two are boundaries at every schema, and the upper one.
        for schema in MIN_SCHEMA..=MAX_SCHEMA {
            // (Not the smallest subnormals: the value just above them is far
            // above, 2^-1073 right after 2^-1074; the oracle covers them.)
            for e in [-1060, -1022, -20, -1, 0, 1, 7, 1023] {
                let v = pow2(e);
                let at_zero = e; // (2^(e-1), 2^e] is bucket e at schema 0
                assert_eq!(
                    index(v, schema, octaves),
                    at(at_zero, schema),
                    "2^{e} @ {schema}"
                );
                let above = f64::from_bits(v.to_bits() + 1);
                assert_eq!(
                    index(above, schema, octaves),
                    at(at_zero, schema) + i32::from(schema > 0 || (e % (1 << -schema)) == 0),
                    "just above 2^{e} @ {schema}"
                );
            }
        }
        // 1 is the upper bound of bucket 0, 2 of bucket 2^s.
        for schema in 1..=MAX_SCHEMA {
            assert_eq!(index(1.0, schema, octaves), 0);
            assert_eq!(index(2.0, schema, octaves), 1 << schema);
            assert_eq!(index(1.0 + f64::EPSILON, schema, octaves), 1);
        }
    }

    /// 2^e exactly, subnormals included (`powi` underflows on the way).
    fn pow2(e: i32) -> f64 {
        if e >= -1022 {
            f64::from_bits(((e + 1023) as u64) << 52)
        } else {
            f64::from_bits(1 << (e + 1074))
        }
    }

    /// Bucket `k` of schema 0 at another schema (for k a power-of-two boundary).
    fn at(k: i32, schema: i32) -> i32 {
        if schema >= 0 {
            k << schema
        } else {
            reduce(k, (-schema) as u32)
        }
    }

    #[test]
    fn reducing_merges_pairs() {
        assert_eq!(reduce(0, 1), 0);
        assert_eq!(reduce(-1, 1), 0);
        assert_eq!(reduce(1, 1), 1);
        assert_eq!(reduce(2, 1), 1);
        assert_eq!(reduce(3, 1), 2);
        assert_eq!(reduce(-2, 1), -1);
        assert_eq!(reduce(-3, 1), -1);
        assert_eq!(reduce(17, 3), 3);
        // Reducing an index agrees with the index at the lower schema.
        let octaves = &*OCTAVES;
        for schema in (MIN_SCHEMA + 1)..=MAX_SCHEMA {
            for v in [1e-9, 0.003, 0.7, 1.0, 1.5, 3.0, 1234.5, 6.02e23] {
                let fine = index(v, schema, octaves);
                for by in 1..=(schema - MIN_SCHEMA) as u32 {
                    let coarse = index(v, schema - by as i32, octaves);
                    assert_eq!(reduce(fine, by), coarse, "{v} {schema} -{by}");
                }
            }
        }
    }

    #[test]
    fn growth_factors_pick_the_finest_schema_within_them() {
        let octaves = &*OCTAVES;
        assert_eq!(schema_for_growth(1.1, octaves), 3); // 2^(1/8) = 1.0905
        assert_eq!(schema_for_growth(2.0, octaves), 0);
        assert_eq!(schema_for_growth(1.999, octaves), 1);
        assert_eq!(schema_for_growth(4.0, octaves), -1);
        assert_eq!(schema_for_growth(1.0001, octaves), 8);
        assert_eq!(schema_for_growth(1e10, octaves), -4);
        assert_eq!(schema_for_growth(growth(5, octaves), octaves), 5);
        assert_eq!(schema_for_growth(2f64.powf(1.0 / 32.0), octaves), 5);
        let below = f64::from_bits(growth(5, octaves).to_bits() - 1);
        assert_eq!(schema_for_growth(below, octaves), 6);
    }

    #[test]
    fn infinity_has_the_bucket_after_the_largest_value() {
        let octaves = &*OCTAVES;
        assert_eq!(infinite_index(0, octaves), 1025);
        assert_eq!(infinite_index(3, octaves), 1024 * 8 + 1);
        assert_eq!(infinite_index(-4, octaves), 65);
    }
}
