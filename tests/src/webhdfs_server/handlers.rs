//! Request parsing and the WebHDFS operations of the NameNode and DataNode endpoints.
//!
//! This module owns the translation between HTTP and the [`Namespace`]: path decoding, query
//! parameters, op dispatch, JSON bodies and redirects. It follows
//! `NamenodeWebHdfsMethods.java` (op switch per HTTP method, 307 redirects to a DataNode for
//! `CREATE`/`OPEN`/`APPEND`/`GETFILECHECKSUM`, `noredirect=true` answering 200
//! `{"Location":...}`, `rename2` answering an empty 200, `OPEN` rejecting an offset outside
//! `[0, length)`), `ParamFilter.java` (parameter names are case-insensitive), the `*OpParam`
//! enums (an unknown op is `IllegalArgumentException: Invalid value for webhdfs parameter "op":
//! No enum constant ...`), `ExceptionHandler.java` (exception to HTTP status) and
//! `WebHDFS.md` (JSON shapes).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode, header};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use super::Shared;
use super::namespace::{
    DEFAULT_BLOCK_SIZE, DEFAULT_DIR_PERMISSION, DEFAULT_FILE_PERMISSION, DEFAULT_REPLICATION,
    Namespace, NewFile, RemoteException, components, join, push_json_str,
};

/// Characters escaped in the path of a redirect URL (like `java.net.URI` quoting).
const PATH_SET: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b']')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Characters escaped in a query value.
const QUERY_SET: &AsciiSet = &PATH_SET
    .add(b'&')
    .add(b'=')
    .add(b'+')
    .add(b'/')
    .add(b',')
    .add(b';');

pub(crate) type HttpResponse = Response<Full<Bytes>>;

/// What a handler answers.
#[derive(Debug)]
pub(crate) enum Reply {
    Json(StatusCode, String),
    Empty(StatusCode),
    Redirect(String),
    Created(String),
    Data(Bytes),
    Error(RemoteException),
    /// Plain 404 for URLs outside `/webhdfs/v1`.
    NoRoute,
}

impl Reply {
    pub(crate) fn status(&self) -> u16 {
        match self {
            Reply::Json(s, _) | Reply::Empty(s) => s.as_u16(),
            Reply::Redirect(_) => 307,
            Reply::Created(_) => 201,
            Reply::Data(_) => 200,
            Reply::Error(e) => e.status,
            Reply::NoRoute => 404,
        }
    }

    pub(crate) fn into_response(self) -> HttpResponse {
        let b = Response::builder();
        let r = match self {
            Reply::Json(s, body) => b
                .status(s)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body))),
            Reply::Empty(s) => b
                .status(s)
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .body(Full::new(Bytes::new())),
            Reply::Redirect(loc) => b
                .status(StatusCode::TEMPORARY_REDIRECT)
                .header(header::LOCATION, loc)
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .body(Full::new(Bytes::new())),
            Reply::Created(loc) => b
                .status(StatusCode::CREATED)
                .header(header::LOCATION, loc)
                .body(Full::new(Bytes::new())),
            Reply::Data(d) => b
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .body(Full::new(d)),
            Reply::Error(e) => {
                let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::FORBIDDEN);
                let mut b = b
                    .status(status)
                    .header(header::CONTENT_TYPE, "application/json");
                if status == StatusCode::UNAUTHORIZED {
                    b = b.header(header::WWW_AUTHENTICATE, "Negotiate");
                }
                b.body(Full::new(Bytes::from(e.to_json())))
            }
            Reply::NoRoute => b
                .status(StatusCode::NOT_FOUND)
                .body(Full::new(Bytes::new())),
        };
        r.unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
    }
}

impl From<RemoteException> for Reply {
    fn from(e: RemoteException) -> Self {
        Reply::Error(e)
    }
}

