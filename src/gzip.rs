//! gzip (RFC 1952) around DEFLATE (RFC 1951), with std only, tuned for what
//! scrape bodies look like: lines that repeat a metric name and a label set
//! and differ in a few digits.
//!
//! * **Matching** is greedy LZ77 over a 32 KiB window, without lazy matching.
//!   Each position first tries the distance of the last match (in exposition
//!   text the previous line usually has the same length, so the same distance
//!   goes on after a differing digit), then a table of the last position of
//!   each hashed 4-byte prefix. Right after a match, one byte on is tried at
//!   the same distance before anything else. Matches are extended 8 bytes at a
//!   time, and backwards over the pending literals. A long stretch without a
//!   match is scanned with a growing step, so incompressible input costs little.
//! * **Blocks** (about 128 KiB of input each) get Huffman codes of their own,
//!   built from symbol counts taken while matching and limited to 15 bits (7
//!   for the code length code); a block goes out with fixed codes or stored
//!   when that is smaller. Bits are written 8 bytes at a time, without a branch
//!   per symbol.
//! * **CRC-32** goes 8 bytes at a time with a table per byte position, over
//!   four stripes of the input at once, joined by multiplying in GF(2).
//! * **Memory**: a [`Gzip`] keeps its hash table and its list of matches
//!   between calls, so a warm compression allocates nothing but what the output
//!   buffer may need to grow.

/// Compresses `input` as one gzip member and appends it to `out`.
///
/// Allocates the compressor's tables for this call; to compress many bodies,
/// keep a [`Gzip`] instead.
///
/// ```
/// let text = "requests_total{pod=\"a\"} 1\n".repeat(100);
/// let mut zipped = Vec::new();
/// promlite::gzip(text.as_bytes(), &mut zipped);
/// assert_eq!(&zipped[..2], &[0x1f, 0x8b]);
/// assert!(zipped.len() < text.len() / 10);
/// ```
pub fn gzip(input: &[u8], out: &mut Vec<u8>) {
    Gzip::new().compress(input, out);
}

/// A gzip compressor that keeps its scratch memory (a 64 KiB hash table and
/// the matches of a block) from one call to the next.
///
/// The output depends only on the input: the same bytes compress to the same
/// bytes, whatever was compressed before.
///
/// ```
/// let mut gz = promlite::Gzip::new();
/// let mut zipped = Vec::new();
/// for body in ["a counter 1\n".repeat(200), "a gauge 2.5\n".repeat(300)] {
///     zipped.clear();
///     gz.compress(body.as_bytes(), &mut zipped);
///     assert!(zipped.len() < body.len() / 10);
/// }
/// ```
#[derive(Default)]
pub struct Gzip {
    /// The last position (mod 2^32) at which each hashed 4-byte prefix was seen.
    table: Vec<u32>,
    /// The current block's sequences: literals, then a match.
    seqs: Vec<Seq>,
}

impl std::fmt::Debug for Gzip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gzip").finish_non_exhaustive()
    }
}

/// A run of literals, then a match, with the match's symbols as written.
#[derive(Clone, Copy)]
struct Seq {
    literals: u32,
    /// The distance minus 1.
    dist: u16,
    /// The length minus 3.
    len: u8,
    /// The distance symbol, or [`NO_MATCH`] after the last literals.
    dist_sym: u8,
}

const NO_MATCH: u8 = u8::MAX;

const WINDOW: usize = 32 * 1024;
const MIN_MATCH: usize = 4;
const MAX_MATCH: usize = 258;
const HASH_BITS: u32 = 14;
/// A block ends at the first match after this much input...
const BLOCK_INPUT: usize = 128 * 1024;
/// ... or after this many sequences.
const BLOCK_SEQS: usize = 16 * 1024;
/// The largest length of a stored block.
const STORED_MAX: usize = 65_535;
/// Input without any match ends its block after this much.
const LITERAL_BLOCK: usize = 4 * STORED_MAX;

impl Gzip {
    /// A compressor; its tables are allocated by the first compression.
    pub fn new() -> Gzip {
        Gzip::default()
    }

