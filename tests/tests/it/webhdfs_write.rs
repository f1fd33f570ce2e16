//! The exporter's WebHDFS client reading and changing files on the WebHDFS server written from
//! the Hadoop sources: two-step `CREATE` and `OPEN` through the DataNode, `rename2`
//! semantics, `DELETE`, `MKDIRS` and attributes, a standby first NameNode, injected failures
//! on the NameNode and on the DataNode. What the client did is checked on the server's own
//! namespace.

use std::time::Duration;

use bytes::Bytes;
use hive_smallfiles_core::fs::webhdfs::{RequestLabels, WebHdfs, WebHdfsConfig, WebHdfsMetrics};
use hive_smallfiles_core::fs::write::FileSystemWrite;
use hive_smallfiles_core::fs::{EntryKind, FileSystem, FsError};
use hive_smallfiles_tests::webhdfs_server::{
    FileType, NodeId, RunningServer, ServerOptions, WebHdfsServer, synthetic_byte,
};

async fn start(opts: ServerOptions) -> RunningServer {
    WebHdfsServer::start(opts).await.expect("server starts")
}

fn config(namenodes: Vec<String>, max_retries: u32) -> WebHdfsConfig {
    WebHdfsConfig {
        cluster: "c1".into(),
        namenodes: namenodes
            .iter()
            .map(|u| url::Url::parse(u).expect("url"))
            .collect(),
        user: Some("hive".into()),
        delegation_token: None,
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        max_concurrent_requests: 4,
        max_retries,
        retry_initial_backoff: Duration::from_millis(1),
        retry_max_backoff: Duration::from_millis(5),
        ca_file: None,
        spnego: None,
    }
}

fn client(srv: &RunningServer, max_retries: u32) -> (WebHdfs, WebHdfsMetrics) {
    let metrics = WebHdfsMetrics::default();
    let fs =
        WebHdfs::new(config(srv.namenode_urls(), max_retries), metrics.clone()).expect("client");
    (fs, metrics)
}

fn requests(metrics: &WebHdfsMetrics, op: &str, code: &str) -> u64 {
    metrics
        .requests
        .get_or_create(&RequestLabels {
            cluster: "c1".into(),
            op: op.into(),
            code: code.into(),
        })
        .get()
}

fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i % 251) as u8 ^ seed)
        .collect::<Vec<u8>>()
        .into()
}

#[tokio::test]
async fn creates_and_reads_back_files_of_several_sizes() {
    let srv = start(ServerOptions::new()).await;
    let ns = srv.namespace().clone();
    let (fs, metrics) = client(&srv, 0);

    let sizes = [0, 1, 4095, (1 << 20) + 17, 3 * (1 << 20) + 5];
    for (i, &size) in sizes.iter().enumerate() {
        let path = format!("/w/db.db/t/p=a b/part-{i}");
        let data = pattern(size, i as u8);
        fs.create(&path, data.clone(), false, None).await.unwrap();

        assert_eq!(ns.read_file(&path).unwrap(), data, "size {size}");
        let st = ns.status(&path).unwrap();
        assert_eq!(
            (st.length, st.permission, st.owner.as_str()),
            (size as u64, 0o644, "hive")
        );
        let back = fs.read_range(&path, 0, size as u64 + 10).await.unwrap();
        assert_eq!(back.len(), size);
        assert!(back == data, "size {size} reads back");
        let status = fs.file_status(&path).await.unwrap();
        assert_eq!((status.kind, status.length), (EntryKind::File, size as u64));
    }
    assert_eq!(
        ns.status("/w/db.db/t").unwrap().file_type,
        FileType::Directory,
        "parents created"
    );
    let n = sizes.len() as u64;
    assert_eq!(requests(&metrics, "CREATE", "307"), n);
    assert_eq!(requests(&metrics, "CREATE", "201"), n);
    assert_eq!(requests(&metrics, "OPEN", "307"), n);
    assert_eq!(requests(&metrics, "OPEN", "200"), n);
    assert_eq!(
        srv.request_count(Some(NodeId::DataNode), Some("CREATE"), Some(201)),
        n
    );
}

