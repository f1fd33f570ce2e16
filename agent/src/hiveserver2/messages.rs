//! The TCLIService requests and responses the client uses, written by hand on top of the
//! binary protocol: OpenSession, CloseSession, ExecuteStatement, GetOperationStatus,
//! CancelOperation, CloseOperation, GetResultSetMetadata and FetchResults, plus the result
//! sets they carry (row-based `TRow`s before protocol V6, column-based `TColumn`s from V6).
//!
//! Source: Apache Hive, `service-rpc/if/TCLIService.thrift` (field ids, enum values and
//! which fields are required), and the Thrift service-call convention: the arguments are a
//! struct whose field 1 is the request, the result a struct whose field 0 is the response;
//! a server-side failure to process the call is a `TApplicationException` message (field 1
//! message, field 2 type).

use super::protocol::{DecodeError, Decoder, Encoder, invalid, message_type, ttype};

/// `TProtocolVersion` values (the enum starts at 0 for V1).
pub(crate) mod protocol_version {
    /// HIVE_CLI_SERVICE_PROTOCOL_V1.
    pub(crate) const V1: i32 = 0;
    /// HIVE_CLI_SERVICE_PROTOCOL_V6: column-based result sets.
    pub(crate) const V6: i32 = 5;
    /// HIVE_CLI_SERVICE_PROTOCOL_V11, the newest this client knows.
    pub(crate) const V11: i32 = 10;

    /// `V<n>` for a protocol enum value.
    pub(crate) fn name(v: i32) -> String {
        format!("V{}", i64::from(v) + 1)
    }
}

/// `TStatusCode`.
pub(crate) mod status_code {
    pub(crate) const SUCCESS: i32 = 0;
    pub(crate) const SUCCESS_WITH_INFO: i32 = 1;
    pub(crate) const STILL_EXECUTING: i32 = 2;
}

/// `TOperationState`.
pub(crate) mod operation_state {
    pub(crate) const INITIALIZED: i32 = 0;
    pub(crate) const RUNNING: i32 = 1;
    pub(crate) const FINISHED: i32 = 2;
    pub(crate) const CANCELED: i32 = 3;
    pub(crate) const CLOSED: i32 = 4;
    pub(crate) const ERROR: i32 = 5;
    pub(crate) const PENDING: i32 = 7;
    pub(crate) const TIMEDOUT: i32 = 8;

    pub(crate) fn name(s: i32) -> &'static str {
        match s {
            INITIALIZED => "INITIALIZED",
            RUNNING => "RUNNING",
            FINISHED => "FINISHED",
            CANCELED => "CANCELED",
            CLOSED => "CLOSED",
            ERROR => "ERROR",
            6 => "UNKNOWN",
            PENDING => "PENDING",
            TIMEDOUT => "TIMEDOUT",
            _ => "unrecognized",
        }
    }
}

/// One value of a result set.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// BOOLEAN.
    Bool(bool),
    /// TINYINT, SMALLINT, INT, BIGINT (and TIMESTAMP where a server sends it as i64).
    Int(i64),
    /// FLOAT, DOUBLE.
    Double(f64),
    /// STRING, VARCHAR, CHAR, DECIMAL, DATE, TIMESTAMP, complex types (as the server renders
    /// them), and BINARY before protocol V6.
    String(String),
    /// BINARY (protocol V6 and later).
    Binary(Vec<u8>),
}

impl Value {
    /// The value as a string slice, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an integer, if it is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// Whether the value is NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }
}

/// `THandleIdentifier`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HandleId {
    pub(crate) guid: Vec<u8>,
    pub(crate) secret: Vec<u8>,
}

/// `TSessionHandle`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SessionHandle(pub(crate) HandleId);

/// `TOperationHandle`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OperationHandle {
    pub(crate) id: HandleId,
    pub(crate) operation_type: i32,
    pub(crate) has_result_set: bool,
    pub(crate) modified_row_count: Option<f64>,
}

/// `TStatus`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Status {
    pub(crate) code: i32,
    pub(crate) sql_state: Option<String>,
    pub(crate) error_code: Option<i32>,
    pub(crate) error_message: Option<String>,
}

