use std::os::unix::fs::symlink;

use super::super::tests::path_str;
use super::*;
use crate::fs::{EntryKind, FileSystem};

fn mode_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Names in `dir`, sorted (to see that no temporary file was left behind).
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn creates_and_reads_back_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let fs = LocalFs::new(dir.path().to_owned());
    let file = dir.path().join("db.db/t/p=1/part-0");
    let path = path_str(&file);
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();

    fs.create(&path, Bytes::from(data.clone()), false, None)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), data);
    assert_eq!(mode_of(&file), 0o644, "WebHDFS default, no umask");
    assert_eq!(mode_of(&dir.path().join("db.db/t")), 0o755);
    assert_eq!(names_in(file.parent().unwrap()), ["part-0"]);

    let read = |offset, length| fs.read_range(&path, offset, length);
    assert_eq!(read(0, 3000).await.unwrap(), data);
    assert_eq!(read(0, 10_000).await.unwrap(), data);
    assert_eq!(read(100, 7).await.unwrap(), data[100..107]);
    assert_eq!(read(2990, 100).await.unwrap(), data[2990..]);
    assert!(read(3000, 5).await.unwrap().is_empty(), "offset == length");
    assert!(read(5, 0).await.unwrap().is_empty());
    let err = read(3001, 1).await.unwrap_err();
    assert!(matches!(err, FsError::Io { .. }), "{err}");

    let empty = path_str(&dir.path().join("empty"));
    fs.create(&empty, Bytes::new(), false, Some(0o600))
        .await
        .unwrap();
    assert!(fs.read_range(&empty, 0, 10).await.unwrap().is_empty());
    assert_eq!(mode_of(&dir.path().join("empty")), 0o600);

    let err = fs
        .read_range(&path_str(dir.path()), 0, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, FsError::NotFound { .. }), "{err}");
    let err = fs
        .read_range(&path_str(&dir.path().join("missing")), 0, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, FsError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn create_without_overwrite_never_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let fs = LocalFs::new(dir.path().to_owned());
    let file = dir.path().join("lock");
    let path = path_str(&file);
    fs.create(&path, Bytes::from_static(b"first"), false, None)
        .await
        .unwrap();
    let err = fs
        .create(&path, Bytes::from_static(b"second"), false, None)
        .await
        .unwrap_err();
    assert!(matches!(err, FsError::AlreadyExists { ref path } if path.ends_with("lock")));
    assert_eq!(std::fs::read(&file).unwrap(), b"first");
    assert_eq!(names_in(dir.path()), ["lock"], "temporary file removed");

    // Not over a directory, nor over a dangling symlink, either.
    std::fs::create_dir(dir.path().join("d")).unwrap();
    symlink(dir.path().join("nowhere"), dir.path().join("dangling")).unwrap();
    for name in ["d", "dangling"] {
        let err = fs
            .create(&path_str(&dir.path().join(name)), Bytes::new(), false, None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, FsError::AlreadyExists { .. }),
            "{name}: {err}"
        );
    }
    assert!(!dir.path().join("nowhere").exists());

    // With overwrite: replaced (a file), refused (a directory).
    fs.create(&path, Bytes::from_static(b"third"), true, Some(0o640))
        .await
        .unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), b"third");
    assert_eq!(mode_of(&file), 0o640);
    let err = fs
        .create(&path_str(&dir.path().join("d")), Bytes::new(), true, None)
        .await
        .unwrap_err();
    assert!(matches!(err, FsError::AlreadyExists { .. }), "{err}");
    assert_eq!(names_in(dir.path()), ["d", "dangling", "lock"]);
}