#[tokio::test]
async fn creates_from_a_local_file() {
    let srv = start(ServerOptions::new()).await;
    let ns = srv.namespace().clone();
    let (fs, _) = client(&srv, 0);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("merged.parquet");
    let data = pattern(2_500_000, 7);
    std::fs::write(&local, &data).unwrap();

    fs.create_from_local("/w/t/merged-000", &local, false, Some(0o640))
        .await
        .unwrap();
    assert_eq!(ns.read_file("/w/t/merged-000").unwrap(), data);
    assert_eq!(ns.status("/w/t/merged-000").unwrap().permission, 0o640);
    assert!(local.exists());

    let err = fs
        .create_from_local("/w/t/merged-000", &local, false, None)
        .await
        .unwrap_err();
    assert!(matches!(err, FsError::AlreadyExists { .. }), "{err}");
}

#[tokio::test]
async fn create_without_overwrite_never_replaces() {
    let srv = start(ServerOptions::new()).await;
    let ns = srv.namespace().clone();
    let (fs, _) = client(&srv, 3);
    ns.add_file("/w/lock", &b"owner-1"[..]).unwrap();
    ns.mkdirs("/w/dir").unwrap();

    let err = fs
        .create("/w/lock", Bytes::from_static(b"owner-2"), false, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, FsError::AlreadyExists { ref path } if path == "/w/lock"),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert_eq!(&ns.read_file("/w/lock").unwrap()[..], b"owner-1");
    assert_eq!(srv.requests_for_op("CREATE"), 2, "one attempt, two steps");

    // Over a directory, even with overwrite.
    for overwrite in [false, true] {
        let err = fs
            .create("/w/dir", Bytes::from_static(b"x"), overwrite, None)
            .await
            .unwrap_err();
        assert!(matches!(err, FsError::AlreadyExists { .. }), "{err}");
    }

    fs.create("/w/lock", Bytes::from_static(b"owner-3"), true, None)
        .await
        .unwrap();
    assert_eq!(&ns.read_file("/w/lock").unwrap()[..], b"owner-3");
}

#[tokio::test]
async fn reads_ranges_up_to_the_end() {
    let srv = start(ServerOptions::new()).await;
    let ns = srv.namespace().clone();
    let (fs, _) = client(&srv, 2);
    ns.add_file("/r/f", &b"0123456789"[..]).unwrap();
    ns.add_file("/r/empty", &b""[..]).unwrap();
    ns.add_synthetic_file("/r/syn", 5000, 1).unwrap();

    let read = |offset, length| fs.read_range("/r/f", offset, length);
    assert_eq!(&read(0, 10).await.unwrap()[..], b"0123456789");
    assert_eq!(&read(3, 4).await.unwrap()[..], b"3456");
    assert_eq!(&read(9, 100).await.unwrap()[..], b"9");
    assert_eq!(srv.requests_for_op("GETFILESTATUS"), 0);
    // Hadoop rejects offset == length of a non-empty file; the client reads it as empty.
    assert!(read(10, 5).await.unwrap().is_empty());
    assert_eq!(srv.requests_for_op("GETFILESTATUS"), 1);
    let err = read(11, 5).await.unwrap_err();
    assert!(
        matches!(err, FsError::Remote { status: 403, ref exception, .. } if exception == "IOException"),
        "{err}"
    );

    assert!(fs.read_range("/r/empty", 0, 10).await.unwrap().is_empty());
    assert_eq!(
        fs.read_range("/r/syn", 4990, 100).await.unwrap().to_vec(),
        (4990..5000).map(synthetic_byte).collect::<Vec<u8>>()
    );
    for missing in ["/r/nope", "/r"] {
        let err = fs.read_range(missing, 0, 1).await.unwrap_err();
        assert!(matches!(err, FsError::NotFound { .. }), "{missing}: {err}");
    }
}

