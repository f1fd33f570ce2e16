//! Tests of the two-step content reads and of the mutating operations.

use super::*;

/// `GETFILESTATUS` of a file of `length` bytes.
fn file_status_of(length: u64) -> Answer {
    json(
        200,
        format!(
            r#"{{"FileStatus":{{"accessTime":0,"blockSize":134217728,"group":"supergroup",
            "length":{length},"modificationTime":1320173277227,"owner":"webuser","pathSuffix":"",
            "permission":"644","replication":3,"type":"FILE"}}}}"#
        ),
    )
}

fn boolean(b: bool) -> Answer {
    json(200, format!(r#"{{"boolean":{b}}}"#))
}

fn exists_exception(path: &str) -> Answer {
    remote(
        403,
        "FileAlreadyExistsException",
        "org.apache.hadoop.fs.FileAlreadyExistsException",
        &format!("{path} for client 10.0.0.1 already exists"),
    )
}

/// The DataNode URL a NameNode redirects to: the request's path, the op and parameters the
/// NameNode chose (among them the delegation token, which the client must not add again).
fn datanode_location(dn: &url::Url, req: &Seen, extra: &str) -> String {
    format!(
        "{}webhdfs/v1{}?op={}&namenoderpcaddress=ns1&delegation=DNTOKEN{extra}",
        dn,
        req.raw_path.trim_start_matches("/webhdfs/v1"),
        req.op()
    )
}

#[tokio::test]
async fn open_reads_from_the_datanode_the_namenode_names() {
    let dn = fake_nn(|req, _| match req.param("offset") {
        Some("2") => data(&b"cde"[..]),
        _ => remote(400, "IllegalArgumentException", "", "unexpected"),
    })
    .await;
    let dn_url = dn.url.clone();
    let nn = fake_nn(move |req, _| {
        let extra = format!(
            "&offset={}&length={}",
            req.param("offset").unwrap_or(""),
            req.param("length").unwrap_or("")
        );
        redirect(datanode_location(&dn_url, req, &extra))
    })
    .await;
    let mut cfg = config(vec![nn.url.clone()]);
    cfg.user = Some("hive".into());
    cfg.delegation_token = Some(Secret::new("NNTOKEN"));
    let (fs, metrics) = client(cfg);

    let bytes = fs.read_range("/w/a b/f", 2, 3).await.unwrap();
    assert_eq!(&bytes[..], b"cde");

    let nn_req = &nn.seen()[0];
    assert_eq!(nn_req.method, "GET");
    assert_eq!(nn_req.op(), "OPEN");
    assert_eq!(nn_req.param("offset"), Some("2"));
    assert_eq!(nn_req.param("length"), Some("3"));
    assert_eq!(nn_req.param("delegation"), Some("NNTOKEN"));
    let dn_req = &dn.seen()[0];
    assert_eq!(dn_req.raw_path, "/webhdfs/v1/w/a%20b/f");
    assert_eq!(
        dn_req.raw_query, "op=OPEN&namenoderpcaddress=ns1&delegation=DNTOKEN&offset=2&length=3",
        "the Location is used as given, nothing added"
    );
    assert_eq!(requests(&metrics, "OPEN", "307"), 1);
    assert_eq!(requests(&metrics, "OPEN", "200"), 1);
}

#[tokio::test]
async fn open_answered_directly_like_httpfs() {
    let nn = fake_nn(|_, _| data(&b"0123456789"[..])).await;
    let (fs, metrics) = client(config(vec![nn.url.clone()]));
    // A server that ignores `length` still never yields more than asked for.
    assert_eq!(&fs.read_range("/f", 0, 4).await.unwrap()[..], b"0123");
    assert_eq!(nn.count(), 1);
    assert_eq!(requests(&metrics, "OPEN", "200"), 1);
}

#[tokio::test]
async fn reading_at_the_end_of_a_file_checks_its_length() {
    // Hadoop's NameNode: offset >= length of a non-empty file is an IOException.
    let nn = fake_nn(|req, _| match req.op() {
        "OPEN" => remote(
            403,
            "IOException",
            "java.io.IOException",
            &format!(
                "Offset={} out of the range [0, 10); OPEN, path=/f",
                req.param("offset").unwrap_or("")
            ),
        ),
        "GETFILESTATUS" => file_status_of(10),
        _ => remote(400, "IllegalArgumentException", "", "unexpected"),
    })
    .await;
    let mut cfg = config(vec![nn.url.clone()]);
    cfg.max_retries = 3;
    let (fs, _) = client(cfg);

    assert!(fs.read_range("/f", 10, 5).await.unwrap().is_empty());
    let ops: Vec<String> = nn.seen().iter().map(|r| r.op().to_owned()).collect();
    assert_eq!(ops, ["OPEN", "GETFILESTATUS"], "not retried");

    let err = fs.read_range("/f", 11, 5).await.unwrap_err();
    assert!(
        matches!(err, FsError::Remote { ref message, .. } if message.starts_with("Offset=11")),
        "{err}"
    );
}

#[tokio::test]
async fn create_sends_no_body_to_the_namenode_and_the_data_to_the_datanode() {
    let dn = fake_nn(|_, _| Answer {
        location: Some("webhdfs://ns1/t/f".into()),
        ..empty(201)
    })
    .await;
    let dn_url = dn.url.clone();
    let nn = fake_nn(move |req, _| {
        let extra = format!(
            "&overwrite={}&permission={}",
            req.param("overwrite").unwrap_or(""),
            req.param("permission").unwrap_or("")
        );
        redirect(datanode_location(&dn_url, req, &extra))
    })
    .await;
    let mut cfg = config(vec![nn.url.clone()]);
    cfg.user = Some("hive".into());
    let (fs, metrics) = client(cfg);

    fs.create("/t/f", Bytes::from_static(b"hello"), false, Some(0o640))
        .await
        .unwrap();

    let nn_req = &nn.seen()[0];
    assert_eq!((nn_req.method.as_str(), nn_req.op()), ("PUT", "CREATE"));
    assert!(nn_req.body.is_empty(), "no data to the NameNode");
    assert_eq!(nn_req.param("overwrite"), Some("false"));
    assert_eq!(nn_req.param("permission"), Some("640"));
    assert_eq!(nn_req.param("user.name"), Some("hive"));
    let dn_req = &dn.seen()[0];
    assert_eq!(dn_req.method, "PUT");
    assert_eq!(&dn_req.body[..], b"hello");
    assert_eq!(
        dn_req.content_type.as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(dn_req.param("user.name"), None, "nothing added");
    assert_eq!(requests(&metrics, "CREATE", "307"), 1);
    assert_eq!(requests(&metrics, "CREATE", "201"), 1);

    // Without a permission, none is sent (the NameNode's default applies).
    fs.create("/t/g", Bytes::new(), true, None).await.unwrap();
    let nn_req = &nn.seen()[1];
    assert_eq!(nn_req.param("overwrite"), Some("true"));
    assert_eq!(nn_req.param("permission"), None);
    assert!(dn.seen()[1].body.is_empty());
}

#[tokio::test]
async fn create_from_local_streams_the_file_again_on_a_repeated_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("merged");
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    std::fs::write(&local, &content).unwrap();

    // The first DataNode attempt fails with a 503, the second works.
    let dn = fake_nn(|_, nth| {
        if nth == 0 {
            remote(
                503,
                "RuntimeException",
                "java.lang.RuntimeException",
                "DataNode busy",
            )
        } else {
            empty(201)
        }
    })
    .await;
    let dn_url = dn.url.clone();
    let nn = fake_nn(move |req, _| redirect(datanode_location(&dn_url, req, ""))).await;
    let other_nn = fake_nn(|_, _| standby()).await;
    let mut cfg = config(vec![nn.url.clone(), other_nn.url.clone()]);
    cfg.max_retries = 2;
    let (fs, metrics) = client(cfg);

    fs.create_from_local("/t/f", &local, true, None)
        .await
        .unwrap();
    assert_eq!(nn.count(), 2, "the whole operation is repeated");
    assert_eq!(other_nn.count(), 0, "a DataNode failure is no failover");
    let seen = dn.seen();
    assert_eq!(seen.len(), 2);
    for req in &seen {
        assert_eq!(req.body.len(), content.len());
        assert!(req.body[..] == content[..]);
    }
    assert!(local.exists(), "the local file is left in place");
    assert_eq!(requests(&metrics, "CREATE", "503"), 1);
    assert_eq!(requests(&metrics, "CREATE", "201"), 1);
    assert_eq!(requests(&metrics, "CREATE", "307"), 2);

    // A missing local file fails before any request.
    let err = fs
        .create_from_local("/t/g", &dir.path().join("missing"), true, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, FsError::Io { ref path, .. } if path.ends_with("missing")),
        "{err}"
    );
    assert_eq!(nn.count(), 2);
}

#[tokio::test]
async fn create_of_an_existing_file_is_already_exists_and_not_retried() {
    // Hadoop checks existence when the DataNode creates the file.
    let dn = fake_nn(|_, _| exists_exception("/t/f")).await;
    let dn_url = dn.url.clone();
    let nn = fake_nn(move |req, _| redirect(datanode_location(&dn_url, req, ""))).await;
    let mut cfg = config(vec![nn.url.clone()]);
    cfg.max_retries = 3;
    let (fs, _) = client(cfg);
    let err = fs
        .create("/t/f", Bytes::from_static(b"x"), false, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, FsError::AlreadyExists { ref path } if path == "/t/f"),
        "{err}"
    );
    assert_eq!((nn.count(), dn.count()), (1, 1));
}