impl Status {
    pub(crate) fn is_success(&self) -> bool {
        matches!(
            self.code,
            status_code::SUCCESS | status_code::SUCCESS_WITH_INFO | status_code::STILL_EXECUTING
        )
    }
}

/// A request: its method name and how to write its fields.
#[derive(Debug)]
pub(crate) enum Request<'a> {
    OpenSession {
        version: i32,
        username: &'a str,
        password: Option<&'a str>,
        configuration: &'a [(String, String)],
    },
    CloseSession(&'a SessionHandle),
    ExecuteStatement {
        session: &'a SessionHandle,
        statement: &'a str,
        run_async: bool,
    },
    GetOperationStatus(&'a OperationHandle),
    CancelOperation(&'a OperationHandle),
    CloseOperation(&'a OperationHandle),
    GetResultSetMetadata(&'a OperationHandle),
    FetchResults {
        operation: &'a OperationHandle,
        max_rows: i64,
    },
}

impl Request<'_> {
    /// The service method name.
    pub(crate) fn method(&self) -> &'static str {
        match self {
            Self::OpenSession { .. } => "OpenSession",
            Self::CloseSession(_) => "CloseSession",
            Self::ExecuteStatement { .. } => "ExecuteStatement",
            Self::GetOperationStatus(_) => "GetOperationStatus",
            Self::CancelOperation(_) => "CancelOperation",
            Self::CloseOperation(_) => "CloseOperation",
            Self::GetResultSetMetadata(_) => "GetResultSetMetadata",
            Self::FetchResults { .. } => "FetchResults",
        }
    }

    /// The whole call message: header, arguments struct (field 1: the request).
    pub(crate) fn encode(&self, seq: i32) -> Vec<u8> {
        let mut e = Encoder::new();
        e.message_begin(self.method(), message_type::CALL, seq);
        e.field(ttype::STRUCT, 1);
        self.encode_fields(&mut e);
        e.stop(); // request
        e.stop(); // arguments
        e.into_bytes()
    }

    fn encode_fields(&self, e: &mut Encoder) {
        match self {
            Self::OpenSession {
                version,
                username,
                password,
                configuration,
            } => {
                e.field(ttype::I32, 1);
                e.i32(*version);
                e.field(ttype::STRING, 2);
                e.string(username);
                if let Some(p) = password {
                    e.field(ttype::STRING, 3);
                    e.string(p);
                }
                if !configuration.is_empty() {
                    e.field(ttype::MAP, 4);
                    e.map_begin(ttype::STRING, ttype::STRING, configuration.len());
                    for (k, v) in configuration.iter() {
                        e.string(k);
                        e.string(v);
                    }
                }
            }
            Self::CloseSession(s) => {
                e.field(ttype::STRUCT, 1);
                encode_session(e, s);
            }
            Self::ExecuteStatement {
                session,
                statement,
                run_async,
            } => {
                e.field(ttype::STRUCT, 1);
                encode_session(e, session);
                e.field(ttype::STRING, 2);
                e.string(statement);
                e.field(ttype::BOOL, 4);
                e.bool(*run_async);
            }
            Self::GetOperationStatus(op)
            | Self::CancelOperation(op)
            | Self::CloseOperation(op)
            | Self::GetResultSetMetadata(op) => {
                e.field(ttype::STRUCT, 1);
                encode_operation(e, op);
            }
            Self::FetchResults {
                operation,
                max_rows,
            } => {
                e.field(ttype::STRUCT, 1);
                encode_operation(e, operation);
                e.field(ttype::I32, 2);
                e.i32(0); // FETCH_NEXT
                e.field(ttype::I64, 3);
                e.i64(*max_rows);
            }
        }
    }
}

fn encode_handle_id(e: &mut Encoder, h: &HandleId) {
    e.field(ttype::STRING, 1);
    e.binary(&h.guid);
    e.field(ttype::STRING, 2);
    e.binary(&h.secret);
    e.stop();
}

fn encode_session(e: &mut Encoder, s: &SessionHandle) {
    e.field(ttype::STRUCT, 1);
    encode_handle_id(e, &s.0);
    e.stop();
}

fn encode_operation(e: &mut Encoder, op: &OperationHandle) {
    e.field(ttype::STRUCT, 1);
    encode_handle_id(e, &op.id);
    e.field(ttype::I32, 2);
    e.i32(op.operation_type);
    e.field(ttype::BOOL, 3);
    e.bool(op.has_result_set);
    if let Some(n) = op.modified_row_count {
        e.field(ttype::DOUBLE, 4);
        e.i64(n.to_bits() as i64);
    }
    e.stop();
}

/// Why a reply could not be used.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ReplyError {
    /// Truncated or malformed.
    Decode(DecodeError),
    /// The server answered with a `TApplicationException`.
    Application { message: String, kind: i32 },
    /// A reply to another call.
    Mismatch(String),
}

impl From<DecodeError> for ReplyError {
    fn from(e: DecodeError) -> Self {
        Self::Decode(e)
    }
}

/// Decodes one reply message to `method`/`seq` from the start of `buf`; returns the response
/// and the bytes it took.
pub(crate) fn decode_reply<T>(
    buf: &[u8],
    method: &str,
    seq: i32,
    body: impl FnOnce(&mut Decoder<'_>) -> Result<T, DecodeError>,
) -> Result<(T, usize), ReplyError> {
    let mut d = Decoder::new(buf);
    let header = d.message_begin()?;
    if header.kind == message_type::EXCEPTION {
        let (mut message, mut kind) = (String::new(), 0);
        d.read_struct(|d, id, t| {
            match (id, t) {
                (1, ttype::STRING) => message = d.string()?,
                (2, ttype::I32) => kind = d.i32()?,
                _ => d.skip(t)?,
            }
            Ok(())
        })?;
        return Err(ReplyError::Application { message, kind });
    }
    if header.kind != message_type::REPLY {
        return Err(ReplyError::Mismatch(format!(
            "message type {} instead of a reply",
            header.kind
        )));
    }
    if header.name != method || header.seq != seq {
        return Err(ReplyError::Mismatch(format!(
            "reply {}#{} to call {method}#{seq}",
            header.name, header.seq
        )));
    }
    let mut body = Some(body);
    let mut out = None;
    d.read_struct(|d, id, t| {
        match (id, t, body.take()) {
            (0, ttype::STRUCT, Some(f)) => out = Some(f(d)?),
            (_, _, f) => {
                body = f;
                d.skip(t)?;
            }
        }
        Ok(())
    })?;
    let out = out.ok_or_else(|| invalid(format!("{method} reply without a result")))?;
    Ok((out, d.position()))
}

fn handle_id(d: &mut Decoder<'_>) -> Result<HandleId, DecodeError> {
    let (mut guid, mut secret) = (None, None);
    d.read_struct(|d, id, t| {
        match (id, t) {
            (1, ttype::STRING) => guid = Some(d.binary()?),
            (2, ttype::STRING) => secret = Some(d.binary()?),
            _ => d.skip(t)?,
        }
        Ok(())
    })?;
    Ok(HandleId {
        guid: guid.ok_or_else(|| invalid("handle without guid"))?,
        secret: secret.ok_or_else(|| invalid("handle without secret"))?,
    })
}

fn session_handle(d: &mut Decoder<'_>) -> Result<SessionHandle, DecodeError> {
    let mut h = None;
    d.read_struct(|d, id, t| {
        match (id, t) {
            (1, ttype::STRUCT) => h = Some(handle_id(d)?),
            _ => d.skip(t)?,
        }
        Ok(())
    })?;
    Ok(SessionHandle(
        h.ok_or_else(|| invalid("session handle without id"))?,
    ))
}

fn operation_handle(d: &mut Decoder<'_>) -> Result<OperationHandle, DecodeError> {
    let (mut h, mut operation_type, mut has_result_set, mut modified_row_count) =
        (None, 0, None, None);
    d.read_struct(|d, id, t| {
        match (id, t) {
            (1, ttype::STRUCT) => h = Some(handle_id(d)?),
            (2, ttype::I32) => operation_type = d.i32()?,
            (3, ttype::BOOL) => has_result_set = Some(d.bool()?),
            (4, ttype::DOUBLE) => modified_row_count = Some(d.double()?),
            _ => d.skip(t)?,
        }
        Ok(())
    })?;
    Ok(OperationHandle {
        id: h.ok_or_else(|| invalid("operation handle without id"))?,
        operation_type,
        has_result_set: has_result_set
            .ok_or_else(|| invalid("operation handle without hasResultSet"))?,
        modified_row_count,
    })
}

fn status(d: &mut Decoder<'_>) -> Result<Status, DecodeError> {
    let mut s = Status::default();
    let mut code = None;
    d.read_struct(|d, id, t| {
        match (id, t) {
            (1, ttype::I32) => code = Some(d.i32()?),
            (3, ttype::STRING) => s.sql_state = Some(d.string()?),
            (4, ttype::I32) => s.error_code = Some(d.i32()?),
            (5, ttype::STRING) => s.error_message = Some(d.string()?),
            _ => d.skip(t)?,
        }
        Ok(())
    })?;
    s.code = code.ok_or_else(|| invalid("status without statusCode"))?;
    Ok(s)
}

/// Reads a response struct whose field 1 is its `TStatus`, handing other fields to `other`.
fn response(
    d: &mut Decoder<'_>,
    mut other: impl FnMut(&mut Decoder<'_>, i16, u8) -> Result<(), DecodeError>,
) -> Result<Status, DecodeError> {
    let mut st = None;
    d.read_struct(|d, id, t| match (id, t) {
        (1, ttype::STRUCT) => {
            st = Some(status(d)?);
            Ok(())
        }
        _ => other(d, id, t),
    })?;
    st.ok_or_else(|| invalid("response without status"))
}

/// A response that is only a status (CloseSession, CancelOperation, CloseOperation).
pub(crate) fn status_response(d: &mut Decoder<'_>) -> Result<Status, DecodeError> {
    response(d, |d, _, t| d.skip(t))
}

/// `TOpenSessionResp`.
#[derive(Debug)]
pub(crate) struct OpenSessionResp {
    pub(crate) status: Status,
    pub(crate) server_protocol_version: Option<i32>,
    pub(crate) session: Option<SessionHandle>,
}

pub(crate) fn open_session_response(d: &mut Decoder<'_>) -> Result<OpenSessionResp, DecodeError> {
    let (mut version, mut session) = (None, None);
    let status = response(d, |d, id, t| {
        match (id, t) {
            (2, ttype::I32) => version = Some(d.i32()?),
            (3, ttype::STRUCT) => session = Some(session_handle(d)?),
            _ => d.skip(t)?,
        }
        Ok(())
    })?;
    Ok(OpenSessionResp {
        status,
        server_protocol_version: version,
        session,
    })
}

/// `TExecuteStatementResp`.
#[derive(Debug)]
pub(crate) struct ExecuteStatementResp {
    pub(crate) status: Status,
    pub(crate) operation: Option<OperationHandle>,
}

pub(crate) fn execute_statement_response(
    d: &mut Decoder<'_>,
) -> Result<ExecuteStatementResp, DecodeError> {
    let mut operation = None;
    let status = response(d, |d, id, t| {
        match (id, t) {
            (2, ttype::STRUCT) => operation = Some(operation_handle(d)?),
            _ => d.skip(t)?,
        }
        Ok(())
    })?;
    Ok(ExecuteStatementResp { status, operation })
}

/// `TGetOperationStatusResp` (the fields the client uses).
#[derive(Debug)]
pub(crate) struct OperationStatusResp {
    pub(crate) status: Status,
    pub(crate) state: Option<i32>,
    pub(crate) sql_state: Option<String>,
    pub(crate) error_code: Option<i32>,
    pub(crate) error_message: Option<String>,
}

pub(crate) fn operation_status_response(
    d: &mut Decoder<'_>,
) -> Result<OperationStatusResp, DecodeError> {
    let (mut state, mut sql_state, mut error_code, mut error_message) = (None, None, None, None);
    let status = response(d, |d, id, t| {
        match (id, t) {
            (2, ttype::I32) => state = Some(d.i32()?),
            (3, ttype::STRING) => sql_state = Some(d.string()?),
            (4, ttype::I32) => error_code = Some(d.i32()?),
            (5, ttype::STRING) => error_message = Some(d.string()?),
            _ => d.skip(t)?,
        }
        Ok(())
    })?;
    Ok(OperationStatusResp {
        status,
        state,
        sql_state,
        error_code,
        error_message,
    })
}

/// `TGetResultSetMetadataResp`: the column names, in order.
#[derive(Debug)]
pub(crate) struct MetadataResp {
    pub(crate) status: Status,
    pub(crate) columns: Vec<String>,
}

pub(crate) fn metadata_response(d: &mut Decoder<'_>) -> Result<MetadataResp, DecodeError> {
    let mut columns = Vec::new();
    let status = response(d, |d, id, t| {
        match (id, t) {
            (2, ttype::STRUCT) => columns = table_schema(d)?,
            _ => d.skip(t)?,
        }
        Ok(())
    })?;
    Ok(MetadataResp { status, columns })
}

fn table_schema(d: &mut Decoder<'_>) -> Result<Vec<String>, DecodeError> {
    let mut columns: Vec<(i32, String)> = Vec::new();
    d.read_struct(|d, id, t| {
        match (id, t) {
            (1, ttype::LIST) => {
                columns = d.read_list(ttype::STRUCT, |d| {
                    let (mut name, mut position) = (None, 0);
                    d.read_struct(|d, id, t| {
                        match (id, t) {
                            (1, ttype::STRING) => name = Some(d.string()?),
                            (3, ttype::I32) => position = d.i32()?,
                            _ => d.skip(t)?,
                        }
                        Ok(())
                    })?;
                    Ok((
                        position,
                        name.ok_or_else(|| invalid("column without name"))?,
                    ))
                })?;
            }
            _ => d.skip(t)?,
        }
        Ok(())
    })?;
    // Servers send columns in order; positions (1-based in Hive) only confirm it.
    columns.sort_by_key(|(p, _)| *p);
    Ok(columns.into_iter().map(|(_, n)| n).collect())
}

/// `TFetchResultsResp`, with the row set already turned into rows.
#[derive(Debug)]
pub(crate) struct FetchResp {
    pub(crate) status: Status,
    pub(crate) rows: Vec<Vec<Value>>,
}

pub(crate) fn fetch_response(d: &mut Decoder<'_>) -> Result<FetchResp, DecodeError> {
    // Field 2, hasMoreRows, is not used: HiveServer2 always sends false.
    let mut rows = Vec::new();
    let status = response(d, |d, id, t| {
        match (id, t) {
            (3, ttype::STRUCT) => rows = row_set(d)?,
            _ => d.skip(t)?,
        }
        Ok(())
    })?;
    Ok(FetchResp { status, rows })
}

/// `TRowSet`: column-based when `columns` is present, row-based otherwise.
fn row_set(d: &mut Decoder<'_>) -> Result<Vec<Vec<Value>>, DecodeError> {
    let (mut rows, mut columns) = (Vec::new(), None);
    d.read_struct(|d, id, t| {
        match (id, t) {
            (2, ttype::LIST) => rows = d.read_list(ttype::STRUCT, row)?,
            (3, ttype::LIST) => columns = Some(d.read_list(ttype::STRUCT, column)?),
            _ => d.skip(t)?,
        }
        Ok(())
    })?;
    match columns {
        Some(columns) if !columns.is_empty() => transpose(columns),
        _ => Ok(rows),
    }
}

fn transpose(columns: Vec<Vec<Value>>) -> Result<Vec<Vec<Value>>, DecodeError> {
    let n = columns[0].len();
    if columns.iter().any(|c| c.len() != n) {
        return Err(invalid("columns of a row set differ in length"));
    }
    let width = columns.len();
    let mut rows: Vec<Vec<Value>> = (0..n).map(|_| Vec::with_capacity(width)).collect();
    for col in columns {
        for (row, v) in rows.iter_mut().zip(col) {
            row.push(v);
        }
    }
    Ok(rows)
}

/// `TRow`: a list of `TColumnValue` unions, each a struct whose optional field 1 is the value.
fn row(d: &mut Decoder<'_>) -> Result<Vec<Value>, DecodeError> {
    let mut values = Vec::new();
    d.read_struct(|d, id, t| {
        match (id, t) {
            (1, ttype::LIST) => values = d.read_list(ttype::STRUCT, column_value)?,
            _ => d.skip(t)?,
        }
        Ok(())
    })?;
    Ok(values)
}

fn column_value(d: &mut Decoder<'_>) -> Result<Value, DecodeError> {
    let mut value = Value::Null;
    d.read_struct(|d, which, t| {
        if t != ttype::STRUCT {
            return d.skip(t);
        }
        d.read_struct(|d, id, t| {
            value = match (which, id, t) {
                (1, 1, ttype::BOOL) => Value::Bool(d.bool()?),
                (2, 1, ttype::BYTE) => Value::Int(d.byte()?.into()),
                (3, 1, ttype::I16) => Value::Int(d.i16()?.into()),
                (4, 1, ttype::I32) => Value::Int(d.i32()?.into()),
                (5, 1, ttype::I64) => Value::Int(d.i64()?),
                (6, 1, ttype::DOUBLE) => Value::Double(d.double()?),
                (7, 1, ttype::STRING) => Value::String(d.string()?),
                _ => {
                    d.skip(t)?;
                    return Ok(());
                }
            };
            Ok(())
        })
    })?;
    Ok(value)
}

/// `TColumn`: a union of typed columns, each `{1: list<T> values, 2: binary nulls}` where
/// bit `i % 8` of byte `i / 8` of `nulls` marks row `i` NULL.
fn column(d: &mut Decoder<'_>) -> Result<Vec<Value>, DecodeError> {
    let mut out = None;
    d.read_struct(|d, which, t| {
        if t != ttype::STRUCT || !(1..=8).contains(&which) {
            return d.skip(t);
        }
        let (mut values, mut nulls) = (Vec::new(), Vec::new());
        d.read_struct(|d, id, t| {
            match (id, t) {
                (1, ttype::LIST) => {
                    values = match which {
                        1 => d.read_list(ttype::BOOL, |d| Ok(Value::Bool(d.bool()?)))?,
                        2 => d.read_list(ttype::BYTE, |d| Ok(Value::Int(d.byte()?.into())))?,
                        3 => d.read_list(ttype::I16, |d| Ok(Value::Int(d.i16()?.into())))?,
                        4 => d.read_list(ttype::I32, |d| Ok(Value::Int(d.i32()?.into())))?,
                        5 => d.read_list(ttype::I64, |d| Ok(Value::Int(d.i64()?)))?,
                        6 => d.read_list(ttype::DOUBLE, |d| Ok(Value::Double(d.double()?)))?,
                        7 => d.read_list(ttype::STRING, |d| Ok(Value::String(d.string()?)))?,
                        _ => d.read_list(ttype::STRING, |d| Ok(Value::Binary(d.binary()?)))?,
                    }
                }
                (2, ttype::STRING) => nulls = d.binary()?,
                _ => d.skip(t)?,
            }
            Ok(())
        })?;
        for (i, v) in values.iter_mut().enumerate() {
            if nulls.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0) {
                *v = Value::Null;
            }
        }
        out = Some(values);
        Ok(())
    })?;
    out.ok_or_else(|| invalid("empty column union"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle() -> HandleId {
        HandleId {
            guid: vec![1; 16],
            secret: vec![2; 16],
        }
    }

    #[test]
    fn open_session_call_bytes() {
        let conf = vec![("set:hiveconf:a".to_owned(), "1".to_owned())];
        let req = Request::OpenSession {
            version: 9,
            username: "u",
            password: None,
            configuration: &conf,
        };
        let mut want = vec![0x80, 0x01, 0x00, 0x01, 0, 0, 0, 11];
        want.extend_from_slice(b"OpenSession");
        want.extend_from_slice(&[0, 0, 0, 1]); // seq
        want.extend_from_slice(&[12, 0, 1]); // args.req
        want.extend_from_slice(&[8, 0, 1, 0, 0, 0, 9]); // client_protocol = V10
        want.extend_from_slice(&[11, 0, 2, 0, 0, 0, 1, b'u']); // username
        want.extend_from_slice(&[13, 0, 4, 11, 11, 0, 0, 0, 1]); // configuration
        want.extend_from_slice(&[0, 0, 0, 14]);
        want.extend_from_slice(b"set:hiveconf:a");
        want.extend_from_slice(&[0, 0, 0, 1, b'1']);
        want.extend_from_slice(&[0, 0]); // end req, end args
        assert_eq!(req.encode(1), want);
    }

    #[test]
    fn fetch_results_call_bytes() {
        let op = OperationHandle {
            id: handle(),
            operation_type: 0,
            has_result_set: true,
            modified_row_count: None,
        };
        let bytes = Request::FetchResults {
            operation: &op,
            max_rows: 1000,
        }
        .encode(3);
        let mut want = vec![0x80, 0x01, 0x00, 0x01, 0, 0, 0, 12];
        want.extend_from_slice(b"FetchResults");
        want.extend_from_slice(&[0, 0, 0, 3, 12, 0, 1]);
        want.extend_from_slice(&[12, 0, 1]); // operationHandle
        want.extend_from_slice(&[12, 0, 1]); // operationId
        want.extend_from_slice(&[11, 0, 1, 0, 0, 0, 16]);
        want.extend_from_slice(&[1; 16]);
        want.extend_from_slice(&[11, 0, 2, 0, 0, 0, 16]);
        want.extend_from_slice(&[2; 16]);
        want.push(0);
        want.extend_from_slice(&[8, 0, 2, 0, 0, 0, 0]); // operationType
        want.extend_from_slice(&[2, 0, 3, 1, 0]); // hasResultSet, end handle
        want.extend_from_slice(&[8, 0, 2, 0, 0, 0, 0]); // FETCH_NEXT
        want.extend_from_slice(&[10, 0, 3, 0, 0, 0, 0, 0, 0, 0x03, 0xe8]); // maxRows
        want.extend_from_slice(&[0, 0]);
        assert_eq!(bytes, want);
    }

    /// A reply header for `method`/`seq` followed by the result struct's field 0.
    fn reply(method: &str, seq: i32) -> Encoder {
        let mut e = Encoder::new();
        e.message_begin(method, message_type::REPLY, seq);
        e.field(ttype::STRUCT, 0);
        e
    }

    fn ok_status(e: &mut Encoder) {
        e.field(ttype::STRUCT, 1);
        e.field(ttype::I32, 1);
        e.i32(0);
        e.stop();
    }

    #[test]
    fn open_session_reply_decodes() {
        let mut e = reply("OpenSession", 1);
        ok_status(&mut e);
        e.field(ttype::I32, 2);
        e.i32(protocol_version::V11);
        e.field(ttype::STRUCT, 3);
        e.field(ttype::STRUCT, 1);
        e.field(ttype::STRING, 1);
        e.binary(&[1; 16]);
        e.field(ttype::STRING, 2);
        e.binary(&[2; 16]);
        e.stop();
        e.stop();
        e.field(ttype::MAP, 4); // configuration: skipped
        e.map_begin(ttype::STRING, ttype::STRING, 0);
        e.stop();
        e.stop();
        let bytes = e.into_bytes();
        let (r, used) = decode_reply(&bytes, "OpenSession", 1, open_session_response).unwrap();
        assert_eq!(used, bytes.len());
        assert!(r.status.is_success());
        assert_eq!(r.server_protocol_version, Some(10));
        assert_eq!(r.session, Some(SessionHandle(handle())));
        // Any prefix is incomplete.
        for cut in 0..bytes.len() {
            assert_eq!(
                decode_reply(&bytes[..cut], "OpenSession", 1, open_session_response).unwrap_err(),
                ReplyError::Decode(DecodeError::Incomplete),
                "cut at {cut}"
            );
        }
        // A reply to another call is refused.
        assert!(matches!(
            decode_reply(&bytes, "OpenSession", 2, open_session_response),
            Err(ReplyError::Mismatch(_))
        ));
    }

    #[test]
    fn application_exception_decodes() {
        let mut e = Encoder::new();
        e.message_begin("OpenSession", message_type::EXCEPTION, 1);
        e.field(ttype::STRING, 1);
        e.string("Required field 'client_protocol' is unset!");
        e.field(ttype::I32, 2);
        e.i32(7);
        e.stop();
        let err =
            decode_reply(&e.into_bytes(), "OpenSession", 1, open_session_response).unwrap_err();
        assert_eq!(
            err,
            ReplyError::Application {
                message: "Required field 'client_protocol' is unset!".into(),
                kind: 7
            }
        );
    }

    #[test]
    fn columnar_row_set_with_nulls() {
        let mut e = reply("FetchResults", 5);
        ok_status(&mut e);
        e.field(ttype::BOOL, 2);
        e.bool(false);
        e.field(ttype::STRUCT, 3); // TRowSet
        e.field(ttype::I64, 1);
        e.i64(0);
        e.field(ttype::LIST, 2);
        e.list_begin(ttype::STRUCT, 0);
        e.field(ttype::LIST, 3);
        e.list_begin(ttype::STRUCT, 3);
        // i32 column [7, NULL, 9]: nulls 0b010
        e.field(ttype::STRUCT, 4);
        e.field(ttype::LIST, 1);
        e.list_begin(ttype::I32, 3);
        e.i32(7);
        e.i32(0);
        e.i32(9);
        e.field(ttype::STRING, 2);
        e.binary(&[0b010]);
        e.stop();
        e.stop();
        // string column ["a", "b", NULL]: nulls 0b100
        e.field(ttype::STRUCT, 7);
        e.field(ttype::LIST, 1);
        e.list_begin(ttype::STRING, 3);
        e.string("a");
        e.string("b");
        e.string("");
        e.field(ttype::STRING, 2);
        e.binary(&[0b100]);
        e.stop();
        e.stop();
        // binary column, nulls empty (none null)
        e.field(ttype::STRUCT, 8);
        e.field(ttype::LIST, 1);
        e.list_begin(ttype::STRING, 3);
        e.binary(&[0]);
        e.binary(&[]);
        e.binary(&[255]);
        e.field(ttype::STRING, 2);
        e.binary(&[]);
        e.stop();
        e.stop();
        e.stop(); // row set
        e.stop(); // response
        e.stop(); // result
        let bytes = e.into_bytes();
        let (r, _) = decode_reply(&bytes, "FetchResults", 5, fetch_response).unwrap();
        assert_eq!(
            r.rows,
            vec![
                vec![
                    Value::Int(7),
                    Value::String("a".into()),
                    Value::Binary(vec![0])
                ],
                vec![
                    Value::Null,
                    Value::String("b".into()),
                    Value::Binary(vec![])
                ],
                vec![Value::Int(9), Value::Null, Value::Binary(vec![255])],
            ]
        );
    }

    #[test]
    fn row_based_row_set() {
        let mut e = reply("FetchResults", 1);
        ok_status(&mut e);
        e.field(ttype::STRUCT, 3);
        e.field(ttype::I64, 1);
        e.i64(0);
        e.field(ttype::LIST, 2);
        e.list_begin(ttype::STRUCT, 1);
        e.field(ttype::LIST, 1); // TRow.colVals
        e.list_begin(ttype::STRUCT, 3);
        e.field(ttype::STRUCT, 1); // boolVal {value = true}
        e.field(ttype::BOOL, 1);
        e.bool(true);
        e.stop();
        e.stop();
        e.field(ttype::STRUCT, 5); // i64Val {} = NULL
        e.stop();
        e.stop();
        e.field(ttype::STRUCT, 6); // doubleVal 2.5
        e.field(ttype::DOUBLE, 1);
        e.i64(2.5f64.to_bits() as i64);
        e.stop();
        e.stop();
        e.stop(); // TRow
        e.stop(); // TRowSet
        e.stop();
        e.stop();
        let (r, _) = decode_reply(&e.into_bytes(), "FetchResults", 1, fetch_response).unwrap();
        assert_eq!(
            r.rows,
            vec![vec![Value::Bool(true), Value::Null, Value::Double(2.5)]]
        );
    }

    #[test]
    fn ragged_columns_are_invalid() {
        let cols = vec![vec![Value::Int(1)], vec![]];
        assert!(transpose(cols).is_err());
    }
}