#[tokio::test]
async fn renames_with_rename2_semantics() {
    let srv = start(ServerOptions::new()).await;
    let ns = srv.namespace().clone();
    let (fs, _) = client(&srv, 3);
    ns.add_file("/m/staging/merged", &b"new"[..]).unwrap();
    ns.add_file("/m/t/old", &b"old"[..]).unwrap();
    ns.mkdirs("/m/t/empty").unwrap();
    ns.add_file("/m/src/a", &b"a"[..]).unwrap();

    // Onto an existing directory: refused, nothing moved into it (the old RENAME would).
    for (src, dst) in [("/m/src", "/m/t"), ("/m/staging/merged", "/m/t/empty")] {
        let err = fs.rename(src, dst).await.unwrap_err();
        assert!(
            matches!(err, FsError::AlreadyExists { ref path } if path == dst),
            "{src} -> {dst}: {err}"
        );
        assert!(ns.exists(src));
    }
    assert!(ns.list("/m/t/empty").unwrap().is_empty());
    assert!(!ns.exists("/m/t/src"));
    // Onto an existing file.
    let err = fs
        .rename("/m/staging/merged", "/m/t/old")
        .await
        .unwrap_err();
    assert!(matches!(err, FsError::AlreadyExists { .. }), "{err}");
    assert_eq!(&ns.read_file("/m/t/old").unwrap()[..], b"old");

    // Missing source; missing destination parent; a file as destination parent.
    let err = fs.rename("/m/nope", "/m/t/x").await.unwrap_err();
    assert!(
        matches!(err, FsError::NotFound { ref path } if path == "/m/nope"),
        "{err}"
    );
    let err = fs
        .rename("/m/staging/merged", "/m/gone/x")
        .await
        .unwrap_err();
    assert!(
        matches!(err, FsError::NotFound { ref path } if path == "/m/gone"),
        "{err}"
    );
    let err = fs
        .rename("/m/staging/merged", "/m/t/old/x")
        .await
        .unwrap_err();
    assert!(
        matches!(err, FsError::Remote { ref exception, .. } if exception == "ParentNotDirectoryException"),
        "{err}"
    );
    assert!(ns.exists("/m/staging/merged"));

    // The real thing, with an odd name.
    fs.rename("/m/staging/merged", "/m/t/part 100%.parquet")
        .await
        .unwrap();
    assert_eq!(&ns.read_file("/m/t/part 100%.parquet").unwrap()[..], b"new");
    assert!(!ns.exists("/m/staging/merged"));
    // Repeated (as after a lost answer): the source is gone.
    let err = fs
        .rename("/m/staging/merged", "/m/t/part 100%.parquet")
        .await
        .unwrap_err();
    assert!(matches!(err, FsError::NotFound { .. }), "{err}");

    let renames: Vec<_> = srv
        .request_log()
        .into_iter()
        .filter(|r| r.op == "RENAME")
        .collect();
    assert_eq!(renames.len(), 8, "none retried");
    assert!(
        renames
            .iter()
            .all(|r| r.query.contains("renameoptions=NONE")),
        "{renames:?}"
    );
}

#[tokio::test]
async fn deletes() {
    let srv = start(ServerOptions::new()).await;
    let ns = srv.namespace().clone();
    let (fs, _) = client(&srv, 0);
    ns.add_file("/d/f", &b"f"[..]).unwrap();
    ns.add_file("/d/tree/a/b", &b"b"[..]).unwrap();
    ns.mkdirs("/d/empty").unwrap();

    assert!(fs.delete("/d/f", false).await.unwrap());
    assert!(!ns.exists("/d/f"));
    assert!(!fs.delete("/d/f", false).await.unwrap(), "already gone");
    assert!(!fs.delete("/d/nope/deeper", true).await.unwrap());
    assert!(fs.delete("/d/empty", false).await.unwrap());
    let err = fs.delete("/d/tree", false).await.unwrap_err();
    assert!(
        matches!(err, FsError::Remote { ref exception, .. } if exception == "PathIsNotEmptyDirectoryException"),
        "{err}"
    );
    assert!(ns.exists("/d/tree/a/b"));
    assert!(fs.delete("/d/tree", true).await.unwrap());
    assert!(!ns.exists("/d/tree"));
}

