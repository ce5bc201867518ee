//! The operations a test case is made of, and how proptest draws them.
//! Handles are picked by index modulo the open handles (none open: the
//! operation is skipped), names from a small pool so that they collide.

use proptest::prelude::*;

/// Names used by every case: few, so creates, renames and unlinks meet.
pub const NAMES: &[&str] = &["a", "b", "c", "d"];

const MIB: u64 = 1 << 20;

/// Where an injected upload failure hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Begin,
    Part,
    Confirm,
}

impl Stage {
    /// The server's fault spec failing every request of this stage.
    pub fn fault(self) -> &'static str {
        match self {
            Stage::Begin => "begin:500:100%",
            Stage::Part => "part:503:100%",
            Stage::Confirm => "confirm:503:100%",
        }
    }
}

#[derive(Debug, Clone)]
pub enum Op {
    /// open(O_CREAT|O_TRUNC|O_RDWR).
    Create {
        name: &'static str,
    },
    /// open(2) of an existing name (a reopen).
    Open {
        name: &'static str,
        write: bool,
        truncate: bool,
    },
    /// pwrite(2) of `len` bytes (made from `seed`) at `offset`.
    Write {
        h: usize,
        offset: u64,
        len: usize,
        seed: u8,
    },
    /// pread(2), compared with the model.
    Read {
        h: usize,
        offset: u64,
        len: usize,
    },
    /// ftruncate(2).
    Truncate {
        h: usize,
        size: u64,
    },
    /// truncate(2) of a name.
    TruncatePath {
        name: &'static str,
        size: u64,
    },
    Rename {
        from: &'static str,
        to: &'static str,
    },
    Unlink {
        name: &'static str,
    },
    Fsync {
        h: usize,
    },
    /// close(2): flush + release.
    Close {
        h: usize,
    },
    /// Every handle closed, then unmounted (uploads drained) or crashed
    /// (runtime stopped), and mounted again over the same cache dir.
    Remount {
        crash: bool,
    },
    /// `smhfs serve` stopped and started on the same data and port.
    RestartServer,
    /// The next `count` requests to `target` fail with `status`; the
    /// client's retries must absorb it.
    Fault {
        target: &'static str,
        status: u16,
        count: u8,
    },
    /// fsync (or close) while every request of `stage` fails: EIO, and the
    /// data is kept and uploaded once the server is well again.
    FailUpload {
        h: usize,
        stage: Stage,
        close: bool,
    },
}

/// The bytes of a write: varied, so misplaced ranges show.
pub fn data(len: usize, seed: u8) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut out = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed.into()).fill_bytes(&mut out);
    out
}

fn name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(NAMES)
}

/// Mostly small offsets; sometimes past the in-memory limit (1 MiB) and
/// the part size (1 MiB), so staged files and multipart uploads happen.
fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![8 => 0..16_384u64, 1 => 0..(2 * MIB + MIB / 2)]
}

fn len() -> impl Strategy<Value = usize> {
    prop_oneof![6 => 1..4096usize, 1 => 1..300_000usize]
}

fn size() -> impl Strategy<Value = u64> {
    prop_oneof![2 => Just(0u64), 6 => 0..16_384u64, 1 => 0..(2 * MIB + MIB / 2)]
}

fn fault() -> impl Strategy<Value = Op> {
    (
        prop::sample::select(
            &[
                ("api", 503u16),
                ("api", 429),
                ("begin", 500),
                ("part", 503),
                ("confirm", 503),
                ("download", 503),
            ][..],
        ),
        1..=2u8,
    )
        .prop_map(|((target, status), count)| Op::Fault {
            target,
            status,
            count,
        })
}

fn stage() -> impl Strategy<Value = Stage> {
    prop_oneof![Just(Stage::Begin), Just(Stage::Part), Just(Stage::Confirm)]
}

pub fn op() -> impl Strategy<Value = Op> {
    let h = 0..8usize;
    prop_oneof![
        6 => name().prop_map(|name| Op::Create { name }),
        4 => (name(), any::<bool>(), prop::bool::weighted(0.2))
            .prop_map(|(name, write, truncate)| Op::Open { name, write, truncate }),
        12 => (h.clone(), offset(), len(), any::<u8>())
            .prop_map(|(h, offset, len, seed)| Op::Write { h, offset, len, seed }),
        5 => (h.clone(), offset(), len()).prop_map(|(h, offset, len)| Op::Read { h, offset, len }),
        3 => (h.clone(), size()).prop_map(|(h, size)| Op::Truncate { h, size }),
        2 => (name(), size()).prop_map(|(name, size)| Op::TruncatePath { name, size }),
        3 => (name(), name()).prop_map(|(from, to)| Op::Rename { from, to }),
        2 => name().prop_map(|name| Op::Unlink { name }),
        3 => h.clone().prop_map(|h| Op::Fsync { h }),
        7 => h.clone().prop_map(|h| Op::Close { h }),
        1 => any::<bool>().prop_map(|crash| Op::Remount { crash }),
        1 => Just(Op::RestartServer),
        2 => fault(),
        2 => (h, stage(), any::<bool>())
            .prop_map(|(h, stage, close)| Op::FailUpload { h, stage, close }),
    ]
}

/// One case: write-back or close-synchronous mount, and 1..=40 operations.
pub fn case() -> impl Strategy<Value = (bool, Vec<Op>)> {
    (
        prop::bool::weighted(0.25),
        prop::collection::vec(op(), 1..=40),
    )
}
