//! The FUSE-free core (`SmhFs`) driven directly against a real `smhfs serve`:
//! the behaviour the adapter only translates, without a kernel in the loop.

use crate::common;
use crate::common::mount;

use std::ffi::OsStr;
use std::sync::Arc;

use common::TestServer;
use mount::*;
use smhfs::fs::cache::Kind;
use smhfs::fs::core::InodeNo;
use smhfs::fs::SmhFs;
use smhfs::smh::{ConflictStrategy, SmhPath};

const ROOT: InodeNo = InodeNo::ROOT;

fn core(server: &TestServer, conflict: ConflictStrategy, cache: &std::path::Path) -> Arc<SmhFs> {
    Arc::new(SmhFs::new(
        client_for(server),
        common::core_config(SmhPath::root(), conflict, cache),
    ))
}

async fn write_file(fs: &SmhFs, name: &str, data: &[u8]) -> Result<InodeNo, smhfs::fs::FsError> {
    let (attr, fh) = fs
        .create(ROOT, OsStr::new(name), Default::default())
        .await?;
    fs.write(fh, 0, data).await?;
    let r = fs.flush(fh).await;
    fs.release(fh).await.ok();
    r.map(|_| attr.ino)
}

#[tokio::test(flavor = "multi_thread")]
async fn rename_strategy_upload_moves_the_inode() {
    let server = TestServer::start();
    let cache = tempfile::tempdir().unwrap();
    let fs = core(&server, ConflictStrategy::Rename, cache.path());
    write_file(&fs, "a.txt", b"one").await.unwrap();
    let ino = write_file(&fs, "a.txt", b"two").await.unwrap();
    // The second content lives under the server's name, and the inode follows it.
    let attr = fs.lookup(ROOT, OsStr::new("a (1).txt")).await.unwrap();
    assert_eq!(attr.ino, ino);
    assert_eq!(attr.meta.size, 3);
    let fh = fs.open(ino, false, false).await.unwrap();
    assert_eq!(&fs.read(fh, 0, 10).await.unwrap()[..], b"two");
    fs.release(fh).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn unlinked_open_file_is_never_uploaded() {
    let server = TestServer::start();
    let cache = tempfile::tempdir().unwrap();
    let fs = core(&server, ConflictStrategy::Overwrite, cache.path());
    let (_, fh) = fs
        .create(ROOT, OsStr::new("tmp"), Default::default())
        .await
        .unwrap();
    fs.write(fh, 0, b"scratch").await.unwrap();
    // Listed while local-only.
    let dfh = fs.opendir(ROOT).unwrap();
    let items = fs.readdir(ROOT, dfh, 0).await.unwrap();
    assert!(items
        .iter()
        .any(|i| i.name == "tmp" && i.kind == Kind::File));
    fs.releasedir(dfh);
    fs.unlink(ROOT, OsStr::new("tmp")).await.unwrap();
    fs.flush(fh).await.unwrap();
    fs.release(fh).await.unwrap();
    let client = client_for(&server);
    assert!(client.head_file(&p("tmp")).await.unwrap().is_none());
    assert_eq!(
        std::fs::read_dir(cache.path()).unwrap().count(),
        0,
        "staged file removed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn truncate_by_path_uploads_at_once() {
    let server = TestServer::start();
    let cache = tempfile::tempdir().unwrap();
    let fs = core(&server, ConflictStrategy::Overwrite, cache.path());
    let ino = write_file(&fs, "t.bin", &[7u8; 5000]).await.unwrap();
    let attr = fs.setattr(ino, Some(10), Default::default()).await.unwrap();
    assert_eq!(attr.meta.size, 10);
    let client = client_for(&server);
    assert_eq!(
        client.head_file(&p("t.bin")).await.unwrap().unwrap().size,
        10
    );
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn ask_mode_refuses_writes_to_existing_files() {
    let server = TestServer::start();
    let cache = tempfile::tempdir().unwrap();
    let fs = core(&server, ConflictStrategy::Ask, cache.path());
    let ino = write_file(&fs, "k", b"keep").await.unwrap();
    let e = fs.open(ino, true, false).await.unwrap_err();
    assert_eq!(e.errno(), libc::EEXIST);
    let e = fs
        .setattr(ino, Some(0), Default::default())
        .await
        .unwrap_err();
    assert_eq!(e.errno(), libc::EEXIST);
    let e = write_file(&fs, "k", b"new").await.unwrap_err();
    assert_eq!(e.errno(), libc::EEXIST);
    // Reading stays allowed.
    let fh = fs.open(ino, false, false).await.unwrap();
    assert_eq!(&fs.read(fh, 0, 10).await.unwrap()[..], b"keep");
    fs.release(fh).await.unwrap();
}