#[tokio::test]
async fn mkdirs_and_attributes() {
    let srv = start(ServerOptions::new()).await;
    let ns = srv.namespace().clone();
    let (fs, _) = client(&srv, 0);

    fs.mkdirs("/a/b/c", Some(0o750)).await.unwrap();
    let st = fs.file_status("/a/b/c").await.unwrap();
    assert_eq!((st.kind, st.permission), (EntryKind::Directory, 0o750));
    assert_eq!(st.owner, "hive");
    assert_eq!(
        fs.file_status("/a").await.unwrap().permission,
        0o750 | 0o300
    );
    fs.mkdirs("/a/b/c", None).await.unwrap();
    fs.mkdirs("/a/d", None).await.unwrap();
    assert_eq!(fs.file_status("/a/d").await.unwrap().permission, 0o755);
    ns.add_file("/a/file", &b""[..]).unwrap();
    let err = fs.mkdirs("/a/file", None).await.unwrap_err();
    assert!(matches!(err, FsError::AlreadyExists { .. }), "{err}");

    fs.set_permission("/a/b/c", 0o1777).await.unwrap();
    assert_eq!(fs.file_status("/a/b/c").await.unwrap().permission, 0o1777);
    fs.set_owner("/a/b/c", Some("impala"), None).await.unwrap();
    let st = fs.file_status("/a/b/c").await.unwrap();
    assert_eq!(
        (st.owner.as_str(), st.group.as_str()),
        ("impala", "supergroup")
    );
    fs.set_owner("/a/b/c", None, Some("hive")).await.unwrap();
    fs.set_owner("/a/b/c", Some("etl"), Some("etl-group"))
        .await
        .unwrap();
    let st = fs.file_status("/a/b/c").await.unwrap();
    assert_eq!((st.owner.as_str(), st.group.as_str()), ("etl", "etl-group"));

    let before = srv.total_requests();
    let err = fs.set_owner("/a", None, None).await.unwrap_err();
    assert!(matches!(err, FsError::Remote { status: 400, .. }), "{err}");
    assert_eq!(srv.total_requests(), before, "refused without asking");
    for err in [
        fs.set_permission("/nope", 0o755).await.unwrap_err(),
        fs.set_owner("/nope", Some("x"), None).await.unwrap_err(),
    ] {
        assert!(matches!(err, FsError::NotFound { .. }), "{err}");
    }
}

