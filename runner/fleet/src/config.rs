//! How to reach etcd: endpoints, TLS files and credentials, from an `etcd://` URL
//! (`--journal etcd://...`) or built as a struct (`serve.yaml`).
//!
//! ```text
//! etcd://[user@]host:port[,host:port...][/prefix][?ca=FILE&cert=FILE&key=FILE&password_file=FILE]
//! ```
//!
//! - `ca=` switches to TLS (`https://`) and names the CA bundle that signed the members'
//!   certificates; `cert=` and `key=` (together) add a client certificate, for members
//!   started with `--client-cert-auth`.
//! - `user@` turns on etcd's user/password auth. The password comes from
//!   `password_file=` or the `RUNBOOK_ETCD_PASSWORD` environment variable, never from
//!   the URL itself (it would end up in `ps`, shell history and logs).
//! - `/prefix` is the fleet's key prefix (default `/runbook`).
//!
//! Every error is `fleet.config` and names the setting.

use std::path::PathBuf;

use crate::error::{FleetError, Result};

/// Environment variable holding the etcd password when the URL names a user.
pub const PASSWORD_ENV: &str = "RUNBOOK_ETCD_PASSWORD";

/// TLS settings of a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM bundle of the CA(s) that signed the members' certificates.
    pub ca: PathBuf,
    /// PEM client certificate chain and its key, for `--client-cert-auth` members.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// etcd user and password (the password is never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Everything needed to connect to an etcd cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdOptions {
    /// `http://host:port` or `https://host:port`, one per member.
    pub endpoints: Vec<String>,
    /// The fleet's key prefix, if the URL gave one.
    pub prefix: Option<String>,
    pub tls: Option<TlsFiles>,
    pub auth: Option<Credentials>,
}

impl EtcdOptions {
    /// Plain `http://` endpoints, no TLS, no auth.
    pub fn plain<S: AsRef<str>>(endpoints: &[S]) -> EtcdOptions {
        EtcdOptions {
            endpoints: endpoints.iter().map(|e| e.as_ref().to_string()).collect(),
            prefix: None,
            tls: None,
            auth: None,
        }
    }

    /// Parse an `etcd://` URL, taking a password from `$RUNBOOK_ETCD_PASSWORD` when the
    /// URL names a user and no `password_file=`.
    pub fn parse(url: &str) -> Result<EtcdOptions> {
        EtcdOptions::parse_with(url, std::env::var(PASSWORD_ENV).ok())
    }

    /// [`EtcdOptions::parse`] with the environment's password given explicitly.
    pub fn parse_with(url: &str, env_password: Option<String>) -> Result<EtcdOptions> {
        let bad = |what: &str, why: String| FleetError::Config(what.to_string(), why);
        let rest = url.strip_prefix("etcd://").ok_or_else(|| {
            bad(
                "url",
                format!("{url:?} must start with etcd:// (etcd://host:port,host:port)"),
            )
        })?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        let (user, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if let Some(u) = user {
            if u.contains(':') {
                return Err(bad(
                    "user",
                    format!(
                        "no password in the URL (it would show in ps and logs): use \
                         password_file= or ${PASSWORD_ENV}"
                    ),
                ));
            }
            if u.is_empty() {
                return Err(bad("user", "empty user name before @".into()));
            }
        }

        let (mut ca, mut cert, mut key, mut password_file) = (None, None, None, None);
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| bad("query", format!("{pair:?} is not name=value")))?;
            if v.is_empty() {
                return Err(bad(k, "empty value".into()));
            }
            let slot = match k {
                "ca" => &mut ca,
                "cert" => &mut cert,
                "key" => &mut key,
                "password_file" => &mut password_file,
                other => {
                    return Err(bad(
                        other,
                        "unknown option (known: ca, cert, key, password_file)".into(),
                    ));
                }
            };
            if slot.replace(PathBuf::from(v)).is_some() {
                return Err(bad(k, "given twice".into()));
            }
        }
        let tls = match (ca, cert, key) {
            (None, None, None) => None,
            (None, _, _) => {
                return Err(bad(
                    "cert",
                    "a client certificate needs TLS: give ca= too".into(),
                ));
            }
            (Some(ca), cert, key) => {
                if cert.is_some() != key.is_some() {
                    return Err(bad("cert", "cert= and key= go together".into()));
                }
                Some(TlsFiles { ca, cert, key })
            }
        };
        let scheme = if tls.is_some() { "https" } else { "http" };