/// A parsed request line: decoded path and lower-cased query parameters.
#[derive(Debug)]
pub(crate) struct ParsedRequest {
    pub(crate) method: Method,
    /// Decoded absolute path, or `None` when the URL is not under `/webhdfs/v1`.
    pub(crate) path: Option<String>,
    pub(crate) params: Vec<(String, String)>,
    pub(crate) raw_query: String,
    /// The user security established (SPNEGO, cookie or token owner); wins over `user.name`.
    pub(crate) authenticated_user: Option<String>,
}

impl ParsedRequest {
    pub(crate) fn parse(method: &Method, uri: &hyper::Uri) -> Self {
        let raw_query = uri.query().unwrap_or("").to_owned();
        let params = url::form_urlencoded::parse(raw_query.as_bytes())
            .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
            .collect();
        Self {
            method: method.clone(),
            path: decode_path(uri.path()),
            params,
            raw_query,
            authenticated_user: None,
        }
    }

    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Upper-cased `op`, or `NULL` (the `*OpParam` default) when absent.
    pub(crate) fn op(&self) -> String {
        self.param("op")
            .map_or_else(|| "NULL".to_owned(), str::to_ascii_uppercase)
    }

    /// The effective user: `doas`, else `user.name`, else `default`.
    pub(crate) fn user<'a>(&'a self, default: &'a str) -> &'a str {
        if let Some(user) = &self.authenticated_user {
            return self.param("doas").filter(|u| !u.is_empty()).unwrap_or(user);
        }
        self.param("doas")
            .or(self.param("user.name"))
            .filter(|u| !u.is_empty())
            .unwrap_or(default)
    }

    fn bool_param(&self, name: &str, default: bool) -> Result<bool, RemoteException> {
        match self.param(name) {
            None | Some("") => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(invalid_param(
                name,
                &format!("Failed to parse \"{v}\" to Boolean."),
            )),
        }
    }

    fn long_param(&self, name: &str, min: i64) -> Result<Option<i64>, RemoteException> {
        match self.param(name) {
            None | Some("") => Ok(None),
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) if n >= min => Ok(Some(n)),
                Ok(n) => Err(invalid_param(
                    name,
                    &format!("Invalid parameter range: {name} = {n} < {min}"),
                )),
                Err(_) => Err(invalid_param(
                    name,
                    &format!("Failed to parse \"{v}\" as a radix-10 long integer."),
                )),
            },
        }
    }

    fn permission_param(&self, default: u16) -> Result<u16, RemoteException> {
        match self.param("permission") {
            None | Some("") => Ok(default),
            Some(v) => match u16::from_str_radix(v.trim(), 8) {
                Ok(p) if p <= 0o1777 => Ok(p),
                _ => Err(invalid_param(
                    "permission",
                    &format!("Failed to parse \"{v}\" as a radix-8 short integer."),
                )),
            },
        }
    }

    fn required(&self, name: &str, op: &str) -> Result<&str, RemoteException> {
        match self.param(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(RemoteException::illegal(format!(
                "Required param {name} for op: {op} is null or empty"
            ))),
        }
    }
}

pub(crate) fn invalid_param(name: &str, detail: &str) -> RemoteException {
    RemoteException::illegal(format!(
        "Invalid value for webhdfs parameter \"{name}\": {detail}"
    ))
}

/// Strips `/webhdfs/v1` and percent-decodes the rest exactly once (`+` stays a plus).
pub(crate) fn decode_path(raw: &str) -> Option<String> {
    let rest = raw.strip_prefix("/webhdfs/v1")?;
    if !rest.is_empty() && !rest.starts_with('/') {
        return None;
    }
    let decoded = percent_decode_str(rest).decode_utf8_lossy().into_owned();
    Some(if decoded.is_empty() {
        "/".to_owned()
    } else {
        decoded
    })
}

pub(crate) fn encode_path(path: &str) -> String {
    utf8_percent_encode(path, PATH_SET).to_string()
}

fn encode_query(v: &str) -> String {
    utf8_percent_encode(v, QUERY_SET).to_string()
}

/// The Java enum class of the op parameter for an HTTP method.
fn op_enum_class(method: &Method) -> &'static str {
    match *method {
        Method::PUT => "PutOpParam",
        Method::POST => "PostOpParam",
        Method::DELETE => "DeleteOpParam",
        _ => "GetOpParam",
    }
}

