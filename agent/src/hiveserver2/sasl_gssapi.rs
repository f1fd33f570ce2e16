//! The SASL GSSAPI mechanism (RFC 4752) as HiveServer2's Kerberos authentication uses it over
//! the Thrift SASL transport, as Hive's `TSaslClientTransport` with Java's GSSAPI `SaslClient`
//! does: the pure security-layer negotiation (this file) and the exchange driving a Kerberos
//! context (in `transport`).
//!
//! The exchange: the client sends START `GSSAPI` and OK with its first Kerberos token; context
//! tokens go back and forth in OK messages until the context is established (with mutual
//! authentication the server's AP-REP arrives and the client answers with an empty OK). The
//! server then sends a wrapped 4-byte challenge: a bit mask of the security layers it offers
//! (1 none = QOP `auth`, 2 integrity = `auth-int`, 4 confidentiality = `auth-conf`) and, in
//! three big-endian bytes, the largest wrapped message it accepts. The client answers COMPLETE
//! with a wrapped (never encrypted) response: the one layer it chose, the largest message it
//! accepts (0 without a layer), and an authorization id (empty: the authenticated principal);
//! the server answers COMPLETE. With `auth-int` or `auth-conf` every later Thrift frame holds
//! one wrapped message (signed, or signed and encrypted).

use std::fmt;
use std::str::FromStr;

/// The security layer: HiveServer2's `hive.server2.thrift.sasl.qop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Qop {
    /// Authentication only (the default).
    #[default]
    Auth,
    /// Authentication and integrity: every frame is signed.
    AuthInt,
    /// Authentication, integrity and confidentiality: every frame is encrypted.
    AuthConf,
}

impl Qop {
    /// The layer's bit in the RFC 4752 mask.
    pub(crate) fn bit(self) -> u8 {
        match self {
            Self::Auth => 1,
            Self::AuthInt => 2,
            Self::AuthConf => 4,
        }
    }

    /// Whether frames are wrapped after the negotiation.
    pub(crate) fn wraps(self) -> bool {
        self != Self::Auth
    }

    /// Whether wrapped frames are encrypted.
    pub(crate) fn encrypts(self) -> bool {
        self == Self::AuthConf
    }

    /// The name in Hive's settings.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::AuthInt => "auth-int",
            Self::AuthConf => "auth-conf",
        }
    }
}

impl fmt::Display for Qop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Qop {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auth" => Ok(Self::Auth),
            "auth-int" => Ok(Self::AuthInt),
            "auth-conf" => Ok(Self::AuthConf),
            other => Err(format!("qop {other:?}: auth, auth-int or auth-conf")),
        }
    }
}

/// The names of the layers in a mask, for messages (`auth, auth-conf`).
pub(crate) fn mask_names(mask: u8) -> String {
    let names: Vec<&str> = [Qop::Auth, Qop::AuthInt, Qop::AuthConf]
        .into_iter()
        .filter(|q| mask & q.bit() != 0)
        .map(Qop::name)
        .collect();
    if names.is_empty() {
        format!("none (mask {mask:#04x})")
    } else {
        names.join(", ")
    }
}

/// The server's unwrapped security-layer challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// Bit mask of the layers offered.
    pub(crate) layers: u8,
    /// The largest wrapped message the server accepts (0: no limit stated).
    pub(crate) max_message: u32,
}

/// Decodes the server's unwrapped challenge (exactly 4 bytes).
pub(crate) fn decode_challenge(bytes: &[u8]) -> Result<Challenge, String> {
    match bytes {
        [layers, a, b, c] => Ok(Challenge {
            layers: *layers,
            max_message: u32::from_be_bytes([0, *a, *b, *c]),
        }),
        _ => Err(format!(
            "the server's GSSAPI security-layer challenge has {} bytes, not 4",
            bytes.len()
        )),
    }
}