#[tokio::test]
async fn an_unreachable_datanode_is_retried_then_reported() {
    let dead = refused_url();
    let nn = fake_nn(move |req, _| redirect(datanode_location(&dead, req, ""))).await;
    let mut cfg = config(vec![nn.url.clone()]);
    cfg.max_retries = 1;
    let (fs, metrics) = client(cfg);
    let err = fs.read_range("/f", 0, 1).await.unwrap_err();
    assert!(matches!(err, FsError::Connection { .. }), "{err}");
    assert!(!err.to_string().contains("DNTOKEN"), "{err}");
    assert_eq!(nn.count(), 2);
    assert_eq!(requests(&metrics, "OPEN", "error"), 2);
    assert_eq!(up(&metrics, &nn.url), 1, "the NameNode is fine");
}

#[tokio::test]
async fn redirects_must_name_a_usable_location() {
    let nn = fake_nn(|req, _| match req.op() {
        "OPEN" => empty(307),
        _ => redirect("/relative/path?delegation=SECRET".into()),
    })
    .await;
    let (fs, _) = client(config(vec![nn.url.clone()]));
    let err = fs.read_range("/f", 0, 1).await.unwrap_err();
    assert!(matches!(err, FsError::InvalidResponse { .. }), "{err}");
    let err = fs
        .create("/f", Bytes::from_static(b"x"), true, None)
        .await
        .unwrap_err();
    assert!(matches!(err, FsError::InvalidResponse { .. }), "{err}");
    assert!(!err.to_string().contains("SECRET"), "{err}");
}

