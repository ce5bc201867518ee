//! Where the bytes of an upload come from, and the bodies of its PUTs.
//!
//! The client does not know how a staged file is read: the filesystem hands
//! it a [`PartSource`] (its direct-I/O reader, which goes around the page
//! cache), while tests and tools use [`PlainFile`]. This keeps `smh/` free
//! of every other module of the crate.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

/// A file-like source of upload bytes, read by range from several part
/// uploads at once (from blocking threads).
pub trait PartSource: Send + Sync + 'static {
    /// The whole content's size in bytes.
    fn size(&self) -> std::io::Result<u64>;

    /// Exactly `len` bytes at `offset`, for a small body sent in one write
    /// (read plainly: such bytes were usually just written).
    fn read_small(&self, offset: u64, len: usize) -> std::io::Result<Bytes>;

    /// Exactly `len` bytes (at most [`chunk_len`](Self::chunk_len)) at
    /// `offset`: one step of a streamed part body or of hashing. The source
    /// owns the buffer, so it may be aligned and pooled.
    fn read_chunk(&self, offset: u64, len: usize) -> std::io::Result<Bytes>;

    /// The largest step [`read_chunk`](Self::read_chunk) serves.
    fn chunk_len(&self) -> usize;
}

/// A shared source, as the upload calls take it.
pub type SharedSource = Arc<dyn PartSource>;

/// A local file read through the page cache: for tests, tools and files
/// too small for direct I/O to matter.
#[derive(Debug)]
pub struct PlainFile(File);

impl PlainFile {
    /// Step of streamed bodies and hashing.
    const CHUNK: usize = 1 << 20;

    pub fn open(path: &Path) -> std::io::Result<Self> {
        File::open(path).map(Self)
    }

    /// Opens `path` as a [`SharedSource`].
    pub fn shared(path: &Path) -> std::io::Result<SharedSource> {
        Ok(Arc::new(Self::open(path)?))
    }
}

impl PartSource for PlainFile {
    fn size(&self) -> std::io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn read_small(&self, offset: u64, len: usize) -> std::io::Result<Bytes> {
        let mut buf = vec![0u8; len];
        self.0.read_exact_at(&mut buf, offset)?;
        Ok(Bytes::from(buf))
    }

    fn read_chunk(&self, offset: u64, len: usize) -> std::io::Result<Bytes> {
        self.read_small(offset, len.min(Self::CHUNK))
    }

    fn chunk_len(&self) -> usize {
        Self::CHUNK
    }
}

/// A body up to this size is read at once (not streamed).
const STREAM_CHUNK: u64 = 256 * 1024;

/// Where an upload's bytes come from: a [`PartSource`], or memory.
#[derive(Clone)]
pub(super) enum Source {
    Parts(SharedSource),
    Bytes(Bytes),
}

impl Source {
    /// The body of the `len` bytes at `offset`.
    pub(super) fn part(&self, offset: u64, len: u64) -> std::io::Result<PartBody> {
        match self {
            Source::Parts(s) if len <= STREAM_CHUNK => {
                Ok(PartBody::Bytes(s.read_small(offset, len as usize)?))
            }
            Source::Parts(s) => Ok(PartBody::Stream {
                source: s.clone(),
                offset,
                len,
            }),
            Source::Bytes(b) => Ok(PartBody::Bytes(
                b.slice(offset as usize..(offset + len) as usize),
            )),
        }
    }
}

/// The body of one object PUT: in memory, or a byte range of a source
/// streamed in chunks (a part is never held whole in memory, so memory
/// stays at concurrency x a few chunks).
#[derive(Clone)]
pub(super) enum PartBody {
    Bytes(Bytes),
    Stream {
        source: SharedSource,
        offset: u64,
        len: u64,
    },
}

impl PartBody {
    pub(super) fn len(&self) -> u64 {
        match self {
            PartBody::Bytes(b) => b.len() as u64,
            PartBody::Stream { len, .. } => *len,
        }
    }

    pub(super) fn to_body(&self) -> reqwest::Body {
        match self {
            PartBody::Bytes(b) => reqwest::Body::from(b.clone()),
            PartBody::Stream {
                source,
                offset,
                len,
            } => {
                let state = (source.clone(), *offset, *len);
                let chunks = futures::stream::try_unfold(state, |(source, off, left)| async move {
                    if left == 0 {
                        return Ok::<_, std::io::Error>(None);
                    }
                    let n = left.min(source.chunk_len() as u64);
                    let s = source.clone();
                    let buf = tokio::task::spawn_blocking(move || s.read_chunk(off, n as usize))
                        .await
                        .map_err(std::io::Error::other)??;
                    Ok(Some((buf, (source, off + n, left - n))))
                });
                reqwest::Body::wrap_stream(chunks)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_file_reads_exact_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..3 * PlainFile::CHUNK + 7).map(|i| i as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let f = PlainFile::open(&path).unwrap();
        assert_eq!(f.size().unwrap(), data.len() as u64);
        assert_eq!(&f.read_small(5, 10).unwrap()[..], &data[5..15]);
        let c = f
            .read_chunk(PlainFile::CHUNK as u64, f.chunk_len())
            .unwrap();
        assert_eq!(&c[..], &data[PlainFile::CHUNK..2 * PlainFile::CHUNK]);
        assert!(f.read_small(data.len() as u64 - 3, 4).is_err());
    }
}
