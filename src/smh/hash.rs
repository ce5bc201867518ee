//! SMH content hashes: the instant-upload SHA-256 chain and CRC-64/XZ.
//!
//! Both are incremental so that the write path can feed bytes as the
//! application writes them (no second read of a staged file at close), and
//! the server can compute them while receiving parts. The chunking of the
//! input never changes the result.

use sha2::{Digest, Sha256};

/// SMH hashes the content in 1 MiB blocks (`beginningHash` = first block).
pub const HASH_BLOCK: usize = 1024 * 1024;

/// Instant upload is only attempted for files of at least one block.
pub const INSTANT_UPLOAD_MIN_SIZE: u64 = HASH_BLOCK as u64;

/// The final values of [`ContentHasher`], in the forms the API sends.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContentHashes {
    pub size: u64,
    /// Lowercase hex SHA-256 of the first min(1 MiB, size) bytes.
    pub beginning_hash: String,
    /// Lowercase hex of the last link of the SHA-256 chain.
    pub full_hash: String,
    /// CRC-64/XZ (what SMH and COS call CRC64-ECMA182).
    pub crc64: u64,
}

impl ContentHashes {
    /// CRC-64 as the API writes it: an unsigned decimal string.
    pub fn crc64_string(&self) -> String {
        self.crc64.to_string()
    }

    /// Hashes of a byte slice in one call.
    pub fn of(data: &[u8]) -> Self {
        let mut h = ContentHasher::new();
        h.update(data);
        h.finish()
    }
}

/// Incremental SMH chain hash + CRC-64.
///
/// Chain: h0 = SHA256(block0); hi = SHA256(h(i-1) || block i); fullHash = hex(h_last).
#[derive(Clone)]
pub struct ContentHasher {
    /// Hash of the block being filled; `None` until its first byte arrives, so
    /// a file ending exactly on a block boundary does not gain an empty block.
    current: Option<Sha256>,
    current_len: usize,
    previous: Option<[u8; 32]>,
    beginning: Option<[u8; 32]>,
    crc: crc64fast::Digest,
    size: u64,
}

impl Default for ContentHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ContentHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentHasher")
            .field("size", &self.size)
            .finish()
    }
}

impl ContentHasher {
    pub fn new() -> Self {
        Self {
            current: None,
            current_len: 0,
            previous: None,
            beginning: None,
            crc: crc64fast::Digest::new(),
            size: 0,
        }
    }

    /// Bytes fed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn update(&mut self, data: &[u8]) {
        self.crc.write(data);
        self.update_chain(data);
    }

    /// Takes the CRC-64 state out, so that it can be fed on another thread
    /// (with [`Crc64::update`]) while [`Self::update_chain`] feeds the rest;
    /// [`Self::put_crc`] brings it back. Both must see the same bytes.
    pub fn take_crc(&mut self) -> Crc64 {
        Crc64(std::mem::replace(&mut self.crc, crc64fast::Digest::new()))
    }

    pub fn put_crc(&mut self, crc: Crc64) {
        self.crc = crc.0;
    }

    /// Feeds the SHA-256 chain and the size, not the CRC-64.
    pub fn update_chain(&mut self, mut data: &[u8]) {
        self.size += data.len() as u64;
        while !data.is_empty() {
            let hasher = self.current.get_or_insert_with(|| {
                let mut h = Sha256::new();
                if let Some(prev) = &self.previous {
                    h.update(prev);
                }
                h
            });
            let take = (HASH_BLOCK - self.current_len).min(data.len());
            hasher.update(&data[..take]);
            self.current_len += take;
            data = &data[take..];
            if self.current_len == HASH_BLOCK {
                self.close_block();
            }
        }
    }

    fn close_block(&mut self) {
        if let Some(h) = self.current.take() {
            let digest: [u8; 32] = h.finalize().into();
            if self.beginning.is_none() {
                self.beginning = Some(digest);
            }
            self.previous = Some(digest);
        }
        self.current_len = 0;
    }

    pub fn finish(mut self) -> ContentHashes {
        if self.current.is_some() {
            self.close_block();
        }
        // An empty input has one (empty) block: SHA-256 of nothing.
        let empty = || -> [u8; 32] { Sha256::digest([]).into() };
        let beginning = self.beginning.unwrap_or_else(empty);
        let full = self.previous.unwrap_or(beginning);
        ContentHashes {
            size: self.size,
            beginning_hash: hex::encode(beginning),
            full_hash: hex::encode(full),
            crc64: self.crc.sum64(),
        }
    }
}

