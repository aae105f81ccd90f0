//! Authentication: who a request is made by.
//!
//! A request names its principal with `Authorization: Bearer <key>` (the
//! scheme in any case, RFC 9110). Keys are configured by their SHA-256
//! digest, never in clear (`[auth] keys`, `keys_file`): the presented key's
//! digest is compared with every configured one in constant time, so
//! neither a key nor how much of it matched leaks through timing or logs.
//! `admin.token` is the admin's key, kept for the operators' scripts.
//!
//! With no keys at all the node runs open: a request without credentials is
//! [`Principal::Open`] and may do anything. The HTTP gateway refuses to
//! listen anywhere but on loopback in that mode (see `startup`).

use crate::config::{AdminSettings, AuthSettings};
use crate::domain::access::Principal;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why a request is not authenticated (401), or the keys are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("this request needs credentials: Authorization: Bearer <key>")]
    Missing,
    #[error("the Authorization header is not \"Bearer <key>\"")]
    Malformed,
    #[error("the key is not known")]
    Unknown,
    #[error("auth: {0}")]
    Config(String),
}

/// The keys a node accepts.
#[derive(Clone)]
pub struct Authenticator {
    /// (SHA-256 digest, principal).
    keys: Vec<([u8; 32], Principal)>,
    /// Only the admin token is configured: requests without credentials are
    /// open, the token is the admin.
    open: bool,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Digests are not secrets, but nothing about keys goes to a log.
        write!(f, "Authenticator {{ keys: {}, open: {} }}", self.keys.len(), self.open)
    }
}

impl Authenticator {
    /// The keys of `auth` (and its `keys_file`) and the admin token.
    pub fn from_settings(auth: &AuthSettings, admin: &AdminSettings) -> Result<Authenticator, AuthError> {
        let mut keys = Vec::new();
        for (i, key) in auth.keys.iter().enumerate() {
            keys.push(
                entry(&key.sha256, &key.principal)
                    .map_err(|e| AuthError::Config(format!("keys[{i}]: {e}")))?,
            );
        }
        if !auth.keys_file.is_empty() {
            let text = std::fs::read_to_string(&auth.keys_file)
                .map_err(|e| AuthError::Config(format!("keys_file {:?}: {e}", auth.keys_file)))?;
            keys.extend(
                parse_keys_file(&text)
                    .map_err(|e| AuthError::Config(format!("keys_file {:?}: {e}", auth.keys_file)))?,
            );
        }
        let open = keys.is_empty();
        if !admin.token.is_empty() {
            keys.push((digest(admin.token.as_bytes()), Principal::Admin));
        }
        Ok(Authenticator { keys, open })
    }

    /// Whether any key stands for the admin.
    pub fn has_admin(&self) -> bool {
        self.keys.iter().any(|(_, p)| *p == Principal::Admin)
    }

    /// No keys are configured: requests without credentials may do anything.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Who the request with this `Authorization` header value is by.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        let Some(value) = authorization else {
            return if self.open { Ok(Principal::Open) } else { Err(AuthError::Missing) };
        };
        let key = bearer(value).ok_or(AuthError::Malformed)?;
        let presented = digest(key.as_bytes());
        // Every configured digest is compared, so the time taken does not
        // tell which (or whether one) matched.
        let mut found = None;
        for (known, principal) in &self.keys {
            if bool::from(known.ct_eq(&presented)) {
                found = Some(principal);
            }
        }
        found.cloned().ok_or(AuthError::Unknown)
    }
}

/// The key of `Bearer <key>`; the scheme in any case.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, key) = value.trim().split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The hex SHA-256 digest of `key`: what to configure for it.
pub fn digest_hex(key: &str) -> String {
    digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn entry(sha256: &str, principal: &str) -> Result<([u8; 32], Principal), String> {
    let hex = sha256.trim();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("sha256 must be 64 hex digits (the digest of the key, not the key)".into());
    }
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    let principal = Principal::parse(principal).map_err(|e| e.to_string())?;
    Ok((digest, principal))
}

/// Lines of `<sha256 hex> <principal>`; blank lines and `#` comments skipped.
fn parse_keys_file(text: &str) -> Result<Vec<([u8; 32], Principal)>, String> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (hex, principal) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("line {}: want \"<sha256> <principal>\"", n + 1))?;
        keys.push(entry(hex, principal.trim()).map_err(|e| format!("line {}: {e}", n + 1))?);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KeySetting;

    fn with_keys(keys: &[(&str, &str)], token: &str) -> Authenticator {
        let keys = keys
            .iter()
            .map(|(k, p)| KeySetting { sha256: digest_hex(k), principal: p.to_string() })
            .collect();
        let auth = AuthSettings { keys, keys_file: String::new() };
        Authenticator::from_settings(&auth, &AdminSettings { token: token.into() }).unwrap()
    }

    #[test]
    fn a_key_is_its_principal_and_the_scheme_is_case_insensitive() {
        let a = with_keys(&[("kim-secret", "customer:kim"), ("d1-secret", "driver:d1")], "");
        assert!(!a.is_open());
        assert_eq!(a.authenticate(Some("Bearer kim-secret")).unwrap().to_string(), "customer:kim");
        assert_eq!(a.authenticate(Some("bearer d1-secret")).unwrap().to_string(), "driver:d1");
        assert_eq!(a.authenticate(Some("BEARER  d1-secret ")).unwrap().to_string(), "driver:d1");
        assert_eq!(a.authenticate(Some("Bearer nope")), Err(AuthError::Unknown));
        assert_eq!(a.authenticate(Some("Basic a2ltOng=")), Err(AuthError::Malformed));
        assert_eq!(a.authenticate(None), Err(AuthError::Missing));
    }

    #[test]
    fn with_no_keys_the_node_is_open_and_the_admin_token_is_the_admin() {
        let a = with_keys(&[], "t0ken");
        assert!(a.is_open());
        assert_eq!(a.authenticate(None), Ok(Principal::Open));
        assert_eq!(a.authenticate(Some("Bearer t0ken")), Ok(Principal::Admin));
        assert_eq!(a.authenticate(Some("Bearer guess")), Err(AuthError::Unknown));
    }

    #[test]
    fn a_keys_file_holds_digests_and_a_bad_line_is_named() {
        let file =
            format!("# the shop\n{} seller\n\n{}  customer:kim # kim\n", digest_hex("s"), digest_hex("k"));
        let keys = parse_keys_file(&file).unwrap();
        assert_eq!(keys.len(), 2);
        assert!(parse_keys_file("abc seller").unwrap_err().contains("line 1"));
        assert!(parse_keys_file(&format!("{} customer", digest_hex("x")))
            .unwrap_err()
            .contains("customer:<id>"));
    }

    #[test]
    fn a_key_given_in_clear_instead_of_its_digest_is_refused() {
        let auth = AuthSettings {
            keys: vec![KeySetting { sha256: "my-secret-key".into(), principal: "seller".into() }],
            keys_file: String::new(),
        };
        let err = Authenticator::from_settings(&auth, &AdminSettings { token: String::new() }).unwrap_err();
        assert!(err.to_string().contains("64 hex digits"), "{err}");
        assert!(!err.to_string().contains("my-secret-key"), "the value is never echoed");
    }
}
