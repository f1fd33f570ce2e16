//! Permission checks of secret files (passwords, delegation tokens, TLS private keys,
//! keytabs) at start-up: a file that every user of the host may read is worth a warning —
//! logged once per file and counted in the gauge `…secret_files_insecure{kind}` — never an
//! error. Group-readable files are fine: that is how a service user gets them (systemd's
//! `SupplementaryGroups`, `chmod 0640`). Contents are never read here.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What a secret file holds; the metric's only label (four values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecretKind {
    /// A password (database, HiveServer2, API bearer token file).
    Password,
    /// A Hadoop delegation token.
    Token,
    /// A TLS private key.
    PrivateKey,
    /// A Kerberos keytab.
    Keytab,
}

impl SecretKind {
    /// Every kind, in label order.
    pub const ALL: [SecretKind; 4] = [Self::Password, Self::Token, Self::PrivateKey, Self::Keytab];

    /// The metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Token => "token",
            Self::PrivateKey => "private_key",
            Self::Keytab => "keytab",
        }
    }
}

impl fmt::Display for SecretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Password => "password file",
            Self::Token => "delegation token file",
            Self::PrivateKey => "private key file",
            Self::Keytab => "keytab",
        })
    }
}

/// A secret file every user may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsecureFile {
    /// The file.
    pub path: PathBuf,
    /// What it holds.
    pub kind: SecretKind,
    /// Its permission bits (`0o644`...).
    pub mode: u32,
}

impl fmt::Display for InsecureFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} is readable by every user (mode {:04o}); chmod o-r it (0640 with a group \
             of the service user, or 0600)",
            self.kind,
            self.path.display(),
            self.mode & 0o7777
        )
    }
}

/// Whether permission bits let every user ("others") read the file (pure).
pub fn readable_by_others(mode: u32) -> bool {
    mode & 0o004 != 0
}

/// Files found insecure in this process, by kind (what the gauge shows).
static INSECURE: Mutex<BTreeSet<(SecretKind, PathBuf)>> = Mutex::new(BTreeSet::new());

/// Checks the permissions of the secret file `path` (following symbolic links): `Some` when
/// the group or other users may read it. The first finding of each file is logged as a
/// warning and counted in `…secret_files_insecure{kind}` ([`super::metrics`]). A file that
/// cannot be examined gives `None` (reading it reports that).
pub fn check_file_permissions(path: &Path, kind: SecretKind) -> Option<InsecureFile> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    if !readable_by_others(mode) {
        return None;
    }
    let found = InsecureFile {
        path: path.to_owned(),
        kind,
        mode,
    };
    let first = INSECURE
        .lock()
        .map(|mut set| set.insert((kind, path.to_owned())))
        .unwrap_or(false);
    if first {
        tracing::warn!(kind = kind.label(), path = %path.display(), "insecure secret file: {found}");
    }
    Some(found)
}

/// Insecure secret files found so far, per kind (every kind present, zeros included).
pub fn insecure_counts() -> Vec<(SecretKind, u64)> {
    let set = INSECURE.lock().map(|s| s.clone()).unwrap_or_default();
    SecretKind::ALL
        .iter()
        .map(|k| (*k, set.iter().filter(|(kind, _)| kind == k).count() as u64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn world_readable_files_are_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "hunter2\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(check_file_permissions(&f, SecretKind::Keytab), None);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let before = insecure_counts();
        let found = check_file_permissions(&f, SecretKind::Keytab).unwrap();
        let text = found.to_string();
        assert!(text.contains("keytab"), "{text}");
        assert!(text.contains("every user"), "{text}");
        assert!(text.contains("0644"), "{text}");
        assert!(!text.contains("hunter2"));
        // A second check of the same file does not count twice.
        assert!(check_file_permissions(&f, SecretKind::Keytab).is_some());
        let after = insecure_counts();
        let keytabs = |c: &[(SecretKind, u64)]| {
            c.iter()
                .find(|(k, _)| *k == SecretKind::Keytab)
                .map(|(_, n)| *n)
                .unwrap()
        };
        assert_eq!(keytabs(&after), keytabs(&before) + 1);
        // Group-readable is how a service user gets its secrets: no warning.
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(check_file_permissions(&f, SecretKind::Password), None);
        assert!(check_file_permissions(&dir.path().join("missing"), SecretKind::Token).is_none());
        assert!(!readable_by_others(0o600));
        assert!(!readable_by_others(0o400));
        assert!(!readable_by_others(0o640));
        assert!(readable_by_others(0o604));
    }
}