    /// Compresses `input` as one gzip member (RFC 1952: a header without name
    /// or time, the DEFLATE data, CRC-32 and length) and appends it to `out`.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        // ID1 ID2, CM = deflate, no flags, no modification time, XFL = fastest
        // algorithm, OS = unknown.
        out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255]);
        self.deflate(input, out);
        out.extend_from_slice(&crc32(input).to_le_bytes());
        out.extend_from_slice(&(input.len() as u32).to_le_bytes());
    }

    /// Appends the raw DEFLATE stream of `input` (RFC 1951) to `out`.
    fn deflate(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.table.clear();
        self.table.resize(1 << HASH_BITS, 0);
        self.seqs.clear();
        let table = &mut self.table[..];
        let mut block = Block {
            seqs: &mut self.seqs,
            counts: Counts::new(),
            start: 0,
        };
        let mut bits = Bits::default();
        let n = input.len();
        // The matcher reads 8 bytes at a time; the last bytes are literals.
        let limit = n.saturating_sub(8);
        let mut ip = 0;
        let mut anchor = 0;
        let mut rep = 1;
        while ip < limit {
            let cur = read32(input, ip);
            let h = hash(cur);
            // Positions are kept mod 2^32: a stale or wrapped entry is only a
            // candidate, checked against the bytes like any other.
            let mut dist = (ip as u32).wrapping_sub(table[h]) as usize;
            table[h] = ip as u32;
            if rep <= ip && read32(input, ip - rep) == cur {
                dist = rep;
            } else if dist.wrapping_sub(1) >= WINDOW || dist > ip || read32(input, ip - dist) != cur
            {
                // Past a long run of literals, look at fewer positions.
                ip += 1 + ((ip - anchor) >> 6);
                // (The step may have gone past the end: then the last block
                // takes the rest.)
                let end = block.start + LITERAL_BLOCK;
                if ip >= end && end <= n {
                    // A block of literals only: a whole number of stored blocks.
                    block.add_literals(&input[anchor..end]);
                    anchor = end;
                    block.flush(input, anchor, false, &mut bits, out);
                }
                continue;
            }
            // Extend backwards over the pending literals, then forwards.
            let mut start = ip;
            let back_limit = anchor
                .max(ip.saturating_sub(MAX_MATCH - MIN_MATCH))
                .max(dist);
            while start > back_limit && input[start - 1] == input[start - 1 - dist] {
                start -= 1;
            }
            let mut end = extend(input, dist, ip + MIN_MATCH, n.min(start + MAX_MATCH));
            block.add(&input[anchor..start], end - start, dist);
            rep = dist;
            remember(table, input, ip, end);
            // One byte that differs, then the same distance again: a digit that
            // changed from one line to the next.
            while end + 1 < limit
                && read32(input, end + 1) == read32(input, end + 1 - rep)
                && !block.full(end)
            {
                let from = end + 1;
                let to = extend(input, rep, from + MIN_MATCH, n.min(from + MAX_MATCH));
                // (Not entered in the table: the repeat finds these again,
                // and leaving them out is faster for 1% more output.)
                block.add(&input[end..from], to - from, rep);
                end = to;
            }
            ip = end;
            anchor = end;
            if block.full(anchor) {
                block.flush(input, anchor, false, &mut bits, out);
            }
        }
        if anchor < n {
            block.add_literals(&input[anchor..]);
        }
        block.flush(input, n, true, &mut bits, out);
        let mut w = Writer::new(out, bits, 0);
        w.align();
        w.finish();
    }
}