/// Whether the NameNode endpoint knows `op` for `method`.
pub(crate) fn known_op(method: &Method, op: &str, batch_supported: bool) -> bool {
    let ops: &[&str] = match *method {
        Method::GET => &[
            "OPEN",
            "GETFILESTATUS",
            "LISTSTATUS",
            "LISTSTATUS_BATCH",
            "GETCONTENTSUMMARY",
            "GETFILECHECKSUM",
            "GETHOMEDIRECTORY",
            "GETDELEGATIONTOKEN",
            "NULL",
        ],
        Method::PUT => &[
            "CREATE",
            "MKDIRS",
            "RENAME",
            "SETTIMES",
            "SETPERMISSION",
            "SETOWNER",
            "SETREPLICATION",
            "RENEWDELEGATIONTOKEN",
            "CANCELDELEGATIONTOKEN",
            "NULL",
        ],
        Method::POST => &["APPEND", "CONCAT", "NULL"],
        Method::DELETE => &["DELETE", "NULL"],
        _ => &[],
    };
    ops.contains(&op) && (batch_supported || op != "LISTSTATUS_BATCH")
}

pub(crate) fn unknown_op(method: &Method, op: &str) -> RemoteException {
    invalid_param(
        "op",
        &format!(
            "No enum constant org.apache.hadoop.hdfs.web.resources.{}.Op.{op}",
            op_enum_class(method)
        ),
    )
}

/// Whether an op is in the WRITE category (for the standby check).
pub(crate) fn is_write(method: &Method) -> bool {
    *method != Method::GET
}

/// Everything a NameNode handler needs to know about itself.
pub(crate) struct NnContext<'a> {
    pub(crate) shared: &'a Arc<Shared>,
    pub(crate) nn_addr: String,
    /// With security on: the token the request came with (carried into DataNode redirects;
    /// a new one is issued for a SPNEGO-authenticated request).
    pub(crate) request_token: Option<String>,
}

fn ok_bool(b: bool) -> Reply {
    Reply::Json(StatusCode::OK, format!("{{\"boolean\":{b}}}"))
}

/// Handles a request on an active NameNode (the op is already known to be valid).
pub(crate) fn namenode_op(ctx: &NnContext<'_>, req: &ParsedRequest, op: &str) -> Reply {
    match namenode_op_inner(ctx, req, op) {
        Ok(r) => r,
        Err(e) => Reply::Error(e),
    }
}