/// CRC-64/XZ of a slice.
pub fn crc64(data: &[u8]) -> u64 {
    let mut d = crc64fast::Digest::new();
    d.write(data);
    d.sum64()
}

/// Incremental CRC-64/XZ, for callers that need no SHA-256 chain.
#[derive(Clone)]
pub struct Crc64(crc64fast::Digest);

impl Default for Crc64 {
    fn default() -> Self {
        Self(crc64fast::Digest::new())
    }
}

impl Crc64 {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn update(&mut self, data: &[u8]) {
        self.0.write(data);
    }
    pub fn value(&self) -> u64 {
        self.0.sum64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// smh-api.md §4.12: bytes(i % 251 for i in range(3*1048576+12345)).
    fn vector_buffer() -> Vec<u8> {
        (0..3 * 1048576 + 12345).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn crc64_check_value() {
        assert_eq!(crc64(b"123456789"), 0x995D_C9BB_DF19_39FA);
        assert_eq!(crc64(b"123456789").to_string(), "11051210869376104954");
        assert_eq!(crc64(b""), 0);
    }

    #[test]
    fn spec_vector() {
        let h = ContentHashes::of(&vector_buffer());
        assert_eq!(
            h.beginning_hash,
            "631b84027d6b9e52b539c4e8373622d23032dfadc64d60af87339c9037e4f769"
        );
        assert_eq!(
            h.full_hash,
            "6b6096cffb7f58bf9cffad5cfeb1543ba131dcb09fdcf8434bc9558637181807"
        );
        assert_eq!(h.crc64_string(), "15970635907845446632");
        assert_eq!(h.size, 3 * 1048576 + 12345);
    }

    #[test]
    fn small_file_full_equals_beginning() {
        let h = ContentHashes::of(b"hello");
        assert_eq!(h.beginning_hash, h.full_hash);
        assert_eq!(h.beginning_hash, hex::encode(Sha256::digest(b"hello")));
        let exact = vec![7u8; HASH_BLOCK];
        let h = ContentHashes::of(&exact);
        assert_eq!(h.beginning_hash, h.full_hash);
        let plus_one = vec![7u8; HASH_BLOCK + 1];
        let h2 = ContentHashes::of(&plus_one);
        assert_eq!(h2.beginning_hash, h.beginning_hash);
        assert_ne!(h2.full_hash, h2.beginning_hash);
    }

    #[test]
    fn empty_input() {
        let h = ContentHashes::of(b"");
        assert_eq!(h.size, 0);
        assert_eq!(h.crc64, 0);
        assert_eq!(h.beginning_hash, hex::encode(Sha256::digest(b"")));
        assert_eq!(h.full_hash, h.beginning_hash);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Any split of the input gives the same hashes as one update.
        #[test]
        fn chunking_independent(
            len in 0usize..(3 * HASH_BLOCK + 100),
            cuts in proptest::collection::vec(0usize..(3 * HASH_BLOCK + 100), 0..12),
        ) {
            let data: Vec<u8> = (0..len).map(|i| (i.wrapping_mul(31) ^ (i >> 7)) as u8).collect();
            let whole = ContentHashes::of(&data);
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(len)).collect();
            points.sort_unstable();
            let mut h = ContentHasher::new();
            let mut at = 0;
            for p in points {
                h.update(&data[at..p]);
                at = p;
            }
            h.update(&data[at..]);
            prop_assert_eq!(h.finish(), whole.clone());
            let mut split = ContentHasher::new();
            split.update(&data[..len / 3]);
            let mut crc = split.take_crc();
            split.update_chain(&data[len / 3..]);
            crc.update(&data[len / 3..]);
            split.put_crc(crc);
            prop_assert_eq!(split.finish(), whole.clone());
            let mut c = Crc64::new();
            for chunk in data.chunks(4099) { c.update(chunk); }
            prop_assert_eq!(c.value(), whole.crc64);
        }
    }
}