#[inline(always)]
fn read32(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

#[inline(always)]
fn read64(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(w)
}

#[inline(always)]
fn hash(v: u32) -> usize {
    (v.wrapping_mul(0x9E37_79B1) >> (32 - HASH_BITS)) as usize
}

/// Where the match that reaches `b` at distance `dist` ends: the first
/// position from `b` on that differs from the byte `dist` before, at most `end`.
/// 16 bytes a step: matches in scrapes are long (40 bytes on average).
#[inline(always)]
fn extend(input: &[u8], dist: usize, mut b: usize, end: usize) -> usize {
    while b + 16 <= end {
        let x = read64(input, b - dist) ^ read64(input, b);
        let y = read64(input, b + 8 - dist) ^ read64(input, b + 8);
        if x | y != 0 {
            let first = if x != 0 {
                x.trailing_zeros()
            } else {
                64 + y.trailing_zeros()
            };
            return b + (first / 8) as usize;
        }
        b += 16;
    }
    while b + 8 <= end {
        let x = read64(input, b - dist) ^ read64(input, b);
        if x != 0 {
            return b + (x.trailing_zeros() / 8) as usize;
        }
        b += 8;
    }
    while b < end && input[b - dist] == input[b] {
        b += 1;
    }
    b
}

/// Enters a position near the end of a match (from `start` to `end`) in the
/// table, for what follows it: one is enough where the repeat distance finds
/// most matches, and each costs a store to a random place.
#[inline(always)]
fn remember(table: &mut [u32], input: &[u8], start: usize, end: usize) {
    let p = end - 3;
    if p > start && p + 4 <= input.len() {
        table[hash(read32(input, p))] = p as u32;
    }
}

// ---------------------------------------------------------------------------
// The symbols of RFC 1951, 3.2.5.

/// The first length of each length symbol 257..=285.
const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
/// The first distance of each distance symbol 0..=29.
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// The order in which the code length code's lengths are sent.
const CL_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// The length symbol (0-based: symbol 257 is 0) of each length 3..=258.
const LEN_SYM: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut sym = 0;
    // Symbol by symbol, each over its lengths; 258 is symbol 285 (28), written
    // last over 284 with all its extra bits set, which would also say 258.
    while sym < 29 {
        let first = LEN_BASE[sym] as usize - 3;
        let mut i = 0;
        while i < 1 << LEN_EXTRA[sym] {
            t[first + i] = sym as u8;
            i += 1;
        }
        sym += 1;
    }
    t
};

/// The distance symbol of `dist - 1` (0..32768): two symbols per power of two.
#[inline(always)]
fn dist_sym(d: usize) -> usize {
    if d < 4 {
        d
    } else {
        let lg = (usize::BITS - 1 - d.leading_zeros()) as usize;
        2 * lg + ((d >> (lg - 1)) & 1)
    }
}

/// Literal/length symbols, with the two that are never used (RFC 1951, 3.2.6:
/// the fixed code is built over all 288).
const LITLEN: usize = 288;
const DISTS: usize = 30;
const CLS: usize = 19;
const END_OF_BLOCK: usize = 256;

// ---------------------------------------------------------------------------
// Blocks.

/// A Huffman code: per symbol, its bit-reversed code (written LSB first) and length.
struct Code<const N: usize> {
    codes: [u16; N],
    lens: [u8; N],
}

impl<const N: usize> Code<N> {
    fn from_lens(lens: [u8; N]) -> Code<N> {
        Code {
            codes: canonical(&lens),
            lens,
        }
    }

    /// The bits of the symbols counted in `freq` under this code.
    fn cost(&self, freq: &[u32; N]) -> u64 {
        freq.iter()
            .zip(&self.lens)
            .map(|(&f, &l)| u64::from(f) * u64::from(l))
            .sum()
    }
}

/// The symbol counts of a block.
#[derive(Clone)]
struct Counts {
    lit: [u32; LITLEN],
    dist: [u32; DISTS],
    /// The extra bits of its lengths and distances, whatever the codes.
    extra_bits: u64,
}

impl Counts {
    fn new() -> Counts {
        Counts {
            lit: [0; LITLEN],
            dist: [0; DISTS],
            extra_bits: 0,
        }
    }
}

/// The block being gathered: its sequences and their counts.
struct Block<'a> {
    seqs: &'a mut Vec<Seq>,
    counts: Counts,
    /// Where it starts in the input.
    start: usize,
}

