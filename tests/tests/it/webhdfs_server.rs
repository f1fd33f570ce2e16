//! Tests of the in-process WebHDFS server, driven with hand-built `reqwest` requests.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use hive_smallfiles_tests::webhdfs_server::{
    HaState, Namespace, NodeId, RunningServer, ServerOptions, WebHdfsServer, synthetic_byte,
};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::Value;

const PATH_SET: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'%')
    .add(b'?')
    .add(b'#')
    .add(b'"')
    .add(b'<')
    .add(b'>');
const QUERY_SET: &AsciiSet = &PATH_SET.add(b'&').add(b'=').add(b'+').add(b'/');

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn enc(path: &str) -> String {
    utf8_percent_encode(path, PATH_SET).to_string()
}

fn q(v: &str) -> String {
    utf8_percent_encode(v, QUERY_SET).to_string()
}

fn url(base: &str, path: &str, query: &str) -> String {
    format!("{base}/webhdfs/v1{}?{query}", enc(path))
}

async fn start(opts: ServerOptions) -> RunningServer {
    WebHdfsServer::start(opts).await.expect("server starts")
}

async fn send(req: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, bytes::Bytes) {
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.bytes().await.expect("body"))
}

async fn json(req: reqwest::RequestBuilder) -> (u16, Value) {
    let (s, _, b) = send(req).await;
    let v = if b.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&b).expect("json body")
    };
    (s, v)
}

fn exception(v: &Value) -> (&str, &str, &str) {
    let e = &v["RemoteException"];
    (
        e["exception"].as_str().unwrap_or(""),
        e["javaClassName"].as_str().unwrap_or(""),
        e["message"].as_str().unwrap_or(""),
    )
}

fn names(statuses: &Value) -> Vec<String> {
    statuses
        .as_array()
        .expect("array")
        .iter()
        .map(|s| s["pathSuffix"].as_str().expect("suffix").to_owned())
        .collect()
}

async fn create(
    c: &reqwest::Client,
    base: &str,
    path: &str,
    extra: &str,
    data: &'static [u8],
) -> (u16, Value) {
    let (s, h, _) = send(c.put(url(
        base,
        path,
        &format!("op=CREATE&user.name=alice{extra}"),
    )))
    .await;
    assert_eq!(s, 307, "CREATE step 1 redirects");
    let loc = h["location"].to_str().expect("location").to_owned();
    let (s, h, b) = send(c.put(loc).body(data)).await;
    if s == 201 {
        let created = h["location"].to_str().expect("location");
        assert!(created.starts_with("webhdfs://"), "{created}");
        assert!(b.is_empty());
        (s, Value::Null)
    } else {
        (s, serde_json::from_slice(&b).expect("json"))
    }
}

#[tokio::test]
async fn status_and_listing_json_shapes() {
    let srv = start(ServerOptions::new()).await;
    let ns = srv.namespace().clone();
    ns.set_clock_ms(1_000_000);
    ns.add_file("/data/t/f1", &b"hello"[..]).unwrap();
    ns.mkdirs("/data/t/sub").unwrap();
    let c = client();
    let base = srv.base_url();

    let (s, v) = json(c.get(url(&base, "/data/t/f1", "op=GETFILESTATUS"))).await;
    assert_eq!(s, 200);
    let fs = &v["FileStatus"];
    let keys: BTreeSet<&str> = fs.as_object().unwrap().keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = [
        "accessTime",
        "blockSize",
        "childrenNum",
        "fileId",
        "group",
        "length",
        "modificationTime",
        "owner",
        "pathSuffix",
        "permission",
        "replication",
        "storagePolicy",
        "type",
    ]
    .into_iter()
    .collect();
    assert_eq!(keys, expected);
    assert_eq!(fs["type"], "FILE");
    assert_eq!(fs["length"], 5);
    assert_eq!(fs["pathSuffix"], "");
    assert_eq!(fs["permission"], "644");
    assert_eq!(fs["replication"], 3);
    assert_eq!(fs["blockSize"], 134_217_728);
    assert_eq!(fs["modificationTime"], 1_000_000);
    assert_eq!(fs["accessTime"], 1_000_000);
    assert_eq!(fs["owner"], "hdfs");
    assert_eq!(fs["group"], "supergroup");

    let (s, v) = json(c.get(url(&base, "/data/t", "op=GETFILESTATUS"))).await;
    assert_eq!(s, 200);
    assert_eq!(v["FileStatus"]["type"], "DIRECTORY");
    assert_eq!(v["FileStatus"]["childrenNum"], 2);
    assert_eq!(v["FileStatus"]["permission"], "755");
    assert_eq!(v["FileStatus"]["replication"], 0);
    assert_eq!(v["FileStatus"]["accessTime"], 0);

    let (s, v) = json(c.get(url(&base, "/", "op=GETFILESTATUS"))).await;
    assert_eq!(s, 200);
    assert_eq!(v["FileStatus"]["fileId"], 16385);

    // LISTSTATUS of a directory and of a file.
    let (s, v) = json(c.get(url(&base, "/data/t", "op=LISTSTATUS"))).await;
    assert_eq!(s, 200);
    assert_eq!(names(&v["FileStatuses"]["FileStatus"]), ["f1", "sub"]);
    let (s, v) = json(c.get(url(&base, "/data/t/f1", "op=LISTSTATUS"))).await;
    assert_eq!(s, 200);
    assert_eq!(names(&v["FileStatuses"]["FileStatus"]), [""]);
    assert_eq!(v["FileStatuses"]["FileStatus"][0]["length"], 5);

    // Missing path.
    let (s, v) = json(c.get(url(&base, "/nope", "op=GETFILESTATUS"))).await;
    assert_eq!(s, 404);
    assert_eq!(
        exception(&v),
        (
            "FileNotFoundException",
            "java.io.FileNotFoundException",
            "File does not exist: /nope"
        )
    );
    let (s, v) = json(c.get(url(&base, "/nope", "op=LISTSTATUS"))).await;
    assert_eq!(s, 404);
    assert_eq!(exception(&v).0, "FileNotFoundException");

    // Op names are case-insensitive; so are parameter names.
    let (s, _) = json(c.get(format!("{base}/webhdfs/v1/data/t?OP=liststatus"))).await;
    assert_eq!(s, 200);

    // Content summary.
    ns.add_file("/data/t/sub/f2", &b"abc"[..]).unwrap();
    let (s, v) = json(c.get(url(&base, "/data", "op=GETCONTENTSUMMARY"))).await;
    assert_eq!(s, 200);
    let cs = &v["ContentSummary"];
    assert_eq!(cs["directoryCount"], 3);
    assert_eq!(cs["fileCount"], 2);
    assert_eq!(cs["length"], 8);
    assert_eq!(cs["spaceConsumed"], 24);
    assert_eq!(cs["quota"], -1);
    assert_eq!(cs["spaceQuota"], -1);
}