fn namenode_op_inner(
    ctx: &NnContext<'_>,
    req: &ParsedRequest,
    op: &str,
) -> Result<Reply, RemoteException> {
    let sh = ctx.shared;
    let ns: &Namespace = &sh.ns;
    let path = req.path.as_deref().unwrap_or("/");
    let comps = components(path)?;
    let user = req.user(&sh.default_user).to_owned();
    let now = ns.now_ms();
    match (&req.method, op) {
        (_, "NULL") => Err(RemoteException::new(
            "UnsupportedOperationException",
            "NULL is not supported",
        )),
        (&Method::GET, "GETFILESTATUS") => {
            let t = ns.read();
            let Some(n) = t.get(&comps) else {
                return Err(RemoteException::not_found(format!(
                    "File does not exist: {}",
                    join(&comps)
                )));
            };
            let mut out = String::with_capacity(300);
            out.push_str("{\"FileStatus\":");
            t.write_status_json(&mut out, "", n);
            out.push('}');
            Ok(Reply::Json(StatusCode::OK, out))
        }
        (&Method::GET, "LISTSTATUS") => {
            let mut out = String::with_capacity(1024);
            out.push_str("{\"FileStatuses\":{\"FileStatus\":[");
            ns.read().write_listing(&mut out, &comps, None, None)?;
            out.push_str("]}}");
            Ok(Reply::Json(StatusCode::OK, out))
        }
        (&Method::GET, "LISTSTATUS_BATCH") => {
            let limit = sh.ls_limit();
            let mut out = String::with_capacity(64 + 300 * limit.min(1000));
            out.push_str(
                "{\"DirectoryListing\":{\"partialListing\":{\"FileStatuses\":{\"FileStatus\":[",
            );
            let remaining =
                ns.read()
                    .write_listing(&mut out, &comps, req.param("startafter"), Some(limit))?;
            out.push_str("]}},\"remainingEntries\":");
            out.push_str(&remaining.to_string());
            out.push_str("}}");
            Ok(Reply::Json(StatusCode::OK, out))
        }
        (&Method::GET, "GETCONTENTSUMMARY") => {
            let cs = ns.read().content_summary(&comps)?;
            Ok(Reply::Json(
                StatusCode::OK,
                format!(
                    "{{\"ContentSummary\":{{\"directoryCount\":{},\"ecPolicy\":\"\",\"fileCount\":{},\"length\":{},\"quota\":-1,\"spaceConsumed\":{},\"spaceQuota\":-1,\"typeQuota\":{{}}}}}}",
                    cs.directory_count, cs.file_count, cs.length, cs.space_consumed
                ),
            ))
        }
        (&Method::GET, "GETHOMEDIRECTORY") => {
            let mut out = String::from("{\"Path\":");
            push_json_str(&mut out, &format!("/user/{user}"));
            out.push('}');
            Ok(Reply::Json(StatusCode::OK, out))
        }
        (&Method::GET, "OPEN") => {
            let offset = req.long_param("offset", 0)?.unwrap_or(0) as u64;
            let length = req.long_param("length", 0)?;
            {
                let t = ns.read();
                let Some(n) = t.get(&comps) else {
                    return Err(RemoteException::not_found(format!(
                        "File {} not found.",
                        join(&comps)
                    )));
                };
                let len = n.len();
                if offset >= len && len > 0 {
                    return Err(RemoteException::io(format!(
                        "Offset={offset} out of the range [0, {len}); OPEN, path={}",
                        join(&comps)
                    )));
                }
            }
            let mut extra = format!("&offset={offset}");
            if let Some(l) = length {
                extra.push_str(&format!("&length={l}"));
            }
            redirect(ctx, req, "OPEN", &comps, &user, &extra)
        }
        (&Method::GET, "GETFILECHECKSUM") => {
            if ns.read().get(&comps).is_none() {
                return Err(RemoteException::not_found(format!(
                    "File {} not found.",
                    join(&comps)
                )));
            }
            redirect(ctx, req, "GETFILECHECKSUM", &comps, &user, "")
        }
        (&Method::PUT, "CREATE") => {
            // Parameters are validated by the NameNode; existence is checked by the DataNode.
            let overwrite = req.bool_param("overwrite", false)?;
            let perm = req.permission_param(DEFAULT_FILE_PERMISSION)?;
            let mut extra = format!("&overwrite={overwrite}&permission={perm:o}");
            if let Some(r) = req.long_param("replication", 1)? {
                extra.push_str(&format!("&replication={r}"));
            }
            if let Some(b) = req.long_param("blocksize", 1)? {
                extra.push_str(&format!("&blocksize={b}"));
            }
            redirect(ctx, req, "CREATE", &comps, &user, &extra)
        }
        (&Method::POST, "APPEND") => {
            let t = ns.read();
            match t.get(&comps) {
                None => {
                    return Err(RemoteException::not_found(format!(
                        "File {} not found.",
                        join(&comps)
                    )));
                }
                Some(n) if n.is_dir() => {
                    return Err(RemoteException::not_found(format!(
                        "Path is not a file: {}",
                        join(&comps)
                    )));
                }
                Some(_) => {}
            }
            drop(t);
            redirect(ctx, req, "APPEND", &comps, &user, "")
        }
        (&Method::PUT, "MKDIRS") => {
            let perm = req.permission_param(DEFAULT_DIR_PERMISSION)?;
            let mut t = ns.write();
            let owner = t.intern(&user);
            t.mkdirs(&comps, perm, owner, now)?;
            Ok(ok_bool(true))
        }
        (&Method::PUT, "RENAME") => {
            let dst = req.required("destination", "RENAME")?;
            if !dst.starts_with('/') {
                return Err(invalid_param(
                    "destination",
                    &format!(
                        "Invalid parameter value: destination = {dst} is not an absolute path"
                    ),
                ));
            }
            let dcomps = components(dst)?;
            let options = req.param("renameoptions").unwrap_or("");
            if options.is_empty() {
                return Ok(ok_bool(ns.write().rename_old(&comps, &dcomps, now)));
            }
            let mut overwrite = false;
            for o in options.split(',').map(str::trim).filter(|o| !o.is_empty()) {
                match o.to_ascii_uppercase().as_str() {
                    "OVERWRITE" => overwrite = true,
                    "NONE" => {}
                    other => {
                        return Err(invalid_param(
                            "renameoptions",
                            &format!(
                                "No enum constant org.apache.hadoop.fs.Options.Rename.{other}"
                            ),
                        ));
                    }
                }
            }
            ns.write().rename2(&comps, &dcomps, overwrite, now)?;
            Ok(Reply::Empty(StatusCode::OK))
        }
        (&Method::PUT, "SETTIMES") => {
            let m = req.long_param("modificationtime", -1)?.unwrap_or(-1);
            let a = req.long_param("accesstime", -1)?.unwrap_or(-1);
            ns.write().set_times(&comps, m, a)?;
            Ok(Reply::Empty(StatusCode::OK))
        }
        (&Method::PUT, "SETPERMISSION") => {
            let perm = req.permission_param(DEFAULT_DIR_PERMISSION)?;
            ns.write().set_permission(&comps, perm)?;
            Ok(Reply::Empty(StatusCode::OK))
        }
        (&Method::PUT, "SETOWNER") => {
            let owner = req.param("owner").filter(|s| !s.is_empty());
            let group = req.param("group").filter(|s| !s.is_empty());
            if owner.is_none() && group.is_none() {
                return Err(RemoteException::illegal("Both owner and group are empty."));
            }
            ns.write().set_owner(&comps, owner, group)?;
            Ok(Reply::Empty(StatusCode::OK))
        }
        (&Method::PUT, "SETREPLICATION") => {
            let r = req
                .long_param("replication", 1)?
                .unwrap_or(i64::from(DEFAULT_REPLICATION));
            let r = r.clamp(1, i64::from(u16::MAX)) as u16;
            Ok(ok_bool(ns.write().set_replication(&comps, r)))
        }
        (&Method::POST, "CONCAT") => {
            let sources = req.required("sources", "CONCAT")?;
            let srcs: Vec<Vec<&str>> = sources
                .split(',')
                .filter(|s| !s.is_empty())
                .map(components)
                .collect::<Result<_, _>>()?;
            if srcs.is_empty() {
                return Err(RemoteException::illegal("No sources given"));
            }
            ns.write().concat(&comps, &srcs, now)?;
            Ok(Reply::Empty(StatusCode::OK))
        }
        (&Method::DELETE, "DELETE") => {
            let recursive = req.bool_param("recursive", false)?;
            Ok(ok_bool(ns.write().delete(&comps, recursive, now)?))
        }
        _ => Err(unknown_op(&req.method, op)),
    }
}