impl Block<'_> {
    /// Literals, then a match.
    #[inline(always)]
    fn add(&mut self, literals: &[u8], len: usize, dist: usize) {
        for &b in literals {
            self.counts.lit[b as usize] += 1;
        }
        let ls = LEN_SYM[len - 3] as usize;
        let ds = dist_sym(dist - 1);
        self.counts.lit[257 + ls] += 1;
        self.counts.dist[ds] += 1;
        self.counts.extra_bits += u64::from(LEN_EXTRA[ls] + DIST_EXTRA[ds]);
        self.seqs.push(Seq {
            literals: literals.len() as u32,
            dist: (dist - 1) as u16,
            len: (len - 3) as u8,
            dist_sym: ds as u8,
        });
    }

    /// Literals with no match after them.
    fn add_literals(&mut self, literals: &[u8]) {
        for &b in literals {
            self.counts.lit[b as usize] += 1;
        }
        self.seqs.push(Seq {
            literals: literals.len() as u32,
            dist: 0,
            len: 0,
            dist_sym: NO_MATCH,
        });
    }

    /// Whether the block should end at `end`.
    #[inline(always)]
    fn full(&self, end: usize) -> bool {
        end - self.start >= BLOCK_INPUT || self.seqs.len() >= BLOCK_SEQS
    }

    /// Writes the block, which ends at `end`, and starts the next one there.
    fn flush(&mut self, input: &[u8], end: usize, last: bool, bits: &mut Bits, out: &mut Vec<u8>) {
        write_block(
            &input[self.start..end],
            self.seqs,
            &self.counts,
            last,
            bits,
            out,
        );
        self.seqs.clear();
        self.counts = Counts::new();
        self.start = end;
    }
}

/// The fixed codes of RFC 1951, 3.2.6.
fn fixed() -> (Code<LITLEN>, Code<DISTS>) {
    let mut lens = [0u8; LITLEN];
    for (s, l) in lens.iter_mut().enumerate() {
        *l = match s {
            0..=143 => 8,
            144..=255 => 9,
            256..=279 => 7,
            _ => 8,
        };
    }
    (Code::from_lens(lens), Code::from_lens([5; DISTS]))
}

/// Writes one block (or, stored, as many as its length needs) of `data`,
/// whose sequences are `seqs`, choosing the smallest of the three kinds.
fn write_block(
    data: &[u8],
    seqs: &[Seq],
    counts: &Counts,
    last: bool,
    bits: &mut Bits,
    out: &mut Vec<u8>,
) {
    let mut lit_counts = counts.lit;
    lit_counts[END_OF_BLOCK] = 1;
    let lit = Code::from_lens(lengths(&at_least_two(lit_counts), 15));
    let dist = Code::from_lens(lengths(&at_least_two(counts.dist), 15));
    let header = DynamicHeader::new(&lit.lens, &dist.lens);
    let dynamic =
        3 + header.bits + lit.cost(&lit_counts) + dist.cost(&counts.dist) + counts.extra_bits;
    let (fixed_lit, fixed_dist) = fixed();
    let fixed = 3 + fixed_lit.cost(&lit_counts) + fixed_dist.cost(&counts.dist) + counts.extra_bits;
    let chunks = data.len().div_ceil(STORED_MAX).max(1) as u64;
    // Each stored block: 3 header bits, padding to a byte, LEN and NLEN.
    let stored = chunks * (3 + 7 + 32) + 8 * data.len() as u64;
    let last_bit = u64::from(last);
    let best = stored.min(dynamic).min(fixed);
    let mut w = Writer::new(out, *bits, (best / 8) as usize);
    if stored == best {
        let mut parts = data.chunks(STORED_MAX).peekable();
        if data.is_empty() {
            write_stored(&mut w, &[], last);
        }
        while let Some(part) = parts.next() {
            write_stored(&mut w, part, last && parts.peek().is_none());
        }
    } else if fixed == best {
        w.put(last_bit | 1 << 1, 3);
        w = write_symbols(w, data, seqs, &fixed_lit, &fixed_dist);
    } else {
        w.put(last_bit | 2 << 1, 3);
        header.write(&mut w);
        w = write_symbols(w, data, seqs, &lit, &dist);
    }
    *bits = w.finish();
}

fn write_stored(w: &mut Writer<'_>, part: &[u8], last: bool) {
    w.put(u64::from(last), 3);
    w.align();
    let len = part.len() as u16;
    w.bytes(&len.to_le_bytes());
    w.bytes(&(!len).to_le_bytes());
    w.bytes(part);
}