#[tokio::test]
async fn unknown_op_and_unsupported_batch() {
    let srv = start(ServerOptions::new().batch_supported(false)).await;
    let c = client();
    let base = srv.base_url();
    let (s, v) = json(c.get(url(&base, "/", "op=LISTSTATUS_BATCH"))).await;
    assert_eq!(s, 400);
    assert_eq!(
        exception(&v),
        (
            "IllegalArgumentException",
            "java.lang.IllegalArgumentException",
            "Invalid value for webhdfs parameter \"op\": No enum constant org.apache.hadoop.hdfs.web.resources.GetOpParam.Op.LISTSTATUS_BATCH"
        )
    );
    let (s, v) = json(c.put(url(&base, "/", "op=FROB"))).await;
    assert_eq!(s, 400);
    assert!(exception(&v).2.ends_with("PutOpParam.Op.FROB"), "{v}");
    // A GET op sent with PUT is unknown for PUT.
    let (s, _) = json(c.put(url(&base, "/", "op=LISTSTATUS"))).await;
    assert_eq!(s, 400);
    srv.set_batch_supported(true);
    let (s, v) = json(c.get(url(&base, "/", "op=LISTSTATUS_BATCH"))).await;
    assert_eq!(s, 200);
    assert_eq!(v["DirectoryListing"]["remainingEntries"], 0);
}

