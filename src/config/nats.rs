//! `stream.url` taken apart for the NATS client: the servers' addresses
//! without credentials, and the credentials on their own.
//!
//! Why apart: the client (async-nats 0.48) does not authenticate with the
//! user and password written in a server's URL (it sends only those given
//! to its options), and it logs servers' addresses, credentials included,
//! at debug level. Given the addresses bare and the credentials as
//! options, it authenticates, and no log of it can hold a password.

use super::StreamSettings;
use percent_encoding::percent_decode_str;

/// How the node authenticates to the NATS servers.
#[derive(Clone, PartialEq, Eq)]
pub enum NatsAuth {
    /// `nats://user:password@host`.
    UserPassword { user: String, password: String },
    /// `nats://token@host`: a user name without a password is a token.
    Token(String),
}

/// Never shows the secret.
impl std::fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NatsAuth::UserPassword { user, .. } => write!(f, "UserPassword({user:?}, <hidden>)"),
            NatsAuth::Token(_) => f.write_str("Token(<hidden>)"),
        }
    }
}

impl StreamSettings {
    /// The servers `url` names, in the order given, without the user and
    /// password they may carry: what the client is given (and may log).
    pub fn servers(&self) -> Vec<String> {
        self.url.split(',').map(|u| bare(u.trim())).collect()
    }

    /// The credentials `url` carries, if any. Servers of one cluster take
    /// the same ones: where several servers carry credentials, they must be
    /// the same (the message names no secret).
    pub fn credentials(&self) -> Result<Option<NatsAuth>, String> {
        let mut found: Option<NatsAuth> = None;
        for server in self.url.split(',').map(str::trim) {
            let Some(auth) = auth_of(server)? else { continue };
            match &found {
                Some(first) if *first != auth => {
                    return Err("stream.url: the servers carry different users or passwords; give them all \
                                the same, or write them on the first server only"
                        .into())
                }
                _ => found = Some(auth),
            }
        }
        Ok(found)
    }
}

/// `server` without its user and password.
fn bare(server: &str) -> String {
    match url::Url::parse(server) {
        Ok(mut u) => {
            // Both fail only for URLs that cannot have a host, which
            // `check_stream` refuses.
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string().trim_end_matches('/').to_owned()
        }
        Err(_) => server.to_owned(),
    }
}

fn auth_of(server: &str) -> Result<Option<NatsAuth>, String> {
    let Ok(u) = url::Url::parse(server) else { return Ok(None) };
    let decoded = |s: &str| {
        percent_decode_str(s)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| "stream.url: its user or password is not UTF-8 once percent-decoded".to_owned())
    };
    let user = decoded(u.username())?;
    Ok(match (user.is_empty(), u.password()) {
        (true, None) => None,
        (_, Some(password)) => Some(NatsAuth::UserPassword { user, password: decoded(password)? }),
        (false, None) => Some(NatsAuth::Token(user)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> StreamSettings {
        let mut s = crate::config::Settings::default().stream;
        s.url = url.into();
        s
    }

    #[test]
    fn credentials_come_apart_from_the_addresses_the_client_is_given() {
        let s = settings("nats://fulfil:p%40ss@a.internal:4222, nats://b.internal:4222");
        assert_eq!(s.servers(), ["nats://a.internal:4222", "nats://b.internal:4222"]);
        let auth = s.credentials().unwrap();
        assert_eq!(auth, Some(NatsAuth::UserPassword { user: "fulfil".into(), password: "p@ss".into() }));
        assert!(!format!("{auth:?}").contains("p@ss"), "{auth:?}");
        assert_eq!(
            settings("nats://t0ken@a:4222").credentials().unwrap(),
            Some(NatsAuth::Token("t0ken".into()))
        );
        assert_eq!(settings("nats://127.0.0.1:4222").credentials().unwrap(), None);
        assert_eq!(settings("tls://127.0.0.1:4222").servers(), ["tls://127.0.0.1:4222"]);
    }

    #[test]
    fn servers_that_disagree_on_credentials_are_refused_without_showing_them() {
        let err = settings("nats://u:one@a:4222,nats://u:two@b:4222").credentials().unwrap_err();
        assert!(err.contains("different") && !err.contains("one") && !err.contains("two"), "{err}");
        let same = settings("nats://u:one@a:4222,nats://u:one@b:4222").credentials().unwrap();
        assert!(matches!(same, Some(NatsAuth::UserPassword { .. })));
    }
}