/// 307 to the DataNode (or 200 `{"Location":...}` with `noredirect=true`).
fn redirect(
    ctx: &NnContext<'_>,
    req: &ParsedRequest,
    op: &str,
    comps: &[&str],
    user: &str,
    extra: &str,
) -> Result<Reply, RemoteException> {
    let noredirect = req.bool_param("noredirect", false)?;
    // NamenodeWebHdfsMethods.redirectURI: `delegation=` on a secure cluster, `user.name`
    // otherwise.
    let credential = match &ctx.shared.security {
        Some(security) => {
            let token = ctx.request_token.clone().unwrap_or_else(|| {
                security.issue_token(user, user, &ctx.nn_addr, super::wall_clock_ms())
            });
            format!("delegation={}", encode_query(&token))
        }
        None => format!("user.name={}", encode_query(user)),
    };
    let mut url = format!(
        "{}://{}/webhdfs/v1{}?op={op}&{credential}&namenoderpcaddress={}",
        ctx.shared.scheme,
        ctx.shared.dn_authority(),
        encode_path(&join(comps)),
        ctx.nn_addr
    );
    if let (None, Some(d)) = (&ctx.shared.security, req.param("delegation")) {
        url.push_str("&delegation=");
        url.push_str(&encode_query(d));
    }
    url.push_str(extra);
    if noredirect {
        let mut out = String::from("{\"Location\":");
        push_json_str(&mut out, &url);
        out.push('}');
        Ok(Reply::Json(StatusCode::OK, out))
    } else {
        Ok(Reply::Redirect(url))
    }
}

