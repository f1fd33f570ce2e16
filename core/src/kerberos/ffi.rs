//! The C calls the safe `libgssapi` crate does not wrap — the only `unsafe` code of the
//! Kerberos support, kept to two small functions:
//!
//! * [`acquire_from`]: `gss_acquire_cred_from` (MIT's credential store extension, RFC-less but
//!   documented in MIT's "GSSAPI credential store extensions"), which logs a principal in from
//!   a *client keytab* into a *named ticket cache* without `kinit` and without touching the
//!   process's default cache (`KRB5CCNAME`) — what `gss_acquire_cred` cannot do.
//! * [`MemoryCache`]: destroys a private `MEMORY:` ticket cache once the last credential
//!   handle using it is gone (`krb5_cc_resolve` + `krb5_cc_destroy` of libkrb5; MIT keeps a
//!   memory cache's tickets until it is destroyed).
//!
//! Invariants: every pointer handed to C points into a value that outlives the call (local
//! `CString`s and descriptors); the name imported here is released on every path; the
//! credential handle returned by GSSAPI is owned by exactly one `Cred` (`Cred::from_c`).
#![allow(unsafe_code)]

use std::ffi::{CString, c_char, c_int, c_void};
use std::ptr;

use libgssapi::credential::{Cred, CredUsage};
use libgssapi::error::{Error as GssError, MajorFlags};
use libgssapi_sys as sys;

/// `GSS_KRB5_NT_PRINCIPAL_NAME`, 1.2.840.113554.1.2.2.1 (RFC 1964 §2.1.1), DER body.
const KRB5_NT_PRINCIPAL_NAME: &[u8] = b"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02\x01";

fn call_error(major: MajorFlags) -> GssError {
    GssError { major, minor: 0 }
}

/// `gss_acquire_cred_from(name, GSS_C_INDEFINITE, GSS_C_NO_OID_SET, usage, store)`:
/// credentials of `principal` (a Kerberos principal name; `None`: the store's default) from
/// the credential store `store` (MIT keys: `ccache`, `client_keytab`, `keytab`…).
pub(super) fn acquire_from(
    principal: Option<&str>,
    store: &[(&str, &str)],
    usage: CredUsage,
) -> Result<Cred, GssError> {
    let bad = || call_error(MajorFlags::GSS_S_CALL_BAD_STRUCTURE | MajorFlags::GSS_S_FAILURE);
    let strings = store
        .iter()
        .map(|(k, v)| Ok((CString::new(*k)?, CString::new(*v)?)))
        .collect::<Result<Vec<_>, std::ffi::NulError>>()
        .map_err(|_| bad())?;
    let mut elements: Vec<sys::gss_key_value_element_desc> = strings
        .iter()
        .map(|(k, v)| sys::gss_key_value_element_desc {
            key: k.as_ptr(),
            value: v.as_ptr(),
        })
        .collect();
    let set = sys::gss_key_value_set_desc {
        count: u32::try_from(elements.len()).map_err(|_| bad())?,
        elements: elements.as_mut_ptr(),
    };
    let name = match principal {
        Some(p) => Some(ImportedName::krb5_principal(p)?),
        None => None,
    };
    let usage = match usage {
        CredUsage::Initiate => sys::GSS_C_INITIATE,
        CredUsage::Accept => sys::GSS_C_ACCEPT,
        CredUsage::Both => sys::GSS_C_BOTH,
    };
    let mut minor: sys::OM_uint32 = 0;
    let mut cred: sys::gss_cred_id_t = ptr::null_mut();
    // SAFETY: `set`, its elements and their strings live until the end of this function; the
    // name is a valid imported name or GSS_C_NO_NAME; `cred` and `minor` are valid outputs;
    // the optional outputs (actual mechs, time) are null, which GSSAPI allows.
    let major = unsafe {
        sys::gss_acquire_cred_from(
            &mut minor,
            name.as_ref().map_or(ptr::null_mut(), |n| n.0),
            sys::_GSS_C_INDEFINITE,
            ptr::null_mut(),
            usage as sys::gss_cred_usage_t,
            &set,
            &mut cred,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    drop(name);
    if major == sys::GSS_S_COMPLETE {
        // SAFETY: GSSAPI returned a fresh credential handle that nothing else owns.
        Ok(unsafe { Cred::from_c(cred) })
    } else {
        Err(GssError {
            major: MajorFlags::from_bits_retain(major),
            minor,
        })
    }
}

/// A name imported with `gss_import_name`, released on drop.
struct ImportedName(sys::gss_name_t);

impl ImportedName {
    fn krb5_principal(principal: &str) -> Result<Self, GssError> {
        let mut oid_bytes = KRB5_NT_PRINCIPAL_NAME.to_vec();
        let mut oid = sys::gss_OID_desc {
            length: 10,
            elements: oid_bytes.as_mut_ptr().cast::<c_void>(),
        };
        let mut bytes = principal.as_bytes().to_vec();
        let mut buf = sys::gss_buffer_desc {
            length: bytes.len(),
            value: bytes.as_mut_ptr().cast::<c_void>(),
        };
        let mut minor: sys::OM_uint32 = 0;
        let mut name: sys::gss_name_t = ptr::null_mut();
        // SAFETY: `buf` and `oid` point into vectors alive for the call; GSSAPI copies them.
        let major = unsafe { sys::gss_import_name(&mut minor, &mut buf, &mut oid, &mut name) };
        if major == sys::GSS_S_COMPLETE {
            Ok(Self(name))
        } else {
            Err(GssError {
                major: MajorFlags::from_bits_retain(major),
                minor,
            })
        }
    }
}

impl Drop for ImportedName {
    fn drop(&mut self) {
        let mut minor: sys::OM_uint32 = 0;
        // SAFETY: the name was imported by gss_import_name and is released once.
        unsafe { sys::gss_release_name(&mut minor, &mut self.0) };
    }
}

#[link(name = "krb5")]
unsafe extern "C" {
    fn krb5_init_context(context: *mut *mut c_void) -> c_int;
    fn krb5_free_context(context: *mut c_void);
    fn krb5_cc_resolve(context: *mut c_void, name: *const c_char, cache: *mut *mut c_void)
    -> c_int;
    fn krb5_cc_destroy(context: *mut c_void, cache: *mut c_void) -> c_int;
}

/// A private `MEMORY:` ticket cache, destroyed on drop. Drop it only after every credential
/// handle reading it (field order of the owner: the `Cred` first).
#[derive(Debug)]
pub(super) struct MemoryCache {
    name: String,
}

impl MemoryCache {
    /// A cache named `MEMORY:<suffix>` (unique within the process: the caller's job).
    pub(super) fn new(suffix: &str) -> Self {
        Self {
            name: format!("MEMORY:{suffix}"),
        }
    }

    /// `MEMORY:<suffix>`.
    pub(super) fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for MemoryCache {
    fn drop(&mut self) {
        let Ok(name) = CString::new(self.name.as_str()) else {
            return;
        };
        let mut ctx: *mut c_void = ptr::null_mut();
        // SAFETY: standard libkrb5 sequence: a context, the cache resolved by name (a MEMORY
        // cache that does not exist resolves to an empty one), destroyed (which also closes
        // the handle), the context freed. Nothing else holds this context or handle.
        unsafe {
            if krb5_init_context(&mut ctx) != 0 {
                return;
            }
            let mut cache: *mut c_void = ptr::null_mut();
            if krb5_cc_resolve(ctx, name.as_ptr(), &mut cache) == 0 {
                krb5_cc_destroy(ctx, cache);
            }
            krb5_free_context(ctx);
        }
    }
}