#[tokio::test]
async fn concurrent_creates_without_overwrite_have_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let fs = LocalFs::new(dir.path().to_owned());
    let path = path_str(&dir.path().join("locks/merge.lock"));
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (fs, path) = (fs.clone(), path.clone());
            tokio::spawn(async move {
                fs.create(&path, Bytes::from(format!("owner {i}")), false, None)
                    .await
                    .map(|()| i)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(i) => winners.push(i),
            Err(FsError::AlreadyExists { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(winners.len(), 1);
    let content = std::fs::read_to_string(dir.path().join("locks/merge.lock")).unwrap();
    assert_eq!(content, format!("owner {}", winners[0]));
    assert_eq!(names_in(&dir.path().join("locks")), ["merge.lock"]);
}

#[tokio::test]
async fn create_from_local_moves_the_file_into_place() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("w");
    std::fs::create_dir(&root).unwrap();
    let staging = dir.path().join("staging");
    std::fs::create_dir(&staging).unwrap();
    let fs = LocalFs::new(root.clone());

    let local = staging.join("merged");
    std::fs::write(&local, b"merged data").unwrap();
    std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o600)).unwrap();
    let target = root.join("t/part-merged");
    fs.create_from_local(&path_str(&target), &local, false, None)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"merged data");
    assert_eq!(mode_of(&target), 0o644);
    assert!(!local.exists(), "moved, not copied");

    // No overwrite onto an existing file: refused, the local file stays.
    std::fs::write(&local, b"other").unwrap();
    let err = fs
        .create_from_local(&path_str(&target), &local, false, None)
        .await
        .unwrap_err();
    assert!(matches!(err, FsError::AlreadyExists { .. }), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), b"merged data");
    assert!(local.exists());

    // Overwrite: replaced by a rename.
    fs.create_from_local(&path_str(&target), &local, true, Some(0o444))
        .await
        .unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"other");
    assert_eq!(mode_of(&target), 0o444);
    assert!(!local.exists());
    assert_eq!(names_in(&root.join("t")), ["part-merged"]);

    // A missing local file or a directory is an error naming the local path.
    let err = fs
        .create_from_local(&path_str(&root.join("x")), &local, false, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, FsError::Io { ref path, .. } if path.ends_with("merged")),
        "{err}"
    );
    let err = fs
        .create_from_local(&path_str(&root.join("x")), &staging, false, None)
        .await
        .unwrap_err();
    assert!(matches!(err, FsError::Io { .. }), "{err}");
    assert!(!root.join("x").exists());
}

#[tokio::test]
async fn create_from_local_copies_across_filesystems() {
    use std::os::unix::fs::MetadataExt;
    // Needs a second filesystem: /dev/shm (tmpfs) next to the temporary directory.
    let shm = Path::new("/dev/shm");
    let dir = tempfile::tempdir().unwrap();
    let (Ok(shm_meta), Ok(dir_meta)) = (std::fs::metadata(shm), std::fs::metadata(dir.path()))
    else {
        return;
    };
    if shm_meta.dev() == dir_meta.dev() {
        eprintln!("skipped: /dev/shm is on the same filesystem");
        return;
    }
    let staging = tempfile::tempdir_in(shm).unwrap();
    let fs = LocalFs::new(dir.path().to_owned());
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    for overwrite in [false, true] {
        let local = staging.path().join("merged");
        std::fs::write(&local, &data).unwrap();
        let target = dir.path().join("t/f");
        fs.create_from_local(&path_str(&target), &local, overwrite, Some(0o640))
            .await
            .unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), data);
        assert_eq!(mode_of(&target), 0o640);
        assert!(local.exists(), "copied: the local file is left alone");
        assert_eq!(names_in(&dir.path().join("t")), ["f"]);
    }
    let local = staging.path().join("merged");
    let err = fs
        .create_from_local(&path_str(&dir.path().join("t/f")), &local, false, None)
        .await
        .unwrap_err();
    assert!(matches!(err, FsError::AlreadyExists { .. }), "{err}");
    assert_eq!(names_in(&dir.path().join("t")), ["f"]);
}

