//! Reads the principals of a keytab file, to name the cause of a failed login before GSSAPI
//! does (it reports a missing keytab, an unreadable one and a principal missing from it all
//! as "No credentials cache found").
//!
//! Format: MIT's keytab file format (`doc/formats/keytab_file_format.rst` of MIT krb5):
//! `0x05 0x02` (version 2, big-endian; version 1 is in host byte order), then records of an
//! `int32` length (negative: a hole of that many bytes) followed by: `uint16` component
//! count (version 1 counts the realm too), the realm and the components as `uint16`-counted
//! strings, `uint32` name type (version 2 only), `uint32` timestamp, `uint8` kvno, the key
//! (`uint16` enctype, `uint16`-counted bytes), and, when at least 4 bytes remain, a `uint32`
//! kvno that replaces the 8-bit one when non-zero.

use std::path::Path;

use super::KerberosError;

/// One key of a keytab (the key itself is not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeytabEntry {
    /// `component/component@REALM`.
    pub principal: String,
    /// Key version number.
    pub kvno: u32,
    /// Encryption type number.
    pub enctype: u16,
}

/// Reads the entries of the keytab at `path`.
pub fn read(path: &Path) -> Result<Vec<KeytabEntry>, KerberosError> {
    let err = |reason: String| KerberosError::Keytab {
        keytab: path.display().to_string(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => err("no such file".to_owned()),
        std::io::ErrorKind::PermissionDenied => {
            err("permission denied (the keytab must be readable by this process's user)".to_owned())
        }
        _ => err(e.to_string()),
    })?;
    parse(&bytes).map_err(|m| err(format!("not a keytab: {m}")))
}

/// Parses keytab bytes.
pub fn parse(bytes: &[u8]) -> Result<Vec<KeytabEntry>, String> {
    let big_endian = match bytes {
        [5, 2, ..] => true,
        [5, 1, ..] => cfg!(target_endian = "big"),
        [] => return Err("empty file".to_owned()),
        _ => return Err("unknown format version".to_owned()),
    };
    let v1 = bytes[1] == 1;
    let mut r = Reader {
        bytes: &bytes[2..],
        big_endian,
    };
    let mut out = Vec::new();
    while !r.bytes.is_empty() {
        // A truncated trailing length (fewer than 4 bytes) ends the file as MIT's reader does.
        let Ok(len) = r.u32() else { break };
        #[allow(clippy::cast_possible_wrap)]
        let len = len as i32;
        if len == 0 {
            break;
        }
        let size = usize::try_from(len.unsigned_abs()).map_err(|e| e.to_string())?;
        let record = r.take(size)?;
        if len < 0 {
            continue;
        }
        out.push(entry(record, big_endian, v1)?);
    }
    Ok(out)
}

fn entry(record: &[u8], big_endian: bool, v1: bool) -> Result<KeytabEntry, String> {
    let mut r = Reader {
        bytes: record,
        big_endian,
    };
    let mut count = r.u16()?;
    if v1 {
        count = count.saturating_sub(1);
    }
    let realm = r.string()?;
    let components = (0..count)
        .map(|_| r.string())
        .collect::<Result<Vec<_>, _>>()?;
    if !v1 {
        r.u32()?; // name type
    }
    r.u32()?; // timestamp
    let kvno8 = r.take(1)?[0];
    let enctype = r.u16()?;
    let key_len = r.u16()?;
    r.take(usize::from(key_len))?;
    let kvno = match r.u32() {
        Ok(k) if k != 0 => k,
        _ => u32::from(kvno8),
    };
    Ok(KeytabEntry {
        principal: format!("{}@{realm}", components.join("/")),
        kvno,
        enctype,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    big_endian: bool,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err("truncated record".to_owned());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b: [u8; 2] = self.take(2)?.try_into().map_err(|_| "short")?;
        Ok(if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| "short")?;
        Ok(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }
    fn string(&mut self) -> Result<String, String> {
        let n = self.u16()?;
        let b = self.take(usize::from(n))?;
        String::from_utf8(b.to_vec()).map_err(|_| "a name is not UTF-8".to_owned())
    }
}

/// Whether `entries` hold a key for `principal`; a principal without `@REALM` matches any
/// realm (GSSAPI would append the default realm).
pub fn holds(entries: &[KeytabEntry], principal: &str) -> bool {
    entries.iter().any(|e| {
        e.principal == principal
            || (!principal.contains('@')
                && e.principal
                    .split_once('@')
                    .is_some_and(|(p, _)| p == principal))
    })
}

/// The distinct principals of `entries`, for messages.
pub fn principals(entries: &[KeytabEntry]) -> String {
    let mut p: Vec<&str> = entries.iter().map(|e| e.principal.as_str()).collect();
    p.sort_unstable();
    p.dedup();
    if p.is_empty() {
        "no keys".to_owned()
    } else {
        p.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-2 record: hsf/localhost@HSF.TEST, kvno 3 (32-bit field), enctype 18.
    fn record(kvno8: u8, kvno32: Option<u32>) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend(2u16.to_be_bytes());
        for s in ["HSF.TEST", "hsf", "localhost"] {
            r.extend(u16::try_from(s.len()).unwrap().to_be_bytes());
            r.extend(s.as_bytes());
        }
        r.extend(1u32.to_be_bytes()); // KRB5_NT_PRINCIPAL
        r.extend(0u32.to_be_bytes());
        r.push(kvno8);
        r.extend(18u16.to_be_bytes());
        r.extend(32u16.to_be_bytes());
        r.extend([7u8; 32]);
        if let Some(k) = kvno32 {
            r.extend(k.to_be_bytes());
        }
        r
    }

    fn file(records: &[Vec<u8>]) -> Vec<u8> {
        let mut f = vec![5, 2];
        for rec in records {
            f.extend(i32::try_from(rec.len()).unwrap().to_be_bytes());
            f.extend(rec);
        }
        f
    }

    #[test]
    fn reads_principals_and_kvnos() {
        let mut f = file(&[record(3, Some(300)), record(2, None)]);
        // A hole of 5 bytes, then the end.
        f.extend((-5i32).to_be_bytes());
        f.extend([0u8; 5]);
        let e = parse(&f).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].principal, "hsf/localhost@HSF.TEST");
        assert_eq!((e[0].kvno, e[1].kvno, e[0].enctype), (300, 2, 18));
        assert!(holds(&e, "hsf/localhost@HSF.TEST"));
        assert!(holds(&e, "hsf/localhost"));
        assert!(!holds(&e, "hsf-other@HSF.TEST"));
        assert_eq!(principals(&e), "hsf/localhost@HSF.TEST");
    }

    #[test]
    fn rejects_what_is_not_a_keytab() {
        assert!(parse(b"").is_err());
        assert!(parse(b"[libdefaults]").is_err());
        let mut f = file(&[record(1, None)]);
        f.truncate(f.len() - 10);
        assert!(parse(&f).is_err());
    }
}