        let mut endpoints = Vec::new();
        for h in hosts.split(',') {
            let h = h.trim();
            let (host, port) = h
                .rsplit_once(':')
                .ok_or_else(|| bad("endpoint", format!("{h:?} must be host:port")))?;
            if host.is_empty() {
                return Err(bad("endpoint", format!("{h:?} has no host")));
            }
            port.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("endpoint", format!("{h:?}: bad port {port:?}")))?;
            endpoints.push(format!("{scheme}://{h}"));
        }

        let auth = match user {
            None => {
                if password_file.is_some() {
                    return Err(bad(
                        "password_file",
                        "a password needs a user: etcd://user@host:port".into(),
                    ));
                }
                None
            }
            Some(u) => {
                let password = match password_file {
                    Some(f) => std::fs::read_to_string(&f)
                        .map_err(|e| bad("password_file", format!("{}: {e}", f.display())))?
                        .trim_end_matches(['\n', '\r'])
                        .to_string(),
                    None => env_password.ok_or_else(|| {
                        bad(
                            "password",
                            format!(
                                "user {u:?} given but no password_file= and no ${PASSWORD_ENV}"
                            ),
                        )
                    })?,
                };
                Some(Credentials {
                    user: u.to_string(),
                    password,
                })
            }
        };
        let prefix = prefix
            .map(|p| p.trim_end_matches('/').to_string())
            .filter(|p| !p.is_empty());
        Ok(EtcdOptions {
            endpoints,
            prefix,
            tls,
            auth,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(url: &str) -> (String, String) {
        match EtcdOptions::parse_with(url, None).unwrap_err() {
            FleetError::Config(what, why) => (what, why),
            other => panic!("{url}: expected fleet.config, got {other:?}"),
        }
    }

    #[test]
    fn plain_urls() {
        let o = EtcdOptions::parse_with("etcd://10.0.0.1:2379,10.0.1.1:2379", None).unwrap();
        assert_eq!(
            o.endpoints,
            ["http://10.0.0.1:2379", "http://10.0.1.1:2379"]
        );
        assert_eq!((o.prefix, o.tls, o.auth), (None, None, None));
        let o = EtcdOptions::parse_with("etcd://a:1/fleet-eu/", None).unwrap();
        assert_eq!(o.prefix.as_deref(), Some("/fleet-eu"));
    }

    #[test]
    fn tls_and_auth() {
        let o = EtcdOptions::parse_with(
            "etcd://runbook@a:2379,b:2379?ca=/etc/ca.pem&cert=/etc/c.pem&key=/etc/k.pem",
            Some("s3cret".into()),
        )
        .unwrap();
        assert_eq!(o.endpoints, ["https://a:2379", "https://b:2379"]);
        let tls = o.tls.unwrap();
        assert_eq!(tls.ca, PathBuf::from("/etc/ca.pem"));
        assert_eq!(tls.key, Some(PathBuf::from("/etc/k.pem")));
        let auth = o.auth.unwrap();
        assert_eq!(
            (auth.user.as_str(), auth.password.as_str()),
            ("runbook", "s3cret")
        );
        assert!(!format!("{auth:?}").contains("s3cret"), "never printed");

        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "from-file\n").unwrap();
        let o = EtcdOptions::parse_with(
            &format!("etcd://root@a:1?password_file={}", pw.display()),
            Some("env".into()),
        )
        .unwrap();
        assert_eq!(o.auth.unwrap().password, "from-file");
    }

    #[test]
    fn clear_errors() {
        assert_eq!(err("http://a:1").0, "url");
        assert_eq!(err("etcd://a").0, "endpoint");
        assert_eq!(err("etcd://a:0").0, "endpoint");
        assert_eq!(err("etcd://:1").0, "endpoint");
        assert_eq!(err("etcd://u:pw@a:1").0, "user");
        assert!(err("etcd://u:pw@a:1").1.contains("password_file"));
        assert_eq!(err("etcd://u@a:1").0, "password");
        assert_eq!(err("etcd://a:1?cert=c&key=k").0, "cert");
        assert_eq!(err("etcd://a:1?ca=c&cert=c").0, "cert");
        assert_eq!(err("etcd://a:1?ca=c&ca=d").0, "ca");
        assert_eq!(err("etcd://a:1?tls=1").0, "tls");
        assert_eq!(err("etcd://a:1?password_file=/x").0, "password_file");
        assert_eq!(
            err("etcd://u@a:1?password_file=/nonexistent/pw").0,
            "password_file"
        );
        let e = EtcdOptions::parse_with("etcd://a", None).unwrap_err();
        assert_eq!(e.code(), "fleet.config");
    }
}