#[tokio::test]
async fn batch_paging_with_odd_names() {
    let srv = start(ServerOptions::new().ls_limit(2)).await;
    let ns = srv.namespace().clone();
    let dir = "/w/d ir";
    let children = ["z", "a b", "100%", "é", "+plus", "A", "%2525"];
    for n in children {
        ns.add_file(&format!("{dir}/{n}"), &b"x"[..]).unwrap();
    }
    let c = client();
    let base = srv.base_url();

    // HDFS orders children with a signed byte comparison: UTF-8 multi-byte names come first.
    let expected = ["é", "%2525", "+plus", "100%", "A", "a b", "z"];
    let mut got = Vec::new();
    let mut start_after: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &start_after {
            Some(s) => format!("op=LISTSTATUS_BATCH&startAfter={}", q(s)),
            None => "op=LISTSTATUS_BATCH".to_owned(),
        };
        let (s, v) = json(c.get(url(&base, dir, &query))).await;
        assert_eq!(s, 200, "{v}");
        let dl = &v["DirectoryListing"];
        let page = names(&dl["partialListing"]["FileStatuses"]["FileStatus"]);
        assert!(page.len() <= 2);
        pages += 1;
        let remaining = dl["remainingEntries"].as_u64().unwrap();
        assert_eq!(remaining as usize, expected.len() - got.len() - page.len());
        start_after = page.last().cloned();
        got.extend(page);
        if remaining == 0 {
            break;
        }
    }
    assert_eq!(got, expected);
    assert_eq!(pages, 4);

    // The full listing has the same order.
    let (_, v) = json(c.get(url(&base, dir, "op=LISTSTATUS"))).await;
    assert_eq!(names(&v["FileStatuses"]["FileStatus"]), expected);

    // startAfter naming a missing child starts at the next greater one.
    let (_, v) = json(c.get(url(
        &base,
        dir,
        &format!("op=LISTSTATUS_BATCH&startAfter={}", q("B")),
    )))
    .await;
    assert_eq!(
        names(&v["DirectoryListing"]["partialListing"]["FileStatuses"]["FileStatus"]),
        ["a b", "z"]
    );
    assert_eq!(v["DirectoryListing"]["remainingEntries"], 0);

    // LISTSTATUS_BATCH on a file.
    let (_, v) = json(c.get(url(&base, &format!("{dir}/z"), "op=LISTSTATUS_BATCH"))).await;
    assert_eq!(
        names(&v["DirectoryListing"]["partialListing"]["FileStatuses"]["FileStatus"]),
        [""]
    );

    // Paths are decoded exactly once and '+' is literal.
    let (s, _) = json(c.put(format!("{base}/webhdfs/v1/p+q/100%2525/sp%20ace?op=MKDIRS"))).await;
    assert_eq!(s, 200);
    assert!(ns.exists("/p+q/100%25/sp ace"));
    let (s, v) = json(c.get(format!(
        "{base}/webhdfs/v1/w/d%20ir/%252525?op=GETFILESTATUS"
    )))
    .await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn parent_mtime_updates_only_direct_parent() {
    let srv = start(ServerOptions::new()).await;
    let ns = srv.namespace().clone();
    ns.set_clock_ms(1_000);
    ns.mkdirs("/g/p").unwrap();
    ns.mkdirs("/g/q").unwrap();
    let c = client();
    let base = srv.base_url();
    let mtime = |p: &str| ns.status(p).unwrap().modification_time;

    ns.set_clock_ms(2_000);
    assert_eq!(create(&c, &base, "/g/p/f", "", b"data").await.0, 201);
    assert_eq!(mtime("/g/p"), 2_000);
    assert_eq!(mtime("/g"), 1_000);
    assert_eq!(mtime("/g/p/f"), 2_000);

    ns.set_clock_ms(3_000);
    let (s, v) = json(c.put(url(&base, "/g/p/f", "op=RENAME&destination=/g/q/f"))).await;
    assert_eq!((s, v), (200, serde_json::json!({"boolean": true})));
    assert_eq!(mtime("/g/p"), 3_000);
    assert_eq!(mtime("/g/q"), 3_000);
    assert_eq!(mtime("/g"), 1_000);
    assert_eq!(mtime("/g/q/f"), 2_000, "rename keeps the file's own mtime");

    ns.set_clock_ms(4_000);
    let (s, v) = json(c.delete(url(&base, "/g/q/f", "op=DELETE"))).await;
    assert_eq!((s, v), (200, serde_json::json!({"boolean": true})));
    assert_eq!(mtime("/g/q"), 4_000);
    assert_eq!(mtime("/g/p"), 3_000);
    assert_eq!(mtime("/g"), 1_000);

    ns.set_clock_ms(5_000);
    let (s, _) = json(c.put(url(&base, "/g/q/new", "op=MKDIRS"))).await;
    assert_eq!(s, 200);
    assert_eq!(mtime("/g/q"), 5_000);
    assert_eq!(mtime("/g"), 1_000);

    // Setting times and permissions does not touch the parent.
    ns.set_clock_ms(6_000);
    let (s, _, _) = send(c.put(url(
        &base,
        "/g/q/new",
        "op=SETTIMES&modificationtime=42&accesstime=-1",
    )))
    .await;
    assert_eq!(s, 200);
    assert_eq!(mtime("/g/q/new"), 42);
    assert_eq!(mtime("/g/q"), 5_000);
    let (s, _, _) = send(c.put(url(&base, "/g/q/new", "op=SETPERMISSION&permission=1777"))).await;
    assert_eq!(s, 200);
    let (s, _, _) = send(c.put(url(&base, "/g/q/new", "op=SETOWNER&owner=bob&group=etl"))).await;
    assert_eq!(s, 200);
    let st = ns.status("/g/q/new").unwrap();
    assert_eq!(
        (st.permission, st.owner.as_str(), st.group.as_str()),
        (0o1777, "bob", "etl")
    );
    let (_, v) = json(c.get(url(&base, "/g/q/new", "op=GETFILESTATUS"))).await;
    assert_eq!(v["FileStatus"]["permission"], "1777");
    let (s, v) = json(c.put(url(&base, "/g/q/new", "op=SETOWNER"))).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = json(c.put(url(&base, "/g/q/new", "op=SETPERMISSION&permission=999"))).await;
    assert_eq!(s, 400, "{v}");
}