#[tokio::test]
async fn creates_stay_inside_the_root() {
    let outside = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("w");
    std::fs::create_dir(&root).unwrap();
    symlink(outside.path(), root.join("escape")).unwrap();
    std::fs::create_dir(root.join("real")).unwrap();
    symlink(root.join("real"), root.join("alias")).unwrap();
    let fs = LocalFs::new(root.clone());

    for path in [
        path_str(&root.join("escape/f")),
        path_str(&root.join("escape/new/f")),
        path_str(&root.join("../f")),
        "/etc/hsf-should-not-exist".to_owned(),
    ] {
        let err = fs
            .create(&path, Bytes::from_static(b"x"), true, None)
            .await
            .unwrap_err();
        assert!(matches!(err, FsError::OutsideRoot { .. }), "{path}: {err}");
        let err = fs.mkdirs(&path, None).await.unwrap_err();
        assert!(matches!(err, FsError::OutsideRoot { .. }), "{path}: {err}");
    }
    assert!(names_in(outside.path()).is_empty());
    assert!(!dir.path().join("f").exists());

    // A symlink to a directory inside the root is fine.
    fs.create(
        &path_str(&root.join("alias/sub/f")),
        Bytes::from_static(b"in"),
        false,
        None,
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(root.join("real/sub/f")).unwrap(), b"in");

    // Reading through a symlink is refused, wherever it points.
    symlink(root.join("real/sub/f"), root.join("link")).unwrap();
    symlink(outside.path().join("secret"), root.join("link_out")).unwrap();
    std::fs::write(outside.path().join("secret"), b"s").unwrap();
    for link in ["link", "link_out"] {
        let err = fs
            .read_range(&path_str(&root.join(link)), 0, 10)
            .await
            .unwrap_err();
        assert!(matches!(err, FsError::Io { .. }), "{link}: {err}");
    }
    let err = fs
        .read_range(&path_str(&root.join("escape/secret")), 0, 10)
        .await
        .unwrap_err();
    assert!(matches!(err, FsError::OutsideRoot { .. }), "{err}");
}

#[tokio::test]
async fn does_not_block_on_a_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let fs = LocalFs::new(dir.path().to_owned());
    let fifo = path_str(&fifo);
    let read = fs.read_range(&fifo, 0, 10);
    let err = tokio::time::timeout(std::time::Duration::from_secs(5), read)
        .await
        .expect("returns at once")
        .unwrap_err();
    assert!(matches!(err, FsError::Io { .. }), "{err}");
}