/// The literals and matches of a block, then its end. The writer is moved
/// in and out, so that its state can stay in registers.
fn write_symbols<'a>(
    mut w: Writer<'a>,
    data: &[u8],
    seqs: &[Seq],
    lit: &Code<LITLEN>,
    dist: &Code<DISTS>,
) -> Writer<'a> {
    // Each length's code and extra bits as one value, and each distance
    // symbol's code with the place and first value of its extra bits. Indexed
    // by a byte, so that no index needs a check.
    let mut len_bits = [0u32; 256];
    let mut len_nbits = [0u8; 256];
    for l in 0..256 {
        let s = LEN_SYM[l] as usize;
        let extra = (l + 3 - LEN_BASE[s] as usize) as u32;
        let n = lit.lens[257 + s];
        len_bits[l] = u32::from(lit.codes[257 + s]) | extra << n;
        len_nbits[l] = n + LEN_EXTRA[s];
    }
    let mut dist_code = [0u16; 256];
    let mut dist_len = [0u8; 256];
    let mut dist_nbits = [0u8; 256];
    let mut dist_first = [0u16; 256];
    for s in 0..DISTS {
        dist_code[s] = dist.codes[s];
        dist_len[s] = dist.lens[s];
        dist_nbits[s] = dist.lens[s] + DIST_EXTRA[s];
        dist_first[s] = DIST_BASE[s] - 1;
    }
    let mut pos = 0;
    for s in seqs {
        let literals = &data[pos..pos + s.literals as usize];
        pos += s.literals as usize;
        // Up to three literals (15 bits each) at a time.
        let mut triples = literals.chunks_exact(3);
        for t in &mut triples {
            for &b in t {
                w.add(
                    u64::from(lit.codes[b as usize]),
                    u32::from(lit.lens[b as usize]),
                );
            }
            w.flush();
        }
        for &b in triples.remainder() {
            w.put(
                u64::from(lit.codes[b as usize]),
                u32::from(lit.lens[b as usize]),
            );
        }
        if s.dist_sym != NO_MATCH {
            pos += s.len as usize + 3;
            let l = s.len as usize;
            w.add(u64::from(len_bits[l]), u32::from(len_nbits[l]));
            let ds = s.dist_sym as usize;
            let extra = u64::from(s.dist - dist_first[ds]);
            w.add(
                u64::from(dist_code[ds]) | extra << dist_len[ds],
                u32::from(dist_nbits[ds]),
            );
            w.flush();
        }
    }
    w.put(
        u64::from(lit.codes[END_OF_BLOCK]),
        u32::from(lit.lens[END_OF_BLOCK]),
    );
    w
}

/// The code lengths of a dynamic block, run-length coded (RFC 1951, 3.2.7).
struct DynamicHeader {
    hlit: usize,
    hdist: usize,
    hclen: usize,
    /// Code length symbols with their extra bits.
    symbols: [(u8, u8); LITLEN + DISTS],
    count: usize,
    cl: Code<CLS>,
    /// The header's size, from HLIT on.
    bits: u64,
}

impl DynamicHeader {
    fn new(lit: &[u8; LITLEN], dist: &[u8; DISTS]) -> DynamicHeader {
        let hlit = 257
            + lit[257..]
                .iter()
                .rposition(|&l| l != 0)
                .map_or(0, |i| i + 1);
        let hdist = dist.iter().rposition(|&l| l != 0).map_or(1, |i| i + 1);
        let mut all = [0u8; LITLEN + DISTS];
        all[..hlit].copy_from_slice(&lit[..hlit]);
        all[hlit..hlit + hdist].copy_from_slice(&dist[..hdist]);
        let all = &all[..hlit + hdist];
        let mut symbols = [(0u8, 0u8); LITLEN + DISTS];
        let mut count = 0;
        let mut push = |sym: u8, extra: u8| {
            symbols[count] = (sym, extra);
            count += 1;
        };
        let mut i = 0;
        while i < all.len() {
            let len = all[i];
            let mut run = all[i..].iter().take_while(|&&l| l == len).count();
            i += run;
            if len == 0 {
                while run >= 11 {
                    let r = run.min(138);
                    push(18, (r - 11) as u8);
                    run -= r;
                }
                if run >= 3 {
                    push(17, (run - 3) as u8);
                    run = 0;
                }
            } else {
                push(len, 0);
                run -= 1;
                while run >= 3 {
                    let r = run.min(6);
                    push(16, (r - 3) as u8);
                    run -= r;
                }
            }
            for _ in 0..run {
                push(len, 0);
            }
        }
        let mut freq = [0u32; CLS];
        for &(sym, _) in &symbols[..count] {
            freq[sym as usize] += 1;
        }
        let cl = Code::from_lens(lengths(&at_least_two(freq), 7));
        let hclen = 4.max(
            CL_ORDER
                .iter()
                .rposition(|&s| cl.lens[s] != 0)
                .map_or(0, |i| i + 1),
        );
        let extra = 2 * freq[16] + 3 * freq[17] + 7 * freq[18];
        let bits = 5 + 5 + 4 + 3 * hclen as u64 + cl.cost(&freq) + u64::from(extra);
        DynamicHeader {
            hlit,
            hdist,
            hclen,
            symbols,
            count,
            cl,
            bits,
        }
    }