#[tokio::test]
async fn rename_old_semantics() {
    let srv = start(ServerOptions::new()).await;
    let ns = srv.namespace().clone();
    ns.add_file("/r/a", &b"1"[..]).unwrap();
    ns.add_file("/r/b", &b"2"[..]).unwrap();
    ns.mkdirs("/r/dir").unwrap();
    let c = client();
    let base = srv.base_url();
    let rename =
        |src: &str, dst: &str| url(&base, src, &format!("op=RENAME&destination={}", q(dst)));

    // Into an existing directory.
    let (s, v) = json(c.put(rename("/r/a", "/r/dir"))).await;
    assert_eq!((s, v), (200, serde_json::json!({"boolean": true})));
    assert!(ns.exists("/r/dir/a") && !ns.exists("/r/a"));

    // False cases: destination file exists, source missing, destination parent missing,
    // destination under the source.
    for (src, dst) in [
        ("/r/b", "/r/dir/a"),
        ("/r/missing", "/r/x"),
        ("/r/b", "/nope/x"),
        ("/r", "/r/dir/sub"),
    ] {
        let (s, v) = json(c.put(rename(src, dst))).await;
        assert_eq!(
            (s, &v),
            (200, &serde_json::json!({"boolean": false})),
            "{src} -> {dst}"
        );
    }
    assert!(ns.exists("/r/b"));
    // Renaming onto itself is true.
    let (_, v) = json(c.put(rename("/r/b", "/r/b"))).await;
    assert_eq!(v, serde_json::json!({"boolean": true}));
    // Plain rename with a new name, then missing destination parameter.
    let (_, v) = json(c.put(rename("/r/b", "/r/c"))).await;
    assert_eq!(v, serde_json::json!({"boolean": true}));
    assert!(ns.exists("/r/c"));
    let (s, v) = json(c.put(url(&base, "/r/c", "op=RENAME"))).await;
    assert_eq!(s, 400, "{v}");
}

#[tokio::test]
async fn rename_with_overwrite() {
    let srv = start(ServerOptions::new()).await;
    let ns = srv.namespace().clone();
    ns.add_file("/o/src", &b"new"[..]).unwrap();
    ns.add_file("/o/dst", &b"old"[..]).unwrap();
    ns.mkdirs("/o/d1").unwrap();
    ns.mkdirs("/o/d2").unwrap();
    ns.add_file("/o/full/x", &b"x"[..]).unwrap();
    let c = client();
    let base = srv.base_url();
    let rename = |src: &str, dst: &str, opts: &str| {
        url(
            &base,
            src,
            &format!("op=RENAME&destination={}&renameoptions={opts}", q(dst)),
        )
    };

    // Replace a file: 200 with an empty body (NamenodeWebHdfsMethods answers rename2 so).
    let (s, _, b) = send(c.put(rename("/o/src", "/o/dst", "OVERWRITE"))).await;
    assert_eq!(s, 200);
    assert!(b.is_empty());
    assert_eq!(&ns.read_file("/o/dst").unwrap()[..], b"new");
    assert!(!ns.exists("/o/src"));

    // Replace an empty directory.
    let (s, _, _) = send(c.put(rename("/o/d1", "/o/d2", "OVERWRITE"))).await;
    assert_eq!(s, 200);
    assert!(!ns.exists("/o/d1") && ns.exists("/o/d2"));

    // Non-empty directory destination.
    let (s, v) = json(c.put(rename("/o/d2", "/o/full", "OVERWRITE"))).await;
    assert_eq!(s, 403);
    assert_eq!(
        exception(&v),
        (
            "IOException",
            "java.io.IOException",
            "rename destination directory is not empty: /o/full"
        )
    );
    // File onto directory.
    let (s, v) = json(c.put(rename("/o/dst", "/o/full", "OVERWRITE"))).await;
    assert_eq!(s, 403);
    assert!(exception(&v).2.contains("must both be directories"), "{v}");
    // NONE: existing destination is an exception, not false.
    ns.add_file("/o/other", &b"o"[..]).unwrap();
    let (s, v) = json(c.put(rename("/o/other", "/o/dst", "NONE"))).await;
    assert_eq!(s, 403);
    assert_eq!(exception(&v).0, "FileAlreadyExistsException");
    // Missing source / missing destination parent are FileNotFoundException.
    let (s, v) = json(c.put(rename("/o/missing", "/o/zz", "OVERWRITE"))).await;
    assert_eq!(
        (s, exception(&v).2),
        (404, "rename source /o/missing is not found.")
    );
    let (s, v) = json(c.put(rename("/o/other", "/nope/zz", "OVERWRITE"))).await;
    assert_eq!(s, 404, "{v}");
}

