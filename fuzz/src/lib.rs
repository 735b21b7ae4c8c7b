//! Helpers shared by the fuzz targets in `fuzz_targets/`; see docs/FUZZING.md.

/// Cuts a stream into read-sized pieces, the way a socket may deliver it.
///
/// The input starts with the cut plan: one byte `n` (taken modulo 8), then `n` size
/// bytes; the rest is the stream. Each size byte `b` stands for `b + 1` bytes when
/// `b < 0x80` (small reads, frames cut anywhere) and `(b - 0x7f) * 64` bytes otherwise
/// (up to 8 KiB, past every length limit), and the sizes repeat until the stream is
/// used up. With `n == 0` the whole stream is one read. The plan is a prefix of fixed
/// length, so mutating the stream never reshuffles the cuts.
#[derive(Debug, Clone)]
pub struct Chunks<'a> {
    sizes: &'a [u8],
    next_size: usize,
    rest: &'a [u8],
}

impl<'a> Chunks<'a> {
    /// Splits `data` into the cut plan and the stream it cuts.
    #[must_use]
    pub fn new(data: &'a [u8]) -> Self {
        let (n, data) = data.split_first().map_or((0, data), |(&n, rest)| (n, rest));
        let n = usize::from(n % 8).min(data.len());
        let (sizes, rest) = data.split_at(n);
        Chunks {
            sizes,
            next_size: 0,
            rest,
        }
    }

    /// The whole stream, before any piece has been taken.
    #[must_use]
    pub fn stream(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let len = match self.sizes.get(self.next_size % self.sizes.len().max(1)) {
            None => self.rest.len(),
            Some(&b) if b < 0x80 => usize::from(b) + 1,
            Some(&b) => usize::from(b - 0x7f) * 64,
        };
        self.next_size += 1;
        let (piece, rest) = self.rest.split_at(len.min(self.rest.len()));
        self.rest = rest;
        Some(piece)
    }
}
