//! Round trips through `flate2` (a dev-dependency, used as the oracle only).

use super::*;
use std::io::Read;

fn gunzip(zipped: &[u8]) -> Vec<u8> {
    let mut decoder = flate2::read::GzDecoder::new(zipped);
    let mut out = Vec::new();
    decoder
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("flate2 refuses the stream: {e}"));
    // One member, nothing after it.
    let mut rest = Vec::new();
    decoder.into_inner().read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{} bytes after the member", rest.len());
    out
}

/// Compresses with a fresh and with a reused compressor; both must round-trip
/// and agree. Returns the compressed size.
fn round_trip(gz: &mut Gzip, input: &[u8]) -> usize {
    let mut fresh = Vec::new();
    gzip(input, &mut fresh);
    let mut reused = b"prefix".to_vec();
    gz.compress(input, &mut reused);
    assert_eq!(&reused[..6], b"prefix", "appends");
    assert_eq!(
        &reused[6..],
        &fresh[..],
        "the output depends on the input only"
    );
    assert_eq!(&fresh[..4], &[0x1f, 0x8b, 8, 0]);
    let back = gunzip(&fresh);
    assert!(back == input, "round trip of {} bytes", input.len());
    let n = input.len();
    let worst = n + 5 * (n / STORED_MAX + 1) + 18 + 8;
    assert!(fresh.len() <= worst, "{} bytes from {n}", fresh.len());
    fresh.len()
}

/// A small, seeded generator (xorshift64*), so that failures repeat.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// The text of a registry like the benchmark's: counters and histograms with
/// a namespace and a pod label.
fn registry_text(counters: usize, histograms: usize, format: crate::Format) -> Vec<u8> {
    let registry = crate::Registry::new();
    let c = registry
        .counter_family("requests_total", "Requests.", &["namespace", "pod"])
        .unwrap();
    let h = registry
        .histogram_family(
            "duration_seconds",
            "Duration.",
            &["namespace", "pod"],
            &[1.0, 2.0, 5.0, 6.0, 10.0],
        )
        .unwrap();
    for i in 0..counters {
        let pod = format!("app-7d9f8c6b5-{i:05}");
        c.with_labels(&["default", &pod])
            .unwrap()
            .inc_by(i as f64)
            .unwrap();
        if i < histograms {
            h.with_labels(&["default", &pod])
                .unwrap()
                .observe((i as f64 * 0.19) % 12.0);
        }
    }
    let mut out = Vec::new();
    crate::encode(&registry, format, &mut out);
    out
}

#[test]
fn crc32_matches_the_check_value_and_flate2() {
    assert_eq!(crc32(b""), 0);
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    let mut rng = Rng(7);
    let data = rng.bytes(300_000);
    // Short inputs go byte by byte and 8 at a time; long ones in four stripes.
    let long = [
        16_383, 16_384, 16_385, 16_415, 16_416, 16_447, 100_003, 300_000,
    ];
    for len in (0..70).chain([255, 256, 1000, 4093, 5000]).chain(long) {
        let mut oracle = flate2::Crc::new();
        oracle.update(&data[..len]);
        assert_eq!(crc32(&data[..len]), oracle.sum(), "length {len}");
    }
}

#[test]
fn gzip_round_trips_edge_inputs() {
    let mut gz = Gzip::new();
    let all: Vec<u8> = (0..=255).collect();
    let mut rng = Rng(1);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("one byte", vec![b'x']),
        ("one zero", vec![0]),
        ("seven", b"abcdefg".to_vec()),
        ("eight", b"abcdefgh".to_vec()),
        ("nine equal", vec![b'a'; 9]),
        ("all bytes", all.clone()),
        ("all bytes, 300 times", all.repeat(300)),
        ("random 1 KiB", rng.bytes(1024)),
        ("random 300 KiB", rng.bytes(300 * 1024)),
        ("65535 random", rng.bytes(65_535)),
        ("65536 random", rng.bytes(65_536)),
        // Around the cut of a block that has no match.
        (
            "random, just short of a literal block",
            rng.bytes(LITERAL_BLOCK - 140),
        ),
        ("random, a literal block", rng.bytes(LITERAL_BLOCK)),
        (
            "random, a literal block and 9",
            rng.bytes(LITERAL_BLOCK + 9),
        ),
        ("a run of 1 MiB", vec![0; 1 << 20]),
        ("a run of 259", vec![7; 259]),
        ("abc repeated", b"abc".repeat(50_000)),
        ("two bytes alternating", b"ab".repeat(40_000)),
        (
            "text over 64 KiB",
            b"the quick brown fox jumps over the lazy dog\n".repeat(3000),
        ),
    ];
    for (name, input) in &cases {
        let size = round_trip(&mut gz, input);
        eprintln!("{name}: {} -> {size}", input.len());
    }
}