/// The largest wrapped message this client accepts (the largest the 3 bytes can say; Thrift
/// frames are not split, so a smaller limit would only be ignored by servers).
pub(crate) const CLIENT_MAX_MESSAGE: u32 = 0x00ff_ffff;

/// The layer to use: exactly the configured one, refused when the server does not offer it
/// (as Java's client does when its `javax.security.sasl.qop` list has nothing in common).
pub(crate) fn choose(challenge: Challenge, wanted: Qop) -> Result<Qop, String> {
    if challenge.layers & wanted.bit() != 0 {
        Ok(wanted)
    } else {
        Err(format!(
            "the server offers the SASL security layer(s) {} and not qop = {:?} as configured \
             (its hive.server2.thrift.sasl.qop differs: configure the same value)",
            mask_names(challenge.layers),
            wanted.name()
        ))
    }
}

/// The client's security-layer response before wrapping: the chosen layer's bit, the largest
/// message the client accepts (0 without a layer), and the authorization id.
pub(crate) fn encode_response(chosen: Qop, authzid: &str) -> Vec<u8> {
    let max = if chosen.wraps() {
        CLIENT_MAX_MESSAGE
    } else {
        0
    };
    let mut out = Vec::with_capacity(4 + authzid.len());
    out.push(chosen.bit());
    out.extend_from_slice(&max.to_be_bytes()[1..]);
    out.extend_from_slice(authzid.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_decoding() {
        assert_eq!(
            decode_challenge(&[0x07, 0x01, 0x00, 0x00]).unwrap(),
            Challenge {
                layers: 7,
                max_message: 65536
            }
        );
        assert_eq!(
            decode_challenge(&[0x04, 0xff, 0xff, 0xff])
                .unwrap()
                .max_message,
            0x00ff_ffff
        );
        for bad in [&[][..], &[1, 0, 0], &[1, 0, 0, 0, 0]] {
            let e = decode_challenge(bad).unwrap_err();
            assert!(e.contains("not 4"), "{e}");
        }
    }

    #[test]
    fn the_configured_layer_is_chosen_only_when_offered() {
        let all = Challenge {
            layers: 7,
            max_message: 65536,
        };
        for q in [Qop::Auth, Qop::AuthInt, Qop::AuthConf] {
            assert_eq!(choose(all, q).unwrap(), q);
        }
        let conf_only = Challenge {
            layers: 4,
            max_message: 65536,
        };
        let e = choose(conf_only, Qop::Auth).unwrap_err();
        assert!(e.contains("auth-conf") && e.contains("\"auth\""), "{e}");
        let none = Challenge {
            layers: 0,
            max_message: 0,
        };
        let e = choose(none, Qop::AuthConf).unwrap_err();
        assert!(e.contains("none (mask 0x00)"), "{e}");
        assert_eq!(mask_names(3), "auth, auth-int");
    }

    #[test]
    fn response_encoding() {
        // No layer: the maximum is 0 (RFC 4752 section 3.1); the authorization id follows.
        assert_eq!(encode_response(Qop::Auth, ""), [1, 0, 0, 0]);
        assert_eq!(
            encode_response(Qop::AuthInt, "hsf"),
            [2, 0xff, 0xff, 0xff, b'h', b's', b'f']
        );
        assert_eq!(encode_response(Qop::AuthConf, ""), [4, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn qop_names_parse_and_print() {
        for q in [Qop::Auth, Qop::AuthInt, Qop::AuthConf] {
            assert_eq!(q.name().parse::<Qop>().unwrap(), q);
            assert_eq!(q.to_string(), q.name());
        }
        assert_eq!(" AUTH-CONF ".parse::<Qop>().unwrap(), Qop::AuthConf);
        assert!("privacy".parse::<Qop>().unwrap_err().contains("auth-conf"));
        assert!(!Qop::Auth.wraps() && Qop::AuthInt.wraps() && !Qop::AuthInt.encrypts());
        assert!(Qop::AuthConf.encrypts());
    }
}