#[tokio::test]
async fn create_accepts_a_location_answered_as_json() {
    // The `noredirect=true` shape (HDFS-11111), which some gateways answer unasked.
    let dn = fake_nn(|_, _| empty(201)).await;
    let dn_url = dn.url.clone();
    let nn = fake_nn(move |req, _| {
        json(
            200,
            serde_json::json!({"Location": datanode_location(&dn_url, req, "")}).to_string(),
        )
    })
    .await;
    let (fs, _) = client(config(vec![nn.url.clone()]));
    fs.create("/f", Bytes::from_static(b"x"), true, None)
        .await
        .unwrap();
    assert_eq!(&dn.seen()[0].body[..], b"x");
}

#[tokio::test]
async fn rename_uses_rename2_without_options() {
    let nn = fake_nn(|req, _| match req.raw_path.as_str() {
        "/webhdfs/v1/old" => boolean(false),
        "/webhdfs/v1/older" => boolean(true),
        _ => empty(200),
    })
    .await;
    let (fs, _) = client(config(vec![nn.url.clone()]));
    fs.rename("/w/src dir", "/w/dst%dir/x").await.unwrap();
    let req = &nn.seen()[0];
    assert_eq!(req.method, "PUT");
    assert_eq!(req.op(), "RENAME");
    assert_eq!(req.raw_path, "/webhdfs/v1/w/src%20dir");
    assert_eq!(req.param("destination"), Some("/w/dst%dir/x"));
    assert!(
        req.raw_query
            .contains("destination=%2Fw%2Fdst%25dir%2Fx&renameoptions=NONE"),
        "{}",
        req.raw_query
    );

    // A server that ignores renameoptions answers a boolean.
    let err = fs.rename("/old", "/new").await.unwrap_err();
    assert!(matches!(err, FsError::InvalidResponse { .. }), "{err}");
    fs.rename("/older", "/new").await.unwrap();
}