#[tokio::test]
async fn create_open_append_concat() {
    let srv = start(ServerOptions::new()).await;
    let ns = srv.namespace().clone();
    let c = client();
    let base = srv.base_url();

    // Two-step create; parents are created.
    assert_eq!(
        create(
            &c,
            &base,
            "/c/deep/er/f.txt",
            "&permission=600",
            b"0123456789"
        )
        .await
        .0,
        201
    );
    let st = ns.status("/c/deep/er/f.txt").unwrap();
    assert_eq!(
        (st.length, st.permission, st.owner.as_str()),
        (10, 0o600, "alice")
    );
    assert!(
        ns.status("/c/deep").unwrap().file_type
            == hive_smallfiles_tests::webhdfs_server::FileType::Directory
    );

    // overwrite=false (default) on an existing file.
    let (s, v) = create(&c, &base, "/c/deep/er/f.txt", "", b"zz").await;
    assert_eq!(s, 403);
    assert_eq!(exception(&v).0, "FileAlreadyExistsException");
    assert_eq!(
        exception(&v).1,
        "org.apache.hadoop.fs.FileAlreadyExistsException"
    );
    let old_id = ns.status("/c/deep/er/f.txt").unwrap().file_id;
    assert_eq!(
        create(
            &c,
            &base,
            "/c/deep/er/f.txt",
            "&overwrite=true",
            b"abcdefghij"
        )
        .await
        .0,
        201
    );
    assert!(ns.status("/c/deep/er/f.txt").unwrap().file_id > old_id);

    // noredirect=true answers 200 with the Location in JSON.
    let (s, v) = json(c.get(url(
        &base,
        "/c/deep/er/f.txt",
        "op=OPEN&noredirect=true&offset=2&length=3",
    )))
    .await;
    assert_eq!(s, 200);
    let loc = v["Location"].as_str().unwrap().to_owned();
    assert!(loc.starts_with(&srv.datanode_url()), "{loc}");
    let (s, _, body) = send(c.get(&loc)).await;
    assert_eq!((s, &body[..]), (200, &b"cde"[..]));

    // OPEN redirect then read from an offset to the end.
    let (s, h, _) = send(c.get(url(&base, "/c/deep/er/f.txt", "op=OPEN&offset=7"))).await;
    assert_eq!(s, 307);
    let (_, _, body) = send(c.get(h["location"].to_str().unwrap())).await;
    assert_eq!(&body[..], b"hij");
    // Offset out of range.
    let (s, v) = json(c.get(url(&base, "/c/deep/er/f.txt", "op=OPEN&offset=10"))).await;
    assert_eq!(s, 403);
    assert!(
        exception(&v)
            .2
            .starts_with("Offset=10 out of the range [0, 10)"),
        "{v}"
    );
    let (s, _) = json(c.get(url(&base, "/c/missing", "op=OPEN"))).await;
    assert_eq!(s, 404);

    // Synthetic content reads as deterministic filler.
    ns.add_synthetic_file("/c/syn", 1000, 5).unwrap();
    let (_, h, _) = send(c.get(url(&base, "/c/syn", "op=OPEN&offset=500&length=4"))).await;
    let (_, _, body) = send(c.get(h["location"].to_str().unwrap())).await;
    assert_eq!(
        body.to_vec(),
        (500..504).map(synthetic_byte).collect::<Vec<u8>>()
    );

    // Append (two steps, POST, 200).
    let (s, h, _) = send(c.post(url(&base, "/c/deep/er/f.txt", "op=APPEND"))).await;
    assert_eq!(s, 307);
    let (s, _, _) = send(c.post(h["location"].to_str().unwrap()).body(&b"KL"[..])).await;
    assert_eq!(s, 200);
    assert_eq!(
        &ns.read_file("/c/deep/er/f.txt").unwrap()[..],
        b"abcdefghijKL"
    );

    // Concat: same directory only; sources removed; parent mtime updated.
    ns.set_clock_ms(10_000);
    ns.add_file("/c/m/t", &b"T"[..]).unwrap();
    ns.add_file("/c/m/s1", &b"1"[..]).unwrap();
    ns.add_file("/c/m/s2", &b"2"[..]).unwrap();
    ns.add_file("/c/other/s3", &b"3"[..]).unwrap();
    ns.set_clock_ms(20_000);
    let (s, _, b) = send(c.post(url(
        &base,
        "/c/m/t",
        &format!("op=CONCAT&sources={}", q("/c/m/s1,/c/m/s2")),
    )))
    .await;
    assert_eq!(s, 200);
    assert!(b.is_empty());
    assert_eq!(&ns.read_file("/c/m/t").unwrap()[..], b"T12");
    assert!(!ns.exists("/c/m/s1") && !ns.exists("/c/m/s2"));
    assert_eq!(ns.status("/c/m").unwrap().modification_time, 20_000);
    let (s, v) = json(c.post(url(&base, "/c/m/t", "op=CONCAT&sources=/c/other/s3"))).await;
    assert_eq!(s, 400);
    assert_eq!(exception(&v).0, "HadoopIllegalArgumentException");
    ns.add_file("/c/m/empty", &b""[..]).unwrap();
    let (s, v) = json(c.post(url(&base, "/c/m/t", "op=CONCAT&sources=/c/m/empty"))).await;
    assert_eq!(s, 400, "{v}");
    let (s, _) = json(c.post(url(&base, "/c/m/t", "op=CONCAT"))).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn access_time_precision() {
    let srv = start(ServerOptions::new()).await;
    let ns = srv.namespace().clone();
    ns.set_clock_ms(1_000_000);
    ns.add_file("/a/f", &b"abc"[..]).unwrap();
    let c = client();
    let base = srv.base_url();
    let read = || async {
        let (_, h, _) = send(c.get(url(&base, "/a/f", "op=OPEN"))).await;
        send(c.get(h["location"].to_str().unwrap())).await
    };
    ns.set_clock_ms(1_000_000 + 60_000);
    read().await;
    assert_eq!(
        ns.status("/a/f").unwrap().access_time,
        1_000_000,
        "within the precision"
    );
    ns.set_clock_ms(1_000_000 + 3_600_001);
    read().await;
    assert_eq!(ns.status("/a/f").unwrap().access_time, 4_600_001);
    assert_eq!(ns.status("/a/f").unwrap().modification_time, 1_000_000);
}

#[tokio::test]
async fn delete_semantics() {
    let srv = start(ServerOptions::new()).await;
    let ns = srv.namespace().clone();
    ns.add_file("/del/d/f", &b"1"[..]).unwrap();
    let c = client();
    let base = srv.base_url();
    let (s, v) = json(c.delete(url(&base, "/del/d", "op=DELETE"))).await;
    assert_eq!(s, 403);
    assert_eq!(exception(&v).0, "PathIsNotEmptyDirectoryException");
    assert!(exception(&v).2.contains("/del/d is non empty"));
    let (s, v) = json(c.delete(url(&base, "/del/d", "op=DELETE&recursive=true"))).await;
    assert_eq!((s, v), (200, serde_json::json!({"boolean": true})));
    let (s, v) = json(c.delete(url(&base, "/del/d", "op=DELETE"))).await;
    assert_eq!((s, v), (200, serde_json::json!({"boolean": false})));
    let (s, _) = json(c.delete(url(&base, "/del", "op=DELETE&recursive=maybe"))).await;
    assert_eq!(s, 400);
    let (_, v) = json(c.put(url(&base, "/del/x/y", "op=MKDIRS"))).await;
    assert_eq!(v, serde_json::json!({"boolean": true}));
    let (_, v) = json(c.put(url(&base, "/del/x/y", "op=MKDIRS"))).await;
    assert_eq!(
        v,
        serde_json::json!({"boolean": true}),
        "existing directory is still true"
    );
}

#[tokio::test]
async fn standby_and_failover() {
    let srv = start(ServerOptions::new().namenodes(2).active(Some(1))).await;
    srv.namespace().mkdirs("/ha").unwrap();
    let c = client();
    let (nn0, nn1) = (srv.namenode_url(0), srv.namenode_url(1));
    let (s, v) = json(c.get(url(&nn0, "/ha", "op=GETFILESTATUS"))).await;
    assert_eq!(s, 403);
    assert_eq!(
        exception(&v),
        (
            "StandbyException",
            "org.apache.hadoop.ipc.StandbyException",
            "Operation category READ is not supported in state standby. Visit https://s.apache.org/sbnn-error"
        )
    );
    let (s, v) = json(c.put(url(&nn0, "/ha/x", "op=MKDIRS"))).await;
    assert_eq!(s, 403);
    assert!(exception(&v).2.starts_with("Operation category WRITE"));
    let (s, _) = json(c.get(url(&nn1, "/ha", "op=GETFILESTATUS"))).await;
    assert_eq!(s, 200);

    srv.set_active(0);
    assert_eq!(srv.ha_state(1), HaState::Standby);
    assert_eq!(json(c.get(url(&nn0, "/ha", "op=LISTSTATUS"))).await.0, 200);
    assert_eq!(json(c.get(url(&nn1, "/ha", "op=LISTSTATUS"))).await.0, 403);
    assert_eq!(
        srv.request_count(Some(NodeId::NameNode(1)), Some("LISTSTATUS"), Some(403)),
        1
    );

    // Stop / start: connection refused while stopped.
    srv.stop_namenode(0).await;
    let err = c.get(url(&nn0, "/ha", "op=LISTSTATUS")).send().await;
    assert!(
        err.is_err_and(|e| e.is_connect()),
        "connection refused while stopped"
    );
    srv.start_namenode(0).await.unwrap();
    assert_eq!(json(c.get(url(&nn0, "/ha", "op=LISTSTATUS"))).await.0, 200);
    srv.shutdown().await;
}

#[tokio::test]
async fn injected_failures_and_counters() {
    let srv = start(ServerOptions::new()).await;
    srv.namespace().mkdirs("/inj/a").unwrap();
    srv.namespace().mkdirs("/other").unwrap();
    let c = client();
    let base = srv.base_url();
    srv.fail_next(2, 403, "RetriableException");
    for _ in 0..2 {
        let (s, v) = json(c.get(url(&base, "/other", "op=GETFILESTATUS"))).await;
        assert_eq!(s, 403);
        assert_eq!(exception(&v).1, "org.apache.hadoop.ipc.RetriableException");
    }
    assert_eq!(
        json(c.get(url(&base, "/other", "op=GETFILESTATUS")))
            .await
            .0,
        200
    );

    srv.fail_path_prefix("/inj", 500, "RuntimeException");
    assert_eq!(
        json(c.get(url(&base, "/inj/a", "op=LISTSTATUS"))).await.0,
        500
    );
    assert_eq!(
        json(c.get(url(&base, "/inj", "op=LISTSTATUS"))).await.0,
        500
    );
    assert_eq!(
        json(c.get(url(&base, "/injx", "op=LISTSTATUS"))).await.0,
        404
    );
    srv.clear_failures();
    assert_eq!(
        json(c.get(url(&base, "/inj/a", "op=LISTSTATUS"))).await.0,
        200
    );

    assert_eq!(srv.request_count(None, Some("GETFILESTATUS"), Some(403)), 2);
    assert_eq!(
        srv.request_count(Some(NodeId::NameNode(0)), Some("LISTSTATUS"), Some(500)),
        2
    );
    assert_eq!(srv.requests_for_op("LISTSTATUS"), 4);
    assert_eq!(srv.total_requests(), 7);
    let log = srv.request_log();
    assert_eq!(log.len(), 7);
    assert_eq!(log[0].path, "/other");
    assert_eq!(log[0].op, "GETFILESTATUS");
    srv.reset_counters();
    assert_eq!(srv.total_requests(), 0);
    assert!(srv.request_log().is_empty());
}

#[tokio::test]
async fn delegation_required() {
    let srv = start(ServerOptions::new().require_delegation(Some("tok".into()))).await;
    let c = client();
    let base = srv.base_url();
    let (s, v) = json(c.get(url(&base, "/", "op=GETFILESTATUS"))).await;
    assert_eq!(s, 401);
    assert_eq!(exception(&v).0, "SecurityException");
    assert_eq!(
        json(c.get(url(&base, "/", "op=GETFILESTATUS&delegation=bad")))
            .await
            .0,
        403
    );
    assert_eq!(
        json(c.get(url(&base, "/", "op=GETFILESTATUS&delegation=tok")))
            .await
            .0,
        200
    );
    // The token is forwarded to the DataNode.
    srv.namespace().add_file("/f", &b"x"[..]).unwrap();
    let (_, h, _) = send(c.get(url(&base, "/f", "op=OPEN&delegation=tok&user.name=u"))).await;
    assert!(h["location"].to_str().unwrap().contains("delegation=tok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_and_max_handlers() {
    let srv = start(
        ServerOptions::new()
            .max_handlers(3)
            .latency(Duration::from_millis(40)),
    )
    .await;
    let c = client();
    let base = srv.base_url();
    let started = Instant::now();
    let reqs = (0..12).map(|_| {
        let (c, u) = (c.clone(), url(&base, "/", "op=GETFILESTATUS"));
        async move { c.get(u).send().await.map(|r| r.status().as_u16()) }
    });
    let results = futures::future::join_all(reqs).await;
    assert!(results.iter().all(|r| matches!(r, Ok(200))));
    let elapsed = started.elapsed();
    assert_eq!(
        srv.max_concurrent(),
        3,
        "bounded by max_handlers and reached"
    );
    assert!(
        elapsed >= Duration::from_millis(4 * 40 - 5),
        "{elapsed:?}: 12 requests / 3 handlers x 40 ms"
    );
    srv.set_latency(Duration::ZERO);
}

#[tokio::test]
async fn import_dir_matches_local_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("db/t/p=1")).unwrap();
    std::fs::write(root.join("db/t/p=1/000000_0"), b"row1\n").unwrap();
    std::fs::write(root.join("db/t/p=1/000001_0"), b"row2\nrow3\n").unwrap();
    std::fs::write(root.join("db/top.txt"), b"").unwrap();
    let t_file = std::time::UNIX_EPOCH + Duration::from_millis(1_600_000_000_000);
    let t_dir = std::time::UNIX_EPOCH + Duration::from_millis(1_500_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(root.join("db/t/p=1/000000_0"))
        .unwrap()
        .set_modified(t_file)
        .unwrap();
    std::fs::File::open(root.join("db/t/p=1"))
        .unwrap()
        .set_modified(t_dir)
        .unwrap();

    let ns = Namespace::new_shared();
    let sum = ns.import_dir(&root.join("db"), "/warehouse/db.db").unwrap();
    assert_eq!((sum.files, sum.dirs, sum.bytes), (3, 3, 15));
    let st = ns.status("/warehouse/db.db/t/p=1/000000_0").unwrap();
    assert_eq!(st.modification_time, 1_600_000_000_000);
    assert_eq!(st.length, 5);
    assert_eq!(
        ns.status("/warehouse/db.db/t/p=1")
            .unwrap()
            .modification_time,
        1_500_000_000_000
    );
    assert_eq!(
        &ns.read_file("/warehouse/db.db/t/p=1/000001_0").unwrap()[..],
        b"row2\nrow3\n"
    );

    // Every local entry is present with the same kind and size.
    fn walk(local: &std::path::Path, hdfs: &str, ns: &Namespace) {
        let mut local_names: Vec<String> = std::fs::read_dir(local)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        local_names.sort();
        let mut listed: Vec<String> = ns
            .list(hdfs)
            .unwrap()
            .into_iter()
            .map(|s| s.path_suffix)
            .collect();
        listed.sort();
        assert_eq!(local_names, listed);
        for n in local_names {
            let (lp, hp) = (local.join(&n), format!("{hdfs}/{n}"));
            let meta = std::fs::metadata(&lp).unwrap();
            let st = ns.status(&hp).unwrap();
            let mtime = meta
                .modified()
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            assert_eq!(st.modification_time, mtime, "{hp}");
            if meta.is_dir() {
                walk(&lp, &hp, ns);
            } else {
                assert_eq!(st.length, meta.len());
            }
        }
    }
    walk(&root.join("db"), "/warehouse/db.db", &ns);

    // The same namespace served over HTTP.
    let srv = start(ServerOptions::new().namespace(ns)).await;
    let (s, v) = json(client().get(url(
        &srv.base_url(),
        "/warehouse/db.db/t/p=1",
        "op=LISTSTATUS",
    )))
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        names(&v["FileStatuses"]["FileStatus"]),
        ["000000_0", "000001_0"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_listing_throughput() {
    let srv = start(ServerOptions::new().ls_limit(10)).await;
    let ns = srv.namespace().clone();
    for d in 0..50 {
        for f in 0..10 {
            ns.add_synthetic_file(&format!("/tp/d{d:03}/part-{f:05}"), 1000, 1_700_000_000_000)
                .unwrap();
        }
    }
    let c = client();
    let base = srv.base_url();
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed() < Duration::from_millis(1500) {
        let batch = (0..16).map(|i| {
            let (c, u) = (
                c.clone(),
                url(
                    &base,
                    &format!("/tp/d{:03}", (done + i) % 50),
                    "op=LISTSTATUS_BATCH",
                ),
            );
            async move { c.get(u).send().await.unwrap().bytes().await.unwrap().len() }
        });
        let sizes = futures::future::join_all(batch).await;
        assert!(sizes.iter().all(|s| *s > 1000));
        done += 16;
    }
    let rate = done as f64 / started.elapsed().as_secs_f64();
    println!("LISTSTATUS_BATCH (10 entries): {rate:.0} requests/s");
    assert!(rate > 200.0, "{rate}");
}

/// Run with `--ignored --nocapture`: memory of ~200,000 directories and ~1.6 million files.
#[test]
#[ignore = "slow; measures memory"]
fn memory_per_entry() {
    fn rss_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }
    let before = rss_kib();
    let started = Instant::now();
    let ns = Namespace::new();
    for t in 0..2_000 {
        for p in 0..100 {
            let dir = format!("/warehouse/db{}.db/table_{t:04}/dt=2024-01-{p:02}", t % 20);
            for f in 0..8 {
                ns.add_synthetic_file(
                    &format!("{dir}/part-{f:05}-c000.snappy.parquet"),
                    1234,
                    1_700_000_000_000,
                )
                .unwrap();
            }
        }
    }
    let (dirs, files) = ns.counts();
    let used = (rss_kib() - before) * 1024;
    println!(
        "{dirs} dirs, {files} files: {} MiB, {} bytes/entry, built in {:?}",
        used >> 20,
        used / (dirs + files),
        started.elapsed()
    );
    assert!(used / (dirs + files) < 400);
}

#[tokio::test]
async fn create_under_a_file_or_over_a_directory() {
    let srv = start(ServerOptions::new()).await;
    let ns = srv.namespace().clone();
    ns.add_file("/u/file", &b"x"[..]).unwrap();
    ns.mkdirs("/u/dir").unwrap();
    let c = client();
    let base = srv.base_url();
    let (s, v) = create(&c, &base, "/u/file/child", "", b"y").await;
    assert_eq!((s, exception(&v).0), (403, "ParentNotDirectoryException"));
    let (s, v) = create(&c, &base, "/u/dir", "&overwrite=true", b"y").await;
    assert_eq!(
        (s, exception(&v).2),
        (403, "/u/dir already exists as a directory")
    );
    let (s, v) = json(c.put(url(&base, "/u/file", "op=MKDIRS"))).await;
    assert_eq!(
        (s, exception(&v).2),
        (403, "Path is not a directory: /u/file")
    );
    assert_eq!(ns.counts(), (3, 1));
}