#[tokio::test]
async fn every_operation_fails_over_from_a_standby_first_namenode() {
    let srv = start(ServerOptions::new().namenodes(2).active(Some(1))).await;
    let ns = srv.namespace().clone();
    let (fs, _) = client(&srv, 0);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    std::fs::write(&local, b"from local").unwrap();

    // The client starts at NameNode 0, a standby; before each later operation the other
    // NameNode becomes active, so every operation meets a standby first.
    let mut active = 1;
    let mut flip = || {
        active = 1 - active;
        srv.set_active(active);
    };
    fs.mkdirs("/ha/dir", Some(0o700)).await.unwrap();
    flip();
    fs.create("/ha/dir/f", Bytes::from_static(b"data"), false, None)
        .await
        .unwrap();
    flip();
    fs.create_from_local("/ha/dir/g", &local, false, None)
        .await
        .unwrap();
    flip();
    assert_eq!(&fs.read_range("/ha/dir/f", 1, 2).await.unwrap()[..], b"at");
    flip();
    fs.rename("/ha/dir/f", "/ha/dir/h").await.unwrap();
    flip();
    fs.set_permission("/ha/dir/h", 0o600).await.unwrap();
    flip();
    fs.set_owner("/ha/dir/h", Some("etl"), None).await.unwrap();
    flip();
    assert_eq!(fs.file_status("/ha/dir/h").await.unwrap().permission, 0o600);
    flip();
    assert!(fs.delete("/ha/dir/g", false).await.unwrap());

    assert_eq!(&ns.read_file("/ha/dir/h").unwrap()[..], b"data");
    assert_eq!(ns.status("/ha/dir/h").unwrap().owner, "etl");
    assert!(!ns.exists("/ha/dir/g") && !ns.exists("/ha/dir/f"));
    for op in [
        "MKDIRS",
        "CREATE",
        "OPEN",
        "RENAME",
        "SETPERMISSION",
        "SETOWNER",
        "GETFILESTATUS",
        "DELETE",
    ] {
        assert!(
            srv.request_count(None, Some(op), Some(403)) >= 1,
            "{op} met a standby"
        );
    }
    assert_eq!(srv.request_count(None, Some("CREATE"), Some(403)), 2);
    assert_eq!(
        srv.request_count(Some(NodeId::DataNode), Some("CREATE"), Some(201)),
        2
    );
}

#[tokio::test]
async fn injected_failures_of_create_are_retried() {
    let srv = start(ServerOptions::new()).await;
    let ns = srv.namespace().clone();
    let (fs, metrics) = client(&srv, 3);

    // On the NameNode step: `send` retries it.
    srv.fail_next(1, 503, "RetriableException");
    fs.create("/i/a", Bytes::from_static(b"aaa"), false, None)
        .await
        .unwrap();
    assert_eq!(&ns.read_file("/i/a").unwrap()[..], b"aaa");
    assert_eq!(requests(&metrics, "CREATE", "503"), 1);
    assert_eq!(requests(&metrics, "CREATE", "307"), 1);
    assert_eq!(requests(&metrics, "CREATE", "201"), 1);

    // On the DataNode step: the whole operation is repeated, from the NameNode.
    srv.reset_counters();
    srv.fail_next_datanode(2, 500, "RuntimeException");
    let data = pattern(1_200_000, 3);
    fs.create("/i/b", data.clone(), false, None).await.unwrap();
    assert_eq!(ns.read_file("/i/b").unwrap(), data);
    assert_eq!(
        srv.request_count(Some(NodeId::NameNode(0)), Some("CREATE"), None),
        3
    );
    assert_eq!(
        srv.request_count(Some(NodeId::DataNode), Some("CREATE"), Some(500)),
        2
    );
    assert_eq!(requests(&metrics, "CREATE", "500"), 2);
    assert_eq!(requests(&metrics, "CREATE", "201"), 2);

    // Reads too; and a DataNode that keeps failing is reported after the retries.
    srv.fail_next_datanode(1, 503, "RetriableException");
    assert_eq!(
        fs.read_range("/i/b", 0, 10).await.unwrap(),
        data.slice(..10)
    );
    srv.fail_next_datanode(10, 500, "RuntimeException");
    let err = fs
        .create("/i/c", Bytes::from_static(b"c"), false, None)
        .await
        .unwrap_err();
    assert!(matches!(err, FsError::Remote { status: 500, .. }), "{err}");
    assert!(!ns.exists("/i/c"));
    srv.clear_failures();

    // Not retried: an AlreadyExists from the DataNode.
    srv.reset_counters();
    let err = fs
        .create("/i/a", Bytes::from_static(b"x"), false, None)
        .await
        .unwrap_err();
    assert!(matches!(err, FsError::AlreadyExists { .. }), "{err}");
    assert_eq!(srv.requests_for_op("CREATE"), 2);
}