    fn write(&self, w: &mut Writer<'_>) {
        w.add((self.hlit - 257) as u64, 5);
        w.add((self.hdist - 1) as u64, 5);
        w.put((self.hclen - 4) as u64, 4);
        for &s in &CL_ORDER[..self.hclen] {
            w.put(u64::from(self.cl.lens[s]), 3);
        }
        for &(sym, extra) in &self.symbols[..self.count] {
            let s = sym as usize;
            let n = match sym {
                16 => 2,
                17 => 3,
                18 => 7,
                _ => 0,
            };
            w.add(u64::from(self.cl.codes[s]), u32::from(self.cl.lens[s]));
            w.put(u64::from(extra), n);
        }
    }
}

// ---------------------------------------------------------------------------
// Huffman codes.

/// The counts with at least two symbols used, so that every code built from
/// them is complete (as decoders require) and has no zero-length code.
fn at_least_two<const N: usize>(mut freq: [u32; N]) -> [u32; N] {
    let mut used = freq.iter().filter(|&&f| f != 0).count();
    for f in freq.iter_mut() {
        if used >= 2 {
            break;
        }
        if *f == 0 {
            *f = 1;
            used += 1;
        }
    }
    freq
}

/// Huffman code lengths for the counts (at least two non-zero), none longer
/// than `max`: the optimal tree's depths, then, if some are too deep, lengths
/// moved between levels until the code is complete again.
fn lengths<const N: usize>(freq: &[u32; N], max: u8) -> [u8; N] {
    let mut lens = [0u8; N];
    // The used symbols, rarest first: count in the high bits, symbol in the low.
    let mut leaves = [0u64; N];
    let mut n = 0;
    for (s, &f) in freq.iter().enumerate() {
        if f != 0 {
            leaves[n] = u64::from(f) << 16 | s as u64;
            n += 1;
        }
    }
    let leaves = &mut leaves[..n];
    leaves.sort_unstable();
    // Two queues: the sorted leaves, and the internal nodes in the order they
    // are made (their weights never decrease). Nodes 0..n are the leaves,
    // n..2n-1 the internal nodes; `parent` links each to the node above it.
    let mut weight = [0u64; 2 * LITLEN];
    let mut parent = [0u16; 2 * LITLEN];
    for (i, &l) in leaves.iter().enumerate() {
        weight[i] = l >> 16;
    }
    let (mut next_leaf, mut next_node, mut made) = (0, n, n);
    let mut smallest = |weight: &[u64], made: usize| {
        let take_leaf =
            next_leaf < n && (next_node >= made || weight[next_leaf] <= weight[next_node]);
        if take_leaf {
            next_leaf += 1;
            next_leaf - 1
        } else {
            next_node += 1;
            next_node - 1
        }
    };
    while made < 2 * n - 1 {
        let a = smallest(&weight, made);
        let b = smallest(&weight, made);
        weight[made] = weight[a] + weight[b];
        parent[a] = made as u16;
        parent[b] = made as u16;
        made += 1;
    }
    // Depths, from the root down (a parent is always made after its children).
    let mut depth = [0u8; 2 * LITLEN];
    for i in (0..2 * n - 2).rev() {
        depth[i] = depth[parent[i] as usize] + 1;
    }
    let mut per_len = [0u32; 64];
    for &d in &depth[..n] {
        per_len[d.min(max) as usize] += 1;
    }
    // Kraft sum, in units of 2^-max; a complete code sums to exactly 2^max.
    let full = 1u64 << max;
    let mut kraft: u64 = (1..=max as usize)
        .map(|l| u64::from(per_len[l]) << (max as usize - l))
        .sum();
    while kraft > full {
        // Lengthen the deepest code that can be: the smallest step down.
        let l = (1..max as usize)
            .rev()
            .find(|&l| per_len[l] > 0)
            .unwrap_or(1);
        per_len[l] -= 1;
        per_len[l + 1] += 1;
        kraft -= 1 << (max as usize - l - 1);
    }
    while kraft < full {
        // Shorten a code by the largest step that does not overshoot.
        let deficit = full - kraft;
        let Some(l) =
            (2..=max as usize).find(|&l| per_len[l] > 0 && (1u64 << (max as usize - l)) <= deficit)
        else {
            break;
        };
        per_len[l] -= 1;
        per_len[l - 1] += 1;
        kraft += 1 << (max as usize - l);
    }
    // The rarest symbols get the longest codes.
    let mut next = 0;
    for l in (1..=max as usize).rev() {
        for _ in 0..per_len[l] {
            lens[(leaves[next] & 0xffff) as usize] = l as u8;
            next += 1;
        }
    }
    lens
}

