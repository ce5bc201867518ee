//! Symlinks, FIFOs, sockets and devices through a real mount: strings
//! round-trip exactly (also in a new mount process), what the server
//! stores for them, and files of other clients with unusable modes.

use crate::common;
use crate::common::mount;

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::time::Duration;

use common::http;
use common::TestServer;
use mount::*;
use smhfs::smh::{ContentHashes, UploadOptions};

/// `S_IFLNK | 0777`, as the server stores an encoded link's mode.
const LINK_MODE: &str = "41471";

fn errno_of(rc: i32) -> Option<i32> {
    assert_eq!(rc, -1, "the call succeeded");
    std::io::Error::last_os_error().raw_os_error()
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn mknod(p: &Path, mode: u32, dev: libc::dev_t) -> i32 {
    let c = cpath(p);
    // SAFETY: `c` is a NUL-terminated path alive for the call.
    unsafe { libc::mknod(c.as_ptr(), mode, dev) }
}

fn readlink(p: &Path) -> Vec<u8> {
    fs::read_link(p)
        .unwrap_or_else(|e| panic!("readlink {}: {e}", p.display()))
        .into_os_string()
        .into_vec()
}

use std::os::unix::ffi::OsStringExt;

/// The link strings every test writes: (name, string).
fn strings() -> Vec<(&'static str, Vec<u8>)> {
    let long: Vec<u8> = "seg/".repeat(1023).into_bytes(); // 4092 bytes
    vec![
        ("abs", b"/etc/passwd".to_vec()),
        ("native", b"../a/b.txt".to_vec()),
        ("dangling", b"nowhere/at/all".to_vec()),
        ("todir", b"../a".to_vec()),
        ("leaving", b"../../../../outside/x".to_vec()),
        ("unnormal", b"./../a//b.txt/".to_vec()),
        ("odd", "x y\t%41 #?&+ü\\*".as_bytes().to_vec()),
        ("bytes", vec![b'n', 0xff, 0xfe, b'x']),
        ("long", long),
    ]
}

fn check_links(m: &MountGuard) {
    for (name, s) in strings() {
        let p = m.path(&format!("l/{name}"));
        assert_eq!(readlink(&p), s, "{name}");
        let md = fs::symlink_metadata(&p).unwrap();
        assert!(md.file_type().is_symlink(), "{name}");
        assert_eq!(md.mode() & 0o7777, 0o777, "{name}");
        if name != "native" {
            assert_eq!(md.len(), s.len() as u64, "{name}");
        }
    }
    let out = sh(&format!("stat -c %F {}", m.path("l/abs").display()));
    assert_eq!(out.trim(), "symbolic link");
    let out = sh(&format!("ls -l {}", m.path("l").display()));
    assert!(out.contains("abs -> /etc/passwd"), "{out}");
    // The kernel follows them.
    assert_eq!(fs::read(m.path("l/native")).unwrap(), b"target bytes");
    assert_eq!(
        fs::read(m.path("l/abs")).unwrap(),
        fs::read("/etc/passwd").unwrap()
    );
    assert!(fs::metadata(m.path("l/todir")).unwrap().is_dir());
    assert_eq!(
        fs::metadata(m.path("l/dangling"))
            .unwrap_err()
            .raw_os_error(),
        Some(libc::ENOENT)
    );
    let mut kinds: Vec<(String, bool)> = fs::read_dir(m.path("l"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let link = e.file_type().unwrap().is_symlink();
            (e.file_name().to_string_lossy().into_owned(), link)
        })
        .collect();
    kinds.sort();
    assert_eq!(kinds.len(), strings().len());
    assert!(kinds.iter().all(|(_, link)| *link), "{kinds:?}");
}

#[tokio::test]
async fn symlink_strings_round_trip_across_remounts() {
    let server = TestServer::start();
    let tok = server.token().await;
    {
        let m = MountGuard::new(&server, "");
        fs::create_dir_all(m.path("a")).unwrap();
        fs::write(m.path("a/b.txt"), b"target bytes").unwrap();
        fs::create_dir(m.path("l")).unwrap();
        for (name, s) in strings() {
            let target = std::ffi::OsStr::from_bytes(&s);
            std::os::unix::fs::symlink(target, m.path(&format!("l/{name}")))
                .unwrap_or_else(|e| panic!("symlink {name}: {e}"));
        }
        check_links(&m);
    }
    // A new mount process knows only what the server stored.
    let m = MountGuard::new(&server, "");
    check_links(&m);
    // An encoded link is a file holding exactly the string, marked by mode.
    assert_eq!(http::download(&server, &tok, "l/abs").await, b"/etc/passwd");
    assert_eq!(
        http::download(&server, &tok, "l/bytes").await,
        vec![b'n', 0xff, 0xfe, b'x']
    );
    let client = client_for(&server);
    let info = client.stat(&p("l/abs")).await.unwrap().unwrap();
    assert_eq!(
        info.meta_data.unwrap().get("mode").map(String::as_str),
        Some(LINK_MODE)
    );
    for name in ["dangling", "todir", "unnormal", "leaving"] {
        let info = client
            .stat(&p(&format!("l/{name}")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(info.kind, smhfs::smh::types::EntryType::File, "{name}");
    }
    // The canonical relative link to an existing file is an SMH symlink.
    let info = client.stat(&p("l/native")).await.unwrap().unwrap();
    assert_eq!(info.kind, smhfs::smh::types::EntryType::Symlink);
}

#[tokio::test]
async fn links_are_renamed_unlinked_and_refused_like_files() {
    let server = TestServer::start();
    let m = MountGuard::new(&server, "");
    let client = client_for(&server);
    fs::write(m.path("f"), b"f").unwrap();
    std::os::unix::fs::symlink("/some/where", m.path("l1")).unwrap();
    fs::create_dir(m.path("d")).unwrap();
    fs::rename(m.path("l1"), m.path("d/l2")).unwrap();
    assert_eq!(readlink(&m.path("d/l2")), b"/some/where");
    assert!(client.stat(&p("l1")).await.unwrap().is_none());
    assert!(client.stat(&p("d/l2")).await.unwrap().is_some());
    // A link replaces a file by rename, and is replaced by one.
    fs::rename(m.path("d/l2"), m.path("f")).unwrap();
    assert_eq!(readlink(&m.path("f")), b"/some/where");
    fs::write(m.path("g"), b"g").unwrap();
    fs::rename(m.path("g"), m.path("f")).unwrap();
    assert!(fs::symlink_metadata(m.path("f")).unwrap().is_file());
    std::os::unix::fs::symlink("f", m.path("l3")).unwrap();
    fs::remove_file(m.path("l3")).unwrap();
    assert!(fs::symlink_metadata(m.path("l3")).is_err());
    assert!(client.stat(&p("l3")).await.unwrap().is_none());
    // Errors as POSIX has them.
    let e = std::os::unix::fs::symlink("x", m.path("f")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
    let e = std::os::unix::fs::symlink("x", m.path("d")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
    let e = std::os::unix::fs::symlink("", m.path("empty")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    let e = std::os::unix::fs::symlink("x", m.path("bad\nname")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    let e = fs::hard_link(m.path("f"), m.path("hard")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM));
    let e = fs::read_link(m.path("f")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    // Making or removing an entry is a change of its directory (POSIX).
    fs::read_dir(&m.mnt).unwrap().for_each(drop); // listing cached
    let before = fs::metadata(m.path("d")).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    std::os::unix::fs::symlink("x", m.path("d/new")).unwrap();
    let after = fs::metadata(m.path("d")).unwrap().modified().unwrap();
    assert!(after > before, "{before:?} -> {after:?}");
    assert!(client.stat(&p("empty")).await.unwrap().is_none());
}

#[tokio::test]
async fn fifos_sockets_and_devices_keep_type_and_rdev() {
    let server = TestServer::start();
    let tok = server.token().await;
    {
        let m = MountGuard::new(&server, "");
        let c = cpath(&m.path("fifo"));
        // SAFETY: `c` is a NUL-terminated path alive for the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o640) }, 0);
        assert_eq!(
            mknod(&m.path("chr"), libc::S_IFCHR | 0o600, libc::makedev(1, 2)),
            0
        );
        assert_eq!(
            mknod(
                &m.path("blk"),
                libc::S_IFBLK | 0o660,
                libc::makedev(259, 70000)
            ),
            0
        );
        let _l = std::os::unix::net::UnixListener::bind(m.path("sock")).unwrap();
        // Regular mknod stays a regular (uploaded) file.
        assert_eq!(mknod(&m.path("reg"), libc::S_IFREG | 0o644, 0), 0);
        assert_eq!(
            errno_of(mknod(&m.path("fifo"), libc::S_IFIFO | 0o644, 0)),
            Some(libc::EEXIST)
        );
        // Data through the FIFO is the kernel's: it never reaches the server.
        let fifo = m.path("fifo");
        let w = std::thread::spawn(move || fs::write(fifo, b"ping").unwrap());
        assert_eq!(fs::read(m.path("fifo")).unwrap(), b"ping");
        w.join().unwrap();
    }
    let m = MountGuard::new(&server, "");
    let md = fs::symlink_metadata(m.path("fifo")).unwrap();
    assert!(md.file_type().is_fifo());
    assert_eq!(md.mode() & 0o7777, 0o640 & !0o022);
    let md = fs::symlink_metadata(m.path("chr")).unwrap();
    assert!(md.file_type().is_char_device());
    assert_eq!(md.rdev(), libc::makedev(1, 2));
    let md = fs::symlink_metadata(m.path("blk")).unwrap();
    assert!(md.file_type().is_block_device());
    assert_eq!(
        (libc::major(md.rdev()), libc::minor(md.rdev())),
        (259, 70000)
    );
    assert!(fs::symlink_metadata(m.path("sock"))
        .unwrap()
        .file_type()
        .is_socket());
    assert!(fs::symlink_metadata(m.path("reg")).unwrap().is_file());
    let out = sh(&format!("stat -c %F {}", m.path("fifo").display()));
    assert_eq!(out.trim(), "fifo");
    // readdir's d_type says so too.
    let fifo_entry = fs::read_dir(&m.mnt)
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.file_name() == "fifo")
        .unwrap();
    assert!(fifo_entry.file_type().unwrap().is_fifo());
    // On the server: empty files with the type in their mode.
    assert_eq!(http::download(&server, &tok, "fifo").await, b"");
    let info = client_for(&server).stat(&p("chr")).await.unwrap().unwrap();
    let meta = info.meta_data.unwrap();
    assert_eq!(
        meta.get("mode").map(String::as_str),
        Some((libc::S_IFCHR | 0o600).to_string().as_str())
    );
    assert_eq!(meta.get("rdev").map(String::as_str), Some("258"));
    fs::remove_file(m.path("fifo")).unwrap();
    fs::rename(m.path("chr"), m.path("chr2")).unwrap();
    assert!(fs::symlink_metadata(m.path("chr2"))
        .unwrap()
        .file_type()
        .is_char_device());
}

#[tokio::test]
async fn unusable_modes_from_other_clients_are_plain_files() {
    let server = TestServer::start();
    let client = client_for(&server);
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("words", "rwxr-xr-x", b"a".to_vec()),
        ("negative", "-1", b"b".to_vec()),
        ("huge", "99999999999999999999", b"c".to_vec()),
        ("emptylink", LINK_MODE, Vec::new()),
        ("biglink", LINK_MODE, vec![b'x'; 5000]),
        ("fullfifo", "4516", b"data".to_vec()), // S_IFIFO|0644 with content
        ("dirfile", "16877", b"d".to_vec()),    // S_IFDIR|0755 on a file
        ("badtype", "12708", b"e".to_vec()),    // 0o030644: no such type
    ];
    for (name, mode, data) in &cases {
        let mut opts = UploadOptions::default();
        opts.meta.insert("mode".into(), mode.to_string());
        opts.meta.insert("rdev".into(), "banana".into());
        client
            .upload_bytes(
                &p(name),
                data.clone().into(),
                ContentHashes::of(data),
                &opts,
            )
            .await
            .unwrap();
    }
    let m = MountGuard::new(&server, "");
    for (name, _, data) in &cases {
        let md = fs::symlink_metadata(m.path(name)).unwrap();
        assert!(md.is_file(), "{name}: {:?}", md.file_type());
        assert_eq!(fs::read(m.path(name)).unwrap(), *data, "{name}");
    }
    // A link written by another client the same way is a link.
    let mut opts = UploadOptions::default();
    opts.meta.insert("mode".into(), LINK_MODE.into());
    client
        .upload_bytes(
            &p("theirs"),
            b"a/b".to_vec().into(),
            ContentHashes::of(b"a/b"),
            &opts,
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(readlink(&m.path("theirs")), b"a/b");
    assert!(m.is_mounted());
}

/// A native link points at its target's node: it follows moves (readlink
/// shows the new relative path), keeps its own string when it is moved
/// itself (then becoming an encoded link if need be), and reads EIO once
/// the target is deleted.
#[tokio::test]
async fn native_links_follow_their_target() {
    use smhfs::smh::types::EntryType;
    let server = TestServer::start();
    let client = client_for(&server);
    let m = MountGuard::new(&server, "attr_timeout=1");
    fs::create_dir_all(m.path("a")).unwrap();
    fs::create_dir_all(m.path("l")).unwrap();
    fs::write(m.path("a/t.txt"), b"T").unwrap();
    std::os::unix::fs::symlink("../a/t.txt", m.path("l/n")).unwrap();
    let kind = |path: &'static str| {
        let c = client.clone();
        async move { c.stat(&p(path)).await.unwrap().unwrap().kind }
    };
    assert_eq!(kind("l/n").await, EntryType::Symlink);
    assert_eq!(fs::symlink_metadata(m.path("l/n")).unwrap().len(), 10);
    assert_eq!(fs::read(m.path("l/n")).unwrap(), b"T");
    // Moved by another client: the link follows.
    client
        .create_dir(&p("b"), smhfs::smh::ConflictStrategy::Ask)
        .await
        .unwrap();
    client
        .move_file(
            &p("a/t.txt"),
            &p("b/t.txt"),
            smhfs::smh::ConflictStrategy::Ask,
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(readlink(&m.path("l/n")), b"../b/t.txt");
    assert_eq!(fs::read(m.path("l/n")).unwrap(), b"T");
    // Moved through this mount: shown at once.
    fs::rename(m.path("b/t.txt"), m.path("a/t2.txt")).unwrap();
    assert_eq!(readlink(&m.path("l/n")), b"../a/t2.txt");
    // Overwritten: the link reads the new content.
    fs::write(m.path("a/t2.txt"), b"new").unwrap();
    assert_eq!(fs::read(m.path("l/n")).unwrap(), b"new");
    // The link renamed in its directory stays native; moved to another
    // one, it keeps its string (POSIX) and so becomes an encoded link.
    fs::rename(m.path("l/n"), m.path("l/n2")).unwrap();
    assert_eq!(kind("l/n2").await, EntryType::Symlink);
    assert_eq!(readlink(&m.path("l/n2")), b"../a/t2.txt");
    fs::rename(m.path("l/n2"), m.path("a/moved")).unwrap();
    assert_eq!(readlink(&m.path("a/moved")), b"../a/t2.txt");
    assert_eq!(kind("a/moved").await, EntryType::File);
    assert_eq!(
        http::download(&server, &server.token().await, "a/moved").await,
        b"../a/t2.txt"
    );
    assert_eq!(fs::read(m.path("a/moved")).unwrap(), b"new");
    // The target deleted: the SMH link dangles. This mount still reads
    // the last string (following it: ENOENT, as POSIX has it); a mount
    // that never knew it has none (EIO).
    std::os::unix::fs::symlink("../a/t2.txt", m.path("l/d")).unwrap();
    assert_eq!(kind("l/d").await, EntryType::Symlink);
    fs::remove_file(m.path("a/t2.txt")).unwrap();
    assert_eq!(readlink(&m.path("l/d")), b"../a/t2.txt");
    let e = fs::metadata(m.path("l/d")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    {
        let m2 = MountGuard::new(&server, "");
        let e = fs::read_link(m2.path("l/d")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO));
        assert!(fs::symlink_metadata(m2.path("l/d")).unwrap().is_symlink());
    }
    fs::remove_file(m.path("l/d")).unwrap();
    assert!(client.stat(&p("l/d")).await.unwrap().is_none());
    // A link to a file still being written here is encoded.
    let f = fs::File::create(m.path("a/open.txt")).unwrap();
    std::os::unix::fs::symlink("open.txt", m.path("a/lo")).unwrap();
    drop(f);
    assert_eq!(kind("a/lo").await, EntryType::File);
    assert_eq!(readlink(&m.path("a/lo")), b"open.txt");
}

/// Tools that carry links: a tar archive extracted into the mount, and
/// `cp -a` back out, give the same tree (`diff -r --no-dereference`);
/// in a mount of a subdirectory, only links inside it are native.
#[tokio::test]
async fn tar_and_cp_keep_links_in_a_subdirectory_mount() {
    use smhfs::smh::types::EntryType;
    let server = TestServer::start();
    let client = client_for(&server);
    client
        .create_dir(&p("sub"), smhfs::smh::ConflictStrategy::Ask)
        .await
        .unwrap();
    let m = MountGuard::try_new(&server, "/sub", "").unwrap();
    let src = tempfile::tempdir().unwrap();
    let tree = src.path().join("tree");
    sh(&format!(
        "mkdir -p {t}/d && echo data > {t}/d/f && ln -s d/f {t}/rel && ln -s /etc/hostname {t}/abs \
         && ln -s d {t}/dirlink && ln -s missing {t}/dangling && mkfifo {t}/pipe \
         && tar -C {t} -cf {a} .",
        t = tree.display(),
        a = src.path().join("t.tar").display()
    ));
    sh(&format!(
        "mkdir {x} && tar -C {x} -xf {a}",
        x = m.path("x").display(),
        a = src.path().join("t.tar").display()
    ));
    assert_eq!(readlink(&m.path("x/rel")), b"d/f");
    assert_eq!(fs::read(m.path("x/rel")).unwrap(), b"data\n");
    // (tar may make a link before its target: then it is encoded.)
    std::os::unix::fs::symlink("d/f", m.path("x/rel2")).unwrap();
    assert_eq!(readlink(&m.path("x/rel2")), b"d/f");
    assert_eq!(
        client.stat(&p("sub/x/rel2")).await.unwrap().unwrap().kind,
        EntryType::Symlink
    );
    fs::remove_file(m.path("x/rel2")).unwrap();
    assert_eq!(
        client.stat(&p("sub/x/abs")).await.unwrap().unwrap().kind,
        EntryType::File
    );
    // Leaving the mounted directory (even to come back): encoded.
    std::os::unix::fs::symlink("../../sub/x/d/f", m.path("x/back")).unwrap();
    assert_eq!(
        client.stat(&p("sub/x/back")).await.unwrap().unwrap().kind,
        EntryType::File
    );
    fs::remove_file(m.path("x/back")).unwrap();
    let out = src.path().join("out");
    sh(&format!(
        "cp -a {} {}",
        m.path("x").display(),
        out.display()
    ));
    assert!(fs::symlink_metadata(out.join("pipe"))
        .unwrap()
        .file_type()
        .is_fifo());
    // diff cannot compare FIFOs.
    fs::remove_file(out.join("pipe")).unwrap();
    fs::remove_file(tree.join("pipe")).unwrap();
    sh(&format!(
        "diff -r --no-dereference {} {}",
        tree.display(),
        out.display()
    ));
}