#[tokio::test]
async fn mkdirs_with_permission() {
    let dir = tempfile::tempdir().unwrap();
    let fs = LocalFs::new(dir.path().to_owned());
    let leaf = dir.path().join("a/b/c");
    fs.mkdirs(&path_str(&leaf), Some(0o750)).await.unwrap();
    assert_eq!(mode_of(&leaf), 0o750);
    assert_eq!(mode_of(&dir.path().join("a")), 0o750 | 0o300);
    let st = fs.file_status(&path_str(&leaf)).await.unwrap();
    assert_eq!((st.kind, st.permission), (EntryKind::Directory, 0o750));

    // Existing directories are fine and left alone; the root too.
    fs.mkdirs(&path_str(&leaf), Some(0o700)).await.unwrap();
    assert_eq!(mode_of(&leaf), 0o750);
    fs.mkdirs(&path_str(dir.path()), None).await.unwrap();
    fs.mkdirs(&path_str(&dir.path().join("d")), None)
        .await
        .unwrap();
    assert_eq!(mode_of(&dir.path().join("d")), 0o755);

    // A file in the way.
    std::fs::write(dir.path().join("f"), b"").unwrap();
    let err = fs
        .mkdirs(&path_str(&dir.path().join("f")), None)
        .await
        .unwrap_err();
    assert!(matches!(err, FsError::AlreadyExists { .. }), "{err}");
    let err = fs
        .mkdirs(&path_str(&dir.path().join("f/g")), None)
        .await
        .unwrap_err();
    assert!(matches!(err, FsError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn rename_never_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fs = LocalFs::new(d.to_owned());
    std::fs::write(d.join("src"), b"new").unwrap();
    std::fs::write(d.join("dst"), b"old").unwrap();
    std::fs::create_dir(d.join("empty")).unwrap();
    std::fs::create_dir(d.join("srcdir")).unwrap();
    std::fs::write(d.join("srcdir/x"), b"x").unwrap();
    let p = |name: &str| path_str(&d.join(name));

    // Onto an existing file, an existing empty directory (which `rename(2)` would
    // replace with a directory), and a file onto a directory: refused, nothing moved.
    for (src, dst) in [("src", "dst"), ("srcdir", "empty"), ("src", "empty")] {
        let err = fs.rename(&p(src), &p(dst)).await.unwrap_err();
        assert!(
            matches!(err, FsError::AlreadyExists { ref path } if *path == p(dst)),
            "{src} -> {dst}: {err}"
        );
    }
    assert_eq!(std::fs::read(d.join("src")).unwrap(), b"new");
    assert_eq!(std::fs::read(d.join("dst")).unwrap(), b"old");
    assert!(d.join("srcdir/x").exists());
    assert!(names_in(&d.join("empty")).is_empty());

    // Missing source, missing destination parent.
    let err = fs.rename(&p("missing"), &p("zz")).await.unwrap_err();
    assert!(
        matches!(err, FsError::NotFound { ref path } if *path == p("missing")),
        "{err}"
    );
    let err = fs.rename(&p("src"), &p("nope/zz")).await.unwrap_err();
    assert!(matches!(err, FsError::NotFound { .. }), "{err}");
    assert!(d.join("src").exists());

    // Successful renames: a file, and a directory into another directory.
    fs.rename(&p("src"), &p("renamed")).await.unwrap();
    assert_eq!(std::fs::read(d.join("renamed")).unwrap(), b"new");
    assert!(!d.join("src").exists());
    fs.rename(&p("srcdir"), &p("empty/moved")).await.unwrap();
    assert!(d.join("empty/moved/x").exists());

    // Repeating a rename that already happened: the source is gone.
    let err = fs.rename(&p("src"), &p("renamed")).await.unwrap_err();
    assert!(matches!(err, FsError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn rename_stays_inside_the_root() {
    let outside = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("w");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("f"), b"f").unwrap();
    symlink(outside.path(), root.join("escape")).unwrap();
    let fs = LocalFs::new(root.clone());

    for (src, dst) in [
        (path_str(&root.join("f")), path_str(&root.join("escape/f"))),
        (path_str(&root.join("f")), path_str(&dir.path().join("f"))),
        (path_str(&dir.path().join("x")), path_str(&root.join("x"))),
    ] {
        let err = fs.rename(&src, &dst).await.unwrap_err();
        assert!(matches!(err, FsError::OutsideRoot { .. }), "{src}: {err}");
    }
    let err = fs
        .rename(&path_str(&root), &path_str(&root.join("r")))
        .await
        .unwrap_err();
    assert!(matches!(err, FsError::PermissionDenied { .. }), "{err}");
    assert!(root.join("f").exists());
    assert!(names_in(outside.path()).is_empty());

    // The link itself can be renamed (what it points to is untouched).
    fs.rename(
        &path_str(&root.join("escape")),
        &path_str(&root.join("escape2")),
    )
    .await
    .unwrap();
    assert!(
        root.join("escape2")
            .symlink_metadata()
            .unwrap()
            .is_symlink()
    );
}

#[test]
fn checked_rename_fallback_refuses_existing_destinations() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("a"), b"a").unwrap();
    std::fs::create_dir(d.join("da")).unwrap();
    std::fs::create_dir(d.join("db")).unwrap();
    std::fs::write(d.join("b"), b"b").unwrap();
    for (from, to) in [("a", "b"), ("da", "db")] {
        let err = rename_checked(&d.join(from), &d.join(to)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    }
    rename_checked(&d.join("a"), &d.join("c")).unwrap();
    assert_eq!(std::fs::read(d.join("c")).unwrap(), b"a");
    rename_no_replace(&d.join("c"), &d.join("e")).unwrap();
    let err = rename_no_replace(&d.join("da"), &d.join("db")).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
}

#[tokio::test]
async fn deletes_files_directories_and_links() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep"), b"k").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fs = LocalFs::new(d.to_owned());
    let p = |name: &str| path_str(&d.join(name));
    std::fs::write(d.join("f"), b"f").unwrap();
    std::fs::create_dir(d.join("empty")).unwrap();
    std::fs::create_dir_all(d.join("tree/a/b")).unwrap();
    std::fs::write(d.join("tree/a/b/f"), b"f").unwrap();
    symlink(outside.path(), d.join("tree/out")).unwrap();
    symlink(outside.path(), d.join("link")).unwrap();

    assert!(fs.delete(&p("f"), false).await.unwrap());
    assert!(!fs.delete(&p("f"), false).await.unwrap(), "already gone");
    assert!(!fs.delete(&p("missing/deeper"), true).await.unwrap());
    assert!(fs.delete(&p("empty"), false).await.unwrap());
    let err = fs.delete(&p("tree"), false).await.unwrap_err();
    assert!(matches!(err, FsError::Io { .. }), "{err}");
    assert!(d.join("tree/a/b/f").exists());
    assert!(fs.delete(&p("tree"), true).await.unwrap());
    assert!(!d.join("tree").exists());
    assert!(fs.delete(&p("link"), true).await.unwrap());
    assert!(
        outside.path().join("keep").exists(),
        "links are not followed"
    );

    let err = fs.delete(&path_str(d), true).await.unwrap_err();
    assert!(matches!(err, FsError::PermissionDenied { .. }), "{err}");
    let err = fs
        .delete(&path_str(&outside.path().join("keep")), false)
        .await
        .unwrap_err();
    assert!(matches!(err, FsError::OutsideRoot { .. }), "{err}");
    assert!(d.exists() && outside.path().join("keep").exists());
}

#[tokio::test]
async fn sets_permission_and_owner() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("target"), b"t").unwrap();
    std::fs::set_permissions(
        outside.path().join("target"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fs = LocalFs::new(d.to_owned());
    std::fs::write(d.join("f"), b"f").unwrap();
    symlink(outside.path().join("target"), d.join("link")).unwrap();
    let f = path_str(&d.join("f"));

    fs.set_permission(&f, 0o1750).await.unwrap();
    assert_eq!(fs.file_status(&f).await.unwrap().permission, 0o1750);
    let err = fs
        .set_permission(&path_str(&d.join("link")), 0o777)
        .await
        .unwrap_err();
    assert!(matches!(err, FsError::Io { .. }), "{err}");
    assert_eq!(mode_of(&outside.path().join("target")), 0o600);
    let err = fs
        .set_permission(&path_str(&d.join("missing")), 0o777)
        .await
        .unwrap_err();
    assert!(matches!(err, FsError::NotFound { .. }), "{err}");

    // By name and by numeric id (as `file_status` reports owners here).
    let uid = nix::unistd::geteuid();
    let gid = nix::unistd::getegid();
    let user = nix::unistd::User::from_uid(uid).unwrap().unwrap().name;
    let group = nix::unistd::Group::from_gid(gid).unwrap().unwrap().name;
    fs.set_owner(&f, Some(&user), Some(&group)).await.unwrap();
    let st = fs.file_status(&f).await.unwrap();
    assert_eq!((st.owner, st.group), (uid.to_string(), gid.to_string()));
    fs.set_owner(&f, Some(&uid.to_string()), None)
        .await
        .unwrap();
    fs.set_owner(&f, None, Some(&gid.to_string()))
        .await
        .unwrap();

    for (owner, group) in [
        (Some("no-such-user-hsf"), None),
        (None, Some("no-such-group-hsf")),
        (None, None),
    ] {
        let err = fs.set_owner(&f, owner, group).await.unwrap_err();
        match &err {
            FsError::Io { source, .. } => {
                assert_eq!(source.kind(), io::ErrorKind::InvalidInput, "{err}");
            }
            other => panic!("unexpected {other}"),
        }
    }
    let err = fs
        .set_owner(&path_str(&outside.path().join("target")), Some(&user), None)
        .await
        .unwrap_err();
    assert!(matches!(err, FsError::OutsideRoot { .. }), "{err}");
}