/// The canonical codes of these lengths (RFC 1951, 3.2.2), bit-reversed.
fn canonical<const N: usize>(lens: &[u8; N]) -> [u16; N] {
    let mut per_len = [0u16; 16];
    for &l in lens {
        per_len[l as usize] += 1;
    }
    per_len[0] = 0;
    let mut next = [0u16; 16];
    let mut code = 0u16;
    for l in 1..16 {
        code = (code + per_len[l - 1]) << 1;
        next[l] = code;
    }
    let mut codes = [0u16; N];
    for (c, &l) in codes.iter_mut().zip(lens) {
        if l != 0 {
            *c = next[l as usize].reverse_bits() >> (16 - l);
            next[l as usize] += 1;
        }
    }
    codes
}

// ---------------------------------------------------------------------------
// Bits, least significant first (RFC 1951, 3.1.1).

/// Bits not yet a whole byte, between blocks.
#[derive(Default, Clone, Copy)]
struct Bits {
    acc: u64,
    n: u32,
}

/// Writes bits into the output, which it extends ahead (zeroed) so that each
/// flush stores all 8 bytes of the accumulator and moves on by the whole bytes.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
    /// Where the next byte goes; everything after it is room.
    pos: usize,
    acc: u64,
    /// Bits in `acc`: at most 7 after a flush.
    n: u32,
}

