//! Authentication: who a request is made by.
//!
//! A request names its principal with `Authorization: Bearer <key>` (the
//! scheme in any case, RFC 9110). Keys are configured by their SHA-256
//! digest, never in clear (`[auth] keys`, `keys_file`): the presented key's
//! digest is compared with every configured one in constant time, so
//! neither a key nor how much of it matched leaks through timing or logs.
//! `admin.token` is the admin's key, kept for the operators' scripts.
//!
//! A bearer that is a JSON Web Token (`[auth.jwt]`) is verified instead by
//! `jsonwebtoken`: its signature with the configured key, its issuer,
//! audience and expiry; the configured claim names the principal.
//!
//! With no keys and no tokens at all the node runs open: a request without credentials is
//! [`Principal::Open`] and may do anything. The HTTP gateway refuses to
//! listen anywhere but on loopback in that mode (see `startup`).

use crate::config::{AdminSettings, AuthSettings, JwtSettings};
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
    #[error("the token is not accepted: {0}")]
    Token(String),
    #[error("auth: {0}")]
    Config(String),
}

/// The keys a node accepts.
#[derive(Clone)]
pub struct Authenticator {
    /// (SHA-256 digest, principal).
    keys: Vec<([u8; 32], Principal)>,
    jwt: Option<Jwt>,
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
        let jwt = Jwt::from_settings(&auth.jwt)?;
        let open = keys.is_empty() && jwt.is_none();
        if !admin.token.is_empty() {
            keys.push((digest(admin.token.as_bytes()), Principal::Admin));
        }
        Ok(Authenticator { keys, jwt, open })
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
        if let Some(jwt) = self.jwt.as_ref().filter(|_| looks_like_a_jwt(key)) {
            return jwt.verify(key);
        }
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

/// Whether `given` is the secret `known`, compared in constant time, so
/// the time taken does not tell how much of a guess was right (the
/// cluster's hop key, on every request a router sends on).
pub fn same_secret(given: &[u8], known: &[u8]) -> bool {
    bool::from(given.ct_eq(known))
}

/// Three dot-separated parts: a JWT, not an API key.
fn looks_like_a_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// How tokens are verified.
#[derive(Clone)]
struct Jwt {
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
    claim: String,
}

impl Jwt {
    fn from_settings(s: &JwtSettings) -> Result<Option<Jwt>, AuthError> {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation};
        if s.algorithm.is_empty() {
            return Ok(None);
        }
        let bad = |why: String| AuthError::Config(format!("jwt: {why}"));
        let algorithm = match s.algorithm.as_str() {
            "HS256" => Algorithm::HS256,
            "RS256" => Algorithm::RS256,
            "EdDSA" => Algorithm::EdDSA,
            other => return Err(bad(format!("algorithm {other:?}: use HS256, RS256 or EdDSA"))),
        };
        if s.issuer.is_empty() || s.audience.is_empty() || s.principal_claim.is_empty() {
            return Err(bad(
                "issuer, audience and principal_claim must be set: every token is checked against them"
                    .into(),
            ));
        }
        let bytes = std::fs::read(&s.key_file).map_err(|e| bad(format!("key_file {:?}: {e}", s.key_file)))?;
        let key = match algorithm {
            Algorithm::HS256 => DecodingKey::from_secret(&bytes),
            Algorithm::RS256 => {
                DecodingKey::from_rsa_pem(&bytes).map_err(|e| bad(format!("key_file: {e}")))?
            }
            _ => DecodingKey::from_ed_pem(&bytes).map_err(|e| bad(format!("key_file: {e}")))?,
        };
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&s.issuer]);
        validation.set_audience(&[&s.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        Ok(Some(Jwt { key, validation, claim: s.principal_claim.clone() }))
    }

    /// The principal a valid token names; why not, for one that is not.
    fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &self.key,
            &self.validation,
        )
        .map_err(|e| AuthError::Token(e.to_string()))?
        .claims;
        let named = claims.get(&self.claim).and_then(|v| v.as_str());
        let named = named.ok_or_else(|| AuthError::Token(format!("no {} claim", self.claim)))?;
        Principal::parse(named).map_err(|e| AuthError::Token(e.to_string()))
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
        let auth = AuthSettings { keys, keys_file: String::new(), jwt: no_jwt() };
        Authenticator::from_settings(&auth, &AdminSettings { token: token.into() }).unwrap()
    }

    fn no_jwt() -> JwtSettings {
        JwtSettings {
            algorithm: String::new(),
            key_file: String::new(),
            issuer: String::new(),
            audience: String::new(),
            principal_claim: "sub".into(),
        }
    }

    /// A node that takes tokens signed with `algorithm` and the key in
    /// `key` (written to a file, as configured).
    fn with_jwt(algorithm: &str, key: &[u8]) -> (Authenticator, tempfile::NamedTempFile) {
        use std::io::Write;
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(key).unwrap();
        let jwt = JwtSettings {
            algorithm: algorithm.into(),
            key_file: file.path().display().to_string(),
            issuer: "https://id.example".into(),
            audience: "fulfil".into(),
            principal_claim: "sub".into(),
        };
        let auth = AuthSettings { keys: vec![], keys_file: String::new(), jwt };
        (Authenticator::from_settings(&auth, &AdminSettings { token: String::new() }).unwrap(), file)
    }

    fn token(
        key: &jsonwebtoken::EncodingKey,
        algorithm: jsonwebtoken::Algorithm,
        claims: serde_json::Value,
    ) -> String {
        jsonwebtoken::encode(&jsonwebtoken::Header::new(algorithm), &claims, key).unwrap()
    }

    fn claims(sub: &str, iss: &str, aud: &str, exp_in: i64) -> serde_json::Value {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        serde_json::json!({"sub": sub, "iss": iss, "aud": aud, "exp": now + exp_in})
    }

    #[test]
    fn a_valid_token_names_its_principal_and_issuer_audience_and_expiry_are_checked() {
        use jsonwebtoken::{Algorithm, EncodingKey};
        let (auth, _file) = with_jwt("HS256", b"a shared secret of enough length");
        assert!(!auth.is_open());
        let key = EncodingKey::from_secret(b"a shared secret of enough length");
        let good = token(&key, Algorithm::HS256, claims("driver:d1", "https://id.example", "fulfil", 600));
        assert_eq!(auth.authenticate(Some(&format!("Bearer {good}"))).unwrap().to_string(), "driver:d1");
        for (why, bad) in [
            ("expired", claims("driver:d1", "https://id.example", "fulfil", -600)),
            ("issuer", claims("driver:d1", "https://evil.example", "fulfil", 600)),
            ("audience", claims("driver:d1", "https://id.example", "other", 600)),
        ] {
            let bad = token(&key, Algorithm::HS256, bad);
            assert!(
                matches!(auth.authenticate(Some(&format!("Bearer {bad}"))), Err(AuthError::Token(_))),
                "{why}"
            );
        }
        let forged = token(
            &EncodingKey::from_secret(b"another secret"),
            Algorithm::HS256,
            claims("admin", "https://id.example", "fulfil", 600),
        );
        assert!(matches!(auth.authenticate(Some(&format!("Bearer {forged}"))), Err(AuthError::Token(_))));
    }

    #[test]
    fn an_eddsa_token_is_verified_with_the_public_key() {
        use jsonwebtoken::{Algorithm, EncodingKey};
        const PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIEmWNwN0hibcIqDNoujMyDEJ0VPGwflESVbXkebnz0tf\n-----END PRIVATE KEY-----\n";
        const PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAgbb3z+cbeHZTEuWUbuNLo8475j9ZM+CD8KKX0CJZkWA=\n-----END PUBLIC KEY-----\n";
        let (auth, _file) = with_jwt("EdDSA", PUBLIC.as_bytes());
        let key = EncodingKey::from_ed_pem(PRIVATE.as_bytes()).unwrap();
        let t = token(&key, Algorithm::EdDSA, claims("customer:kim", "https://id.example", "fulfil", 600));
        assert_eq!(auth.authenticate(Some(&format!("bearer {t}"))).unwrap().to_string(), "customer:kim");
    }

    #[test]
    fn a_jwt_setting_without_issuer_or_with_an_unknown_algorithm_is_refused() {
        let mut jwt = no_jwt();
        jwt.algorithm = "HS256".into();
        let auth = AuthSettings { keys: vec![], keys_file: String::new(), jwt: jwt.clone() };
        let err = Authenticator::from_settings(&auth, &AdminSettings { token: String::new() }).unwrap_err();
        assert!(err.to_string().contains("issuer"), "{err}");
        jwt.algorithm = "none".into();
        let auth = AuthSettings { keys: vec![], keys_file: String::new(), jwt };
        let err = Authenticator::from_settings(&auth, &AdminSettings { token: String::new() }).unwrap_err();
        assert!(err.to_string().contains("HS256, RS256 or EdDSA"), "{err}");
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
            jwt: no_jwt(),
        };
        let err = Authenticator::from_settings(&auth, &AdminSettings { token: String::new() }).unwrap_err();
        assert!(err.to_string().contains("64 hex digits"), "{err}");
        assert!(!err.to_string().contains("my-secret-key"), "the value is never echoed");
    }
}