/// Handles a DataNode request (`OPEN`, `CREATE`, `APPEND`, `GETFILECHECKSUM`).
pub(crate) fn datanode_op(shared: &Shared, req: &ParsedRequest, body: Bytes) -> Reply {
    match datanode_op_inner(shared, req, body) {
        Ok(r) => r,
        Err(e) => Reply::Error(e),
    }
}

fn datanode_op_inner(
    sh: &Shared,
    req: &ParsedRequest,
    body: Bytes,
) -> Result<Reply, RemoteException> {
    let Some(path) = req.path.as_deref() else {
        return Ok(Reply::NoRoute);
    };
    let comps = components(path)?;
    let ns = &sh.ns;
    let now = ns.now_ms();
    let op = req.op();
    match (&req.method, op.as_str()) {
        (&Method::GET, "OPEN") => {
            let offset = req.long_param("offset", 0)?.unwrap_or(0) as u64;
            let length = req.long_param("length", 0)?.map(|l| l as u64);
            let data = ns.read_range(&comps, offset, length, sh.access_time_precision_ms())?;
            Ok(Reply::Data(data))
        }
        (&Method::GET, "GETFILECHECKSUM") => {
            let data = ns.read_file(&join(&comps))?;
            let mut hex = String::with_capacity(56);
            for seed in 0u64..4 {
                let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
                for b in data.iter() {
                    h ^= u64::from(*b);
                    h = h.wrapping_mul(0x0100_0000_01b3);
                }
                hex.push_str(&format!("{h:016x}"));
            }
            hex.truncate(56);
            Ok(Reply::Json(
                StatusCode::OK,
                format!(
                    "{{\"FileChecksum\":{{\"algorithm\":\"MD5-of-0MD5-of-512CRC32C\",\"bytes\":\"{hex}\",\"length\":28}}}}"
                ),
            ))
        }
        (&Method::PUT, "CREATE") => {
            let overwrite = req.bool_param("overwrite", false)?;
            let mut spec = NewFile::bytes(body);
            spec.permission = req.permission_param(DEFAULT_FILE_PERMISSION)?;
            spec.replication = req
                .long_param("replication", 1)?
                .map_or(DEFAULT_REPLICATION, |r| {
                    r.clamp(1, i64::from(u16::MAX)) as u16
                });
            spec.block_size = req
                .long_param("blocksize", 1)?
                .map_or(DEFAULT_BLOCK_SIZE, |b| b as u64);
            spec.owner = Some(req.user(&sh.default_user).to_owned());
            ns.write().create_file(&comps, spec, overwrite, now)?;
            let nn = req
                .param("namenoderpcaddress")
                .unwrap_or("localhost")
                .to_owned();
            Ok(Reply::Created(format!(
                "webhdfs://{nn}{}",
                encode_path(&join(&comps))
            )))
        }
        (&Method::POST, "APPEND") => {
            ns.write().append(&comps, &body, now)?;
            Ok(Reply::Empty(StatusCode::OK))
        }
        _ => Err(RemoteException::new(
            "UnsupportedOperationException",
            format!("op={op} is not supported"),
        )),
    }
}