#[test]
fn repetitive_input_compresses_well_and_random_input_is_stored() {
    let mut gz = Gzip::new();
    assert!(round_trip(&mut gz, &vec![0; 1 << 20]) < 2500);
    assert!(round_trip(&mut gz, &b"abc".repeat(50_000)) < 1000);
    // Incompressible: stored blocks, 5 bytes each 64 KiB, and the frame.
    let random = Rng(3).bytes(1 << 20);
    assert!(round_trip(&mut gz, &random) <= (1 << 20) + 5 * 17 + 18);
}

#[test]
fn a_big_registry_round_trips_at_more_than_6x() {
    let mut gz = Gzip::new();
    for format in [crate::Format::Text, crate::Format::OpenMetrics] {
        let text = registry_text(10_000, 1_000, format);
        let size = round_trip(&mut gz, &text);
        let ratio = text.len() as f64 / size as f64;
        eprintln!("{format:?}: {} -> {size} bytes, {ratio:.2}x", text.len());
        assert!(ratio >= 6.0, "{format:?}: {ratio:.2}x");
    }
}

#[test]
fn generated_inputs_round_trip() {
    // Inputs made of pieces: random bytes, runs, copies of earlier stretches
    // (near and far), and text lines with counters. Bounded: 400 inputs of at
    // most about 600 KiB.
    let mut rng = Rng(0x5EED);
    let mut gz = Gzip::new();
    for case in 0..400 {
        let target = match case % 4 {
            0 => rng.below(64),
            1 => rng.below(4096),
            2 => rng.below(70_000),
            _ => rng.below(300_000),
        };
        let mut input = Vec::with_capacity(target + 300);
        while input.len() < target {
            match rng.below(5) {
                0 => {
                    // Mostly a few bytes; now and then a stretch with no match.
                    let n = 1 + match rng.below(16) {
                        0 => rng.below(LITERAL_BLOCK + 1000),
                        _ => rng.below(40),
                    };
                    input.extend(rng.bytes(n));
                }
                1 => {
                    let n = 1 + rng.below(600);
                    let b = rng.next() as u8;
                    input.resize(input.len() + n, b);
                }
                2 | 3 if !input.is_empty() => {
                    let dist = 1 + rng.below(input.len().min(40_000));
                    let n = 3 + rng.below(300);
                    let from = input.len() - dist;
                    for i in 0..n {
                        input.push(input[from + i]);
                    }
                }
                _ => {
                    let line = format!(
                        "metric_{}{{pod=\"p-{}\"}} {}\n",
                        rng.below(9),
                        rng.below(50),
                        rng.below(1000)
                    );
                    input.extend_from_slice(line.as_bytes());
                }
            }
        }
        round_trip(&mut gz, &input);
    }
}

#[test]
fn lengths_are_limited_and_complete() {
    // Fibonacci counts make the optimal tree as deep as it can be.
    let mut freq = [0u32; LITLEN];
    let (mut a, mut b) = (1u32, 1u32);
    for f in freq.iter_mut().take(40) {
        *f = a;
        (a, b) = (b, a.saturating_add(b));
    }
    freq[END_OF_BLOCK] = 1;
    for max in [15u8, 9] {
        let lens = lengths(&freq, max);
        assert!(lens.iter().all(|&l| l <= max));
        let kraft: u64 = lens
            .iter()
            .filter(|&&l| l != 0)
            .map(|&l| 1u64 << (max - l))
            .sum();
        assert_eq!(kraft, 1 << max, "complete, max {max}");
        // Used symbols have codes, unused ones none.
        for (f, l) in freq.iter().zip(&lens) {
            assert_eq!(*f != 0, *l != 0);
        }
    }
    let mut cl = [0u32; CLS];
    for (i, f) in cl.iter_mut().enumerate() {
        *f = 1 << i;
    }
    let lens = lengths(&cl, 7);
    assert!(lens.iter().all(|&l| (1..=7).contains(&l)));
    let kraft: u32 = lens.iter().map(|&l| 1 << (7 - l)).sum();
    assert_eq!(kraft, 128);
}

#[test]
fn symbols_follow_the_rfc_tables() {
    for len in 3..=258usize {
        let s = LEN_SYM[len - 3] as usize;
        let base = LEN_BASE[s] as usize;
        assert!(
            base <= len && len - base < 1 << LEN_EXTRA[s],
            "length {len}"
        );
    }
    assert_eq!(LEN_SYM[258 - 3], 28);
    for dist in 1..=32_768usize {
        let s = dist_sym(dist - 1);
        let base = DIST_BASE[s] as usize;
        assert!(
            base <= dist && dist - base < 1 << DIST_EXTRA[s],
            "distance {dist}"
        );
    }
}
