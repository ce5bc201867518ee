//! Reference-model property test of the FUSE-free core, after
//! mountpoint-s3's `reftests`: proptest draws sequences of file operations
//! (create, write at an offset, truncate, rename, unlink, fsync, close,
//! reopen, remount, crash, server restart, injected faults), runs them on
//! `SmhFs` against a real `smhfs serve` and on a simple in-memory model,
//! and compares every read, every name and size, and the server's final
//! content.
//!
//! - [`ops`]: the operations and their generators;
//! - [`model`]: the reference (names -> file objects -> bytes, handles);
//! - [`sut`]: the adapter, the one place that calls the core;
//! - [`harness`]: runs a case on both and compares.
//!
//! A failure prints the shrunk operation list; keep it below as a
//! `regression_<what>` test (proptest's persistence file is off: the
//! named tests are the record).
//!
//! `PROPTEST_CASES=N` changes the number of cases (default 256);
//! `RT_DEBUG=1` prints the server's root files after every operation.
//! Open bugs of the core are listed once, in `Harness::known_bug`: random
//! cases step around them, their `#[ignore]`d regressions replay them.

mod harness;
mod model;
mod ops;
mod sut;

use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::common::TestServer;
use harness::run_case;
use ops::Op::{self, *};
use ops::Stage;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

#[test]
fn reference_model_random_sequences() {
    let server = std::cell::RefCell::new(TestServer::start());
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 300,
        max_shrink_time: 120_000,
        ..Config::default()
    });
    let started = std::time::Instant::now();
    let result = runner.run(&ops::case(), |(write_back, ops)| {
        let mut server = server.borrow_mut();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_case(&mut server, write_back, &ops, false)
        }))
        .map_err(|e| {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            TestCaseError::fail(msg)
        })
    });
    let n = |c: &std::sync::atomic::AtomicUsize| c.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "reference model: {} cases in {:.1} s; {} operations run, {} skipped for known bugs, {} uploads failed on purpose",
        cases(),
        started.elapsed().as_secs_f64(),
        n(&harness::RUN),
        n(&harness::SKIPPED),
        n(&harness::EIO_SEEN),
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Replays a kept case on a fresh server, known bugs included.
fn replay(write_back: bool, ops: &[Op]) {
    let mut server = TestServer::start();
    run_case(&mut server, write_back, ops, true);
}

#[test]
fn regression_smoke_every_op() {
    replay(
        false,
        &[
            Create { name: "a" },
            Write {
                h: 0,
                offset: 3,
                len: 10,
                seed: 1,
            },
            Fsync { h: 0 },
            Truncate { h: 0, size: 5 },
            Close { h: 0 },
            Open {
                name: "a",
                write: true,
                truncate: false,
            },
            Rename { from: "a", to: "b" },
            Read {
                h: 0,
                offset: 0,
                len: 100,
            },
            FailUpload {
                h: 0,
                stage: Stage::Part,
                close: true,
            },
            RestartServer,
            TruncatePath { name: "b", size: 2 },
            Remount { crash: true },
            Unlink { name: "b" },
        ],
    );
}

/// Found by breaking the core on purpose (setattr(size) not marking the
/// file dirty): a truncate after an fsync must reach the server.
#[test]
fn regression_truncate_after_fsync_is_uploaded() {
    replay(
        false,
        &[
            Create { name: "a" },
            Fsync { h: 0 },
            Truncate { h: 0, size: 1 },
            Read {
                h: 0,
                offset: 0,
                len: 1,
            },
        ],
    );
}

#[test]
fn regression_truncate_of_unlinked_open_file() {
    replay(
        false,
        &[
            Create { name: "a" },
            Create { name: "d" },
            Create { name: "a" },
            Unlink { name: "d" },
            Truncate { h: 7, size: 0 },
        ],
    );
}

#[test]
fn regression_rename_missing_onto_itself() {
    replay(false, &[Rename { from: "b", to: "b" }]);
}

#[test]
fn regression_rename_onto_open_file() {
    replay(
        false,
        &[
            Create { name: "d" },
            Create { name: "b" },
            Rename { from: "d", to: "b" },
        ],
    );
}

#[test]
fn regression_rename_of_file_recreated_over_server_file() {
    replay(
        false,
        &[
            Create { name: "d" },
            Close { h: 0 },
            Create { name: "d" },
            Rename { from: "d", to: "a" },
        ],
    );
}

/// Fixed by the open-file state machine: unlinked content is never journaled.
#[test]
fn regression_write_to_unlinked_file_leaves_journal_entry() {
    replay(
        false,
        &[
            Create { name: "c" },
            Unlink { name: "c" },
            Write {
                h: 0,
                offset: 778_456,
                len: 270_121,
                seed: 0,
            },
        ],
    );
}

#[test]
fn regression_local_file_renamed_over_server_file_and_away() {
    replay(
        false,
        &[
            Create { name: "b" },
            Close { h: 0 },
            Create { name: "c" },
            Rename { from: "c", to: "b" },
            Rename { from: "b", to: "c" },
        ],
    );
}

#[test]
fn regression_read_of_unlinked_open_file() {
    replay(
        false,
        &[
            Create { name: "b" },
            Close { h: 0 },
            Open {
                name: "b",
                write: false,
                truncate: false,
            },
            Unlink { name: "b" },
            Read {
                h: 0,
                offset: 0,
                len: 1,
            },
        ],
    );
}

/// Found once the known-bug skips were gone: a rename released the file's
/// lock before the server move, so its background upload (write-back)
/// went to the old name and the new one kept the older content.
#[test]
fn regression_rename_of_pending_file_races_its_upload() {
    replay(
        true,
        &[
            Create { name: "b" },
            Truncate { h: 0, size: 0 },
            Remount { crash: true },
            TruncatePath {
                name: "b",
                size: 4401,
            },
            Rename { from: "b", to: "d" },
            Open {
                name: "d",
                write: false,
                truncate: false,
            },
            Fsync { h: 3 },
        ],
    );
}