impl<'a> Writer<'a> {
    /// A writer after what `out` holds, with room for about `expected` bytes.
    fn new(out: &'a mut Vec<u8>, bits: Bits, expected: usize) -> Writer<'a> {
        let pos = out.len();
        out.resize(pos + expected + 16, 0);
        Writer {
            out,
            pos,
            acc: bits.acc,
            n: bits.n,
        }
    }

    /// Adds the low `n` bits of `v` (no wider). At most 56 bits may be added
    /// between flushes.
    #[inline(always)]
    fn add(&mut self, v: u64, n: u32) {
        self.acc |= v << self.n;
        self.n += n;
    }

    #[inline(always)]
    fn flush(&mut self) {
        if self.pos + 8 > self.out.len() {
            self.grow();
        }
        self.out[self.pos..self.pos + 8].copy_from_slice(&self.acc.to_le_bytes());
        let whole = self.n / 8;
        self.pos += whole as usize;
        self.acc >>= whole * 8;
        self.n &= 7;
    }

    #[inline(always)]
    fn put(&mut self, v: u64, n: u32) {
        self.add(v, n);
        self.flush();
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let more = (self.out.len() / 2).max(4096);
        self.out.resize(self.out.len() + more, 0);
    }

    /// Pads with zero bits to a whole byte.
    fn align(&mut self) {
        self.flush();
        if self.n > 0 {
            self.pos += 1;
        }
        self.acc = 0;
        self.n = 0;
    }

    /// Copies bytes, at a byte boundary.
    fn bytes(&mut self, bytes: &[u8]) {
        debug_assert_eq!(self.n, 0);
        if self.pos + bytes.len() + 8 > self.out.len() {
            self.out.resize(self.pos + bytes.len() + 8, 0);
        }
        self.out[self.pos..self.pos + bytes.len()].copy_from_slice(bytes);
        self.pos += bytes.len();
    }

    /// Cuts the output after the last whole byte; the bits left over (at most
    /// 7) are the next block's start.
    fn finish(self) -> Bits {
        self.out.truncate(self.pos);
        Bits {
            acc: self.acc,
            n: self.n,
        }
    }
}

// ---------------------------------------------------------------------------
// CRC-32 (ISO-HDLC, as gzip uses it: the reflected polynomial 0xEDB88320),
// eight bytes at a time with one table per byte position. A long input is cut
// into four stripes that are run at once, so that the four chains of table
// lookups overlap, and their CRCs are then joined.

const CRC_POLY: u32 = 0xEDB8_8320;

static CRC_TABLES: [[u32; 256]; 8] = {
    let mut t = [[0u32; 256]; 8];
    let mut b = 0;
    while b < 256 {
        let mut c = b as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                CRC_POLY ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[0][b] = c;
        b += 1;
    }
    let mut i = 1;
    while i < 8 {
        let mut b = 0;
        while b < 256 {
            let prev = t[i - 1][b];
            t[i][b] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            b += 1;
        }
        i += 1;
    }
    t
};

/// The CRC register after eight more bytes.
#[inline(always)]
fn crc_step(crc: u32, bytes: &[u8]) -> u32 {
    let t = &CRC_TABLES;
    let mut w = [0u8; 8];
    w.copy_from_slice(bytes);
    let w = u64::from_le_bytes(w) ^ u64::from(crc);
    t[7][(w & 0xff) as usize]
        ^ t[6][(w >> 8 & 0xff) as usize]
        ^ t[5][(w >> 16 & 0xff) as usize]
        ^ t[4][(w >> 24 & 0xff) as usize]
        ^ t[3][(w >> 32 & 0xff) as usize]
        ^ t[2][(w >> 40 & 0xff) as usize]
        ^ t[1][(w >> 48 & 0xff) as usize]
        ^ t[0][(w >> 56) as usize]
}

/// The CRC register (no inversions) after `data`.
fn crc_update(mut crc: u32, data: &[u8]) -> u32 {
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        crc = crc_step(crc, w);
    }
    for &b in words.remainder() {
        crc = (crc >> 8) ^ CRC_TABLES[0][((crc ^ u32::from(b)) & 0xff) as usize];
    }
    crc
}

/// `a * b` modulo the polynomial, both reflected (bit 31 is x^0).
fn crc_multiply(a: u32, mut b: u32) -> u32 {
    let mut product = 0;
    for i in 0..32 {
        if a & (1 << (31 - i)) != 0 {
            product ^= b;
        }
        // b *= x
        b = if b & 1 != 0 {
            (b >> 1) ^ CRC_POLY
        } else {
            b >> 1
        };
    }
    product
}

/// x^(8n) modulo the polynomial: what the register is multiplied by over n
/// zero bytes.
fn crc_shift(mut n: usize) -> u32 {
    let mut result = 1 << 31; // x^0
    let mut square = 1 << 23; // x^8
    while n != 0 {
        if n & 1 != 0 {
            result = crc_multiply(result, square);
        }
        square = crc_multiply(square, square);
        n >>= 1;
    }
    result
}

/// The CRC-32 of `data`, as gzip's trailer holds it.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    const STRIPED_FROM: usize = 16 * 1024;
    if data.len() < STRIPED_FROM {
        return !crc_update(!0, data);
    }
    // The register is linear: over A then B it is (register after A) times
    // x^(8|B|), plus the register of B alone from zero.
    let len = data.len() / 32 * 8;
    let (a, rest) = data.split_at(len);
    let (b, rest) = rest.split_at(len);
    let (c, rest) = rest.split_at(len);
    let (d, tail) = rest.split_at(len);
    let (mut ca, mut cb, mut cc, mut cd) = (!0u32, 0u32, 0u32, 0u32);
    for (((wa, wb), wc), wd) in a
        .chunks_exact(8)
        .zip(b.chunks_exact(8))
        .zip(c.chunks_exact(8))
        .zip(d.chunks_exact(8))
    {
        ca = crc_step(ca, wa);
        cb = crc_step(cb, wb);
        cc = crc_step(cc, wc);
        cd = crc_step(cd, wd);
    }
    let shift = crc_shift(len);
    let mut crc = ca;
    for next in [cb, cc, cd] {
        crc = crc_multiply(crc, shift) ^ next;
    }
    !crc_update(crc, tail)
}

#[cfg(test)]
mod tests;