#[tokio::test]
async fn rename_maps_the_rename2_exceptions() {
    let nn = fake_nn(|req, _| match (req.op(), req.raw_path.as_str()) {
        ("RENAME", "/webhdfs/v1/exists") => remote(
            403,
            "FileAlreadyExistsException",
            "org.apache.hadoop.fs.FileAlreadyExistsException",
            "rename destination /d already exists",
        ),
        ("RENAME", "/webhdfs/v1/file") => remote(
            403,
            "IOException",
            "java.io.IOException",
            "Source /file and destination /d must both be directories",
        ),
        ("RENAME", "/webhdfs/v1/missing") => remote(
            404,
            "FileNotFoundException",
            "java.io.FileNotFoundException",
            "rename source /missing is not found.",
        ),
        ("RENAME", "/webhdfs/v1/orphan") => remote(
            404,
            "FileNotFoundException",
            "java.io.FileNotFoundException",
            "rename destination parent /nope/x not found.",
        ),
        ("RENAME", _) => remote(
            403,
            "ParentNotDirectoryException",
            "org.apache.hadoop.fs.ParentNotDirectoryException",
            "rename destination parent /f/x is a file.",
        ),
        ("GETFILESTATUS", "/webhdfs/v1/orphan") => file_status_of(1),
        _ => remote(
            404,
            "FileNotFoundException",
            "java.io.FileNotFoundException",
            "File does not exist",
        ),
    })
    .await;
    let mut cfg = config(vec![nn.url.clone()]);
    cfg.max_retries = 3;
    let (fs, _) = client(cfg);

    for src in ["/exists", "/file"] {
        let err = fs.rename(src, "/d").await.unwrap_err();
        assert!(
            matches!(err, FsError::AlreadyExists { ref path } if path == "/d"),
            "{src}: {err}"
        );
    }
    let err = fs.rename("/missing", "/x").await.unwrap_err();
    assert!(
        matches!(err, FsError::NotFound { ref path } if path == "/missing"),
        "{err}"
    );
    let err = fs.rename("/orphan", "/nope/x").await.unwrap_err();
    assert!(
        matches!(err, FsError::NotFound { ref path } if path == "/nope"),
        "{err}"
    );
    let err = fs.rename("/other", "/f/x").await.unwrap_err();
    assert!(
        matches!(err, FsError::Remote { ref exception, .. } if exception == "ParentNotDirectoryException"),
        "{err}"
    );
    let renames = nn.seen().iter().filter(|r| r.op() == "RENAME").count();
    assert_eq!(renames, 5, "none of them retried");
}

#[tokio::test]
async fn mkdirs_delete_and_attributes() {
    let nn = fake_nn(|req, _| match (req.op(), req.raw_path.as_str()) {
        ("MKDIRS", "/webhdfs/v1/refused") => boolean(false),
        ("MKDIRS", _) => boolean(true),
        ("DELETE", "/webhdfs/v1/gone") => boolean(false),
        ("DELETE", _) => boolean(true),
        ("SETPERMISSION" | "SETOWNER", _) => empty(200),
        _ => remote(400, "IllegalArgumentException", "", "unexpected"),
    })
    .await;
    let (fs, _) = client(config(vec![nn.url.clone()]));

    fs.mkdirs("/a/b", Some(0o1775)).await.unwrap();
    fs.mkdirs("/a/c", None).await.unwrap();
    let err = fs.mkdirs("/refused", None).await.unwrap_err();
    assert!(matches!(err, FsError::InvalidResponse { .. }), "{err}");
    assert!(fs.delete("/a", true).await.unwrap());
    assert!(!fs.delete("/gone", false).await.unwrap());
    fs.set_permission("/a", 0o750).await.unwrap();
    fs.set_owner("/a", Some("hive"), Some("hadoop"))
        .await
        .unwrap();
    fs.set_owner("/a", None, Some("hadoop")).await.unwrap();
    let err = fs.set_owner("/a", None, None).await.unwrap_err();
    assert!(matches!(err, FsError::Remote { status: 400, .. }), "{err}");

    // "METHOD OP k=v k=v" per request.
    let summary: Vec<String> = nn
        .seen()
        .iter()
        .map(|r| {
            let mut line = format!("{} {}", r.method, r.op());
            for (k, v) in r.params.iter().filter(|(k, _)| k != "op") {
                line.push_str(&format!(" {k}={v}"));
            }
            line
        })
        .collect();
    assert_eq!(
        summary,
        [
            "PUT MKDIRS permission=1775",
            "PUT MKDIRS",
            "PUT MKDIRS",
            "DELETE DELETE recursive=true",
            "DELETE DELETE recursive=false",
            "PUT SETPERMISSION permission=750",
            "PUT SETOWNER owner=hive group=hadoop",
            "PUT SETOWNER group=hadoop",
        ]
    );
}
