//! A small etcd v3 client over etcd's JSON gRPC gateway (`POST /v3/...`, keys and
//! values base64, int64 fields as JSON strings). It covers what fleet mode needs:
//! range, txn, lease grant / keepalive / revoke.
//!
//! Why the gateway and not gRPC: the `etcd-client` crate generates its code with
//! `tonic-prost-build` in build.rs, which needs `protoc` at build time and adds
//! tonic + prost to the build; the gateway ships in every etcd ≥ 3.3 and needs only
//! hyper, which the workspace already builds.
//!
//! Failover: a call tries the member that answered last, then the others. A member that
//! refuses connections is skipped at once (nothing was sent); one that times out or
//! breaks the connection after the request was sent makes the outcome ambiguous, and at
//! most two such attempts are made per call, which is what Patroni's rule budgets
//! (keepalive + 2 × request timeout < TTL). Repeating a call is safe because every call
//! this crate makes is a read, a lease operation, or a compare-guarded transaction.
//!
//! TLS (`https://` endpoints, a CA bundle, optionally a client certificate) runs on
//! hyper-rustls with ring, the stack the AWS provider already builds. etcd's user/
//! password auth: `/v3/auth/authenticate` gives a token sent as the `Authorization`
//! header; a token etcd no longer knows (expired, the member restarted) is replaced
//! once and the call repeated.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};

use crate::config::{Credentials, EtcdOptions, TlsFiles};
use crate::error::{FleetError, Result};

/// etcd's default `--max-request-bytes` (1.5 MiB). A request larger than this is
/// refused by the server; callers split documents below it.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// How many attempts of one call may end ambiguously (see the module docs).
const AMBIGUOUS_ATTEMPTS: usize = 2;

/// gRPC status codes etcd's gateway returns that mean "this member could not serve it
/// now" (no leader, timed out, shutting down): another member may.
const GRPC_DEADLINE_EXCEEDED: i64 = 4;
const GRPC_NOT_FOUND: i64 = 5;
const GRPC_PERMISSION_DENIED: i64 = 7;
const GRPC_UNAVAILABLE: i64 = 14;
const GRPC_UNAUTHENTICATED: i64 = 16;

/// A key-value pair as etcd returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// Revision of the transaction that created the key (0: the key does not exist).
    pub create_revision: i64,
    pub mod_revision: i64,
    /// Number of writes since creation (1 after the first put).
    pub version: i64,
    /// The lease the key is bound to (0: none).
    pub lease: i64,
}

/// One comparison of a transaction (etcd's `Compare`, equality only: all fleet mode needs).
#[derive(Debug, Clone)]
pub enum Compare {
    /// The key's create revision equals this (0: the key does not exist).
    CreateRevision(String, i64),
    /// The key's mod revision equals this.
    ModRevision(String, i64),
    /// The key's value equals this (a missing key never matches).
    Value(String, Vec<u8>),
}

/// One operation of a transaction branch.
#[derive(Debug, Clone)]
pub enum Op {
    Put {
        key: String,
        value: Vec<u8>,
        /// 0: no lease.
        lease: i64,
    },
    Get(String),
    Delete(String),
}

/// The result of one operation of the branch that ran.
#[derive(Debug, Clone)]
pub enum OpResult {
    Put,
    Get(Option<Kv>),
    Delete { deleted: i64 },
}

#[derive(Debug, Clone)]
pub struct TxnResponse {
    /// Whether all comparisons held (the success branch ran).
    pub succeeded: bool,
    /// The store's revision after the transaction (the revision of its writes, if any).
    pub revision: i64,
    pub results: Vec<OpResult>,
}

/// A granted lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub id: i64,
    /// The TTL etcd granted, in seconds (etcd may raise a too-small request to its minimum).
    pub ttl_secs: i64,
}

/// The etcd client. Cheap to share behind an `Arc`; safe for concurrent calls.
pub struct EtcdClient {
    endpoints: Vec<String>,
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    request_timeout: Duration,
    /// The member that answered last: tried first.
    preferred: AtomicUsize,
    auth: Option<Credentials>,
    /// etcd's auth token while one is held.
    token: Mutex<Option<String>>,
}

impl std::fmt::Debug for EtcdClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdClient")
            .field("endpoints", &self.endpoints)
            .field("request_timeout", &self.request_timeout)
            .field("auth", &self.auth)
            .finish()
    }
}

impl EtcdClient {
    /// A client for `endpoints` (`http://host:port`, as etcd's `--advertise-client-urls`),
    /// each attempt bounded by `request_timeout`.
    pub fn new<S: AsRef<str>>(endpoints: &[S], request_timeout: Duration) -> Result<EtcdClient> {
        EtcdClient::connect(&EtcdOptions::plain(endpoints), request_timeout)
    }

    /// A client as `options` say: `https://` endpoints need `options.tls`, `http://`
    /// ones refuse it (one scheme per cluster); `options.auth` authenticates lazily,
    /// on the first call.
    pub fn connect(options: &EtcdOptions, request_timeout: Duration) -> Result<EtcdClient> {
        if options.endpoints.is_empty() {
            return Err(FleetError::Endpoint(String::new(), "no endpoint".into()));
        }
        let want = if options.tls.is_some() {
            "https://"
        } else {
            "http://"
        };
        let mut eps = Vec::with_capacity(options.endpoints.len());
        for e in &options.endpoints {
            let e = e.trim().trim_end_matches('/');
            if !e.starts_with(want) {
                return Err(FleetError::Endpoint(
                    e.to_string(),
                    if options.tls.is_some() {
                        "with TLS settings every endpoint must be https://".into()
                    } else {
                        "https:// needs TLS settings (a CA: ca=)".into()
                    },
                ));
            }
            e.parse::<hyper::Uri>()
                .map_err(|err| FleetError::Endpoint(e.to_string(), err.to_string()))?;
            eps.push(e.to_string());
        }
        let tls = tls_config(options.tls.as_ref())?;
        let mut connector = HttpConnector::new();
        // A dead member must not eat the whole request budget in connect.
        connector.set_connect_timeout(Some(request_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(EtcdClient {
            endpoints: eps,
            http,
            request_timeout,
            preferred: AtomicUsize::new(0),
            auth: options.auth.clone(),
            token: Mutex::new(None),
        })
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// POST `body` to `path` with failover (authenticated when the client has
    /// credentials); the decoded JSON answer.
    async fn call(&self, path: &str, body: &Value) -> Result<Value> {
        if self.auth.is_none() {
            return self.call_as(path, body, None).await;
        }
        let token = self.auth_token().await?;
        match self.call_as(path, body, Some(&token)).await {
            // etcd forgot the token (its TTL passed, or the member restarted): a new
            // one, once. The refused call was not applied.
            Err(FleetError::Auth(m)) if m.contains("invalid auth token") => {
                self.token.lock().expect("token lock").take();
                let token = self.auth_token().await?;
                self.call_as(path, body, Some(&token)).await
            }
            other => other,
        }
    }

    /// The token held, or a new one from `/v3/auth/authenticate`.
    async fn auth_token(&self) -> Result<String> {
        if let Some(t) = self.token.lock().expect("token lock").clone() {
            return Ok(t);
        }
        let Some(c) = &self.auth else {
            return Err(FleetError::Auth("no credentials configured".into()));
        };
        let v = self
            .call_as(
                "/v3/auth/authenticate",
                &json!({ "name": c.user, "password": c.password }),
                None,
            )
            .await
            .map_err(|e| match e {
                FleetError::Etcd { message, .. } => FleetError::Auth(message),
                other => other,
            })?;
        let token = v
            .get("token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| FleetError::Auth(format!("no token in the answer: {v}")))?
            .to_string();
        *self.token.lock().expect("token lock") = Some(token.clone());
        Ok(token)
    }

    async fn call_as(&self, path: &str, body: &Value, token: Option<&str>) -> Result<Value> {
        let body = Bytes::from(serde_json::to_vec(body).expect("JSON serialises"));
        let n = self.endpoints.len();
        let start = self.preferred.load(Ordering::Relaxed) % n;
        let mut ambiguous = 0;
        let mut last = String::new();
        let mut tls = None;
        for k in 0..n {
            let i = (start + k) % n;
            match self.attempt(i, path, body.clone(), token).await {
                Ok(v) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Ok(v);
                }
                Err(Attempt::NotSent(e)) => last = format!("{}: {e}", self.endpoints[i]),
                // Another member may hold a valid certificate; if none does, say TLS.
                Err(Attempt::Tls(e)) => {
                    last = format!("{}: {e}", self.endpoints[i]);
                    tls = Some(last.clone());
                }
                Err(Attempt::Ambiguous(e)) => {
                    last = format!("{}: {e}", self.endpoints[i]);
                    ambiguous += 1;
                    if ambiguous >= AMBIGUOUS_ATTEMPTS {
                        break;
                    }
                }
                Err(Attempt::Refused(e)) => return Err(e),
            }
        }
        tracing::debug!(path, error = %last, "etcd call failed on every endpoint tried");
        if let Some(tls) = tls {
            Err(FleetError::Tls(tls))
        } else if ambiguous > 0 {
            Err(FleetError::Ambiguous(last))
        } else {
            Err(FleetError::Unavailable(last))
        }
    }

    async fn attempt(
        &self,
        i: usize,
        path: &str,
        body: Bytes,
        token: Option<&str>,
    ) -> Result<Value, Attempt> {
        let uri = format!("{}{path}", self.endpoints[i]);
        let mut req = Request::post(uri).header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(t) = token {
            // etcd's gateway passes it on as the gRPC "authorization" metadata.
            req = req.header(hyper::header::AUTHORIZATION, t);
        }
        let req = req.body(Full::new(body)).map_err(|e| {
            Attempt::Refused(FleetError::Endpoint(
                self.endpoints[i].clone(),
                e.to_string(),
            ))
        })?;
        let exchange = async {
            let resp = self.http.request(req).await.map_err(|e| {
                // A refused handshake (TLS 1.3 reports a refused client certificate
                // only at the first read) means the member processed nothing.
                if let Some(t) = tls_failure(&e) {
                    Attempt::Tls(t)
                } else if e.is_connect() {
                    Attempt::NotSent(e.to_string())
                } else {
                    Attempt::Ambiguous(e.to_string())
                }
            })?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| Attempt::Ambiguous(e.to_string()))?
                .to_bytes();
            Ok::<_, Attempt>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.request_timeout, exchange)
            .await
            .map_err(|_| {
                Attempt::Ambiguous(format!("no answer within {:?}", self.request_timeout))
            })??;
        // Streaming RPCs (keepalive) answer newline-delimited JSON: the first line is ours.
        let first = bytes
            .split(|&b| b == b'\n')
            .find(|l| !l.is_empty())
            .unwrap_or(&[]);
        let v: Value = serde_json::from_slice(first).map_err(|e| {
            Attempt::Refused(FleetError::Decode(format!(
                "{path}: HTTP {status}: {e}: {}",
                String::from_utf8_lossy(&bytes)
            )))
        })?;
        // Errors come as {"error", "message", "code"}, top-level or inside a stream's "error".
        let err = v.get("error").filter(|e| !e.is_null());
        if let Some(e) = err {
            let (code, message) = match e {
                Value::Object(o) => (
                    o.get("grpc_code")
                        .or(o.get("http_code"))
                        .map(num)
                        .unwrap_or(0),
                    o.get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                ),
                other => (
                    v.get("code").map(num).unwrap_or(0),
                    other.as_str().unwrap_or("").to_string(),
                ),
            };
            return Err(match code {
                GRPC_DEADLINE_EXCEEDED => Attempt::Ambiguous(message),
                GRPC_UNAVAILABLE => Attempt::Ambiguous(message),
                GRPC_UNAUTHENTICATED | GRPC_PERMISSION_DENIED => {
                    Attempt::Refused(FleetError::Auth(message))
                }
                // etcd 3.4 reports a missing token as InvalidArgument.
                _ if message.contains("user name is empty") => {
                    Attempt::Refused(FleetError::Auth(message))
                }
                _ => Attempt::Refused(FleetError::Etcd { code, message }),
            });
        }
        if !status.is_success() {
            return Err(Attempt::Refused(FleetError::Etcd {
                code: 0,
                message: format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes)),
            }));
        }
        Ok(v)
    }

    /// The key, if it exists (a linearizable read).
    pub async fn get(&self, key: &str) -> Result<Option<Kv>> {
        let v = self
            .call("/v3/kv/range", &json!({ "key": b64(key.as_bytes()) }))
            .await?;
        Ok(kvs(&v)?.into_iter().next())
    }

    /// Every key under `prefix` (a linearizable read), in key order.
    pub async fn get_prefix(&self, prefix: &str) -> Result<Vec<Kv>> {
        let v = self
            .call(
                "/v3/kv/range",
                &json!({ "key": b64(prefix.as_bytes()), "range_end": b64(&prefix_end(prefix.as_bytes())) }),
            )
            .await?;
        kvs(&v)
    }

    /// The greatest key under `prefix`, if any (keys only: one small read however big
    /// the values are). Append-only streams find their next sequence number with it.
    pub async fn last_key(&self, prefix: &str) -> Result<Option<Vec<u8>>> {
        let v = self
            .call(
                "/v3/kv/range",
                &json!({
                    "key": b64(prefix.as_bytes()),
                    "range_end": b64(&prefix_end(prefix.as_bytes())),
                    "limit": "1",
                    "sort_order": "DESCEND",
                    "sort_target": "KEY",
                    "keys_only": true,
                }),
            )
            .await?;
        Ok(kvs(&v)?.into_iter().next().map(|kv| kv.key))
    }

    /// An atomic transaction: if every comparison holds, `success` runs, else `failure`.
    pub async fn txn(
        &self,
        compare: &[Compare],
        success: &[Op],
        failure: &[Op],
    ) -> Result<TxnResponse> {
        let body = json!({
            "compare": compare.iter().map(compare_json).collect::<Vec<_>>(),
            "success": success.iter().map(op_json).collect::<Vec<_>>(),
            "failure": failure.iter().map(op_json).collect::<Vec<_>>(),
        });
        let v = self.call("/v3/kv/txn", &body).await?;
        let succeeded = v.get("succeeded").and_then(Value::as_bool).unwrap_or(false);
        let ops = if succeeded { success } else { failure };
        let responses = v
            .get("responses")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if responses.len() != ops.len() {
            return Err(FleetError::Decode(format!(
                "txn: {} responses for {} operations: {v}",
                responses.len(),
                ops.len()
            )));
        }
        let mut results = Vec::with_capacity(ops.len());
        for (op, r) in ops.iter().zip(&responses) {
            results.push(match op {
                Op::Put { .. } => OpResult::Put,
                Op::Get(_) => {
                    let range = r.get("response_range").cloned().unwrap_or(Value::Null);
                    OpResult::Get(kvs(&range)?.into_iter().next())
                }
                Op::Delete(_) => OpResult::Delete {
                    deleted: r
                        .get("response_delete_range")
                        .and_then(|d| d.get("deleted"))
                        .map(num)
                        .unwrap_or(0),
                },
            });
        }
        Ok(TxnResponse {
            succeeded,
            revision: revision(&v),
            results,
        })
    }

    /// Grant a lease of `ttl` (whole seconds, rounded up).
    pub async fn lease_grant(&self, ttl: Duration) -> Result<Lease> {
        let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let v = self
            .call("/v3/lease/grant", &json!({ "TTL": secs.to_string() }))
            .await?;
        let id = v.get("ID").map(num).unwrap_or(0);
        if id == 0 {
            return Err(FleetError::Decode(format!("lease grant without ID: {v}")));
        }
        Ok(Lease {
            id,
            ttl_secs: v.get("TTL").map(num).unwrap_or(0),
        })
    }

    /// Renew a lease: the TTL it has again, in seconds. A lease that expired (or was
    /// revoked) cannot be renewed: [`FleetError::LeaseExpired`].
    pub async fn lease_keepalive(&self, id: i64) -> Result<i64> {
        let v = self
            .call("/v3/lease/keepalive", &json!({ "ID": id.to_string() }))
            .await?;
        let result = v.get("result").unwrap_or(&v);
        let ttl = result.get("TTL").map(num).unwrap_or(0);
        if ttl <= 0 {
            return Err(FleetError::LeaseExpired(id));
        }
        Ok(ttl)
    }

    /// Revoke a lease, deleting every key bound to it. Revoking a lease that is already
    /// gone succeeds (so a retried revoke is harmless).
    pub async fn lease_revoke(&self, id: i64) -> Result<()> {
        match self
            .call("/v3/lease/revoke", &json!({ "ID": id.to_string() }))
            .await
        {
            Ok(_) => Ok(()),
            Err(FleetError::Etcd {
                code: GRPC_NOT_FOUND,
                ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

enum Attempt {
    /// Nothing reached the member (connection refused / connect timeout).
    NotSent(String),
    /// Sent, no usable answer: it may have been applied.
    Ambiguous(String),
    /// The member answered with an error (or garbage): final.
    Refused(FleetError),
    /// The TLS handshake failed: nothing was processed.
    Tls(String),
}

/// The rustls error somewhere in `e`'s chain (hyper → connector → io::Error, which
/// hyper-rustls wraps once more → rustls). `io::Error::source` skips the error it
/// wraps, so wrapped io::Errors are unwrapped with `get_ref`.
fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(r.to_string());
        }
        cur = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// The rustls client configuration: the given CA(s) only (no system roots: an etcd
/// cluster has its own CA), a client certificate if given. Without TLS settings, an
/// empty configuration that is never used (every endpoint is http://).
fn tls_config(tls: Option<&TlsFiles>) -> Result<rustls::ClientConfig> {
    let cfg =
        |what: &str, e: &dyn std::fmt::Display| FleetError::Config(what.into(), e.to_string());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| FleetError::Tls(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    let Some(tls) = tls else {
        return Ok(builder.with_root_certificates(roots).with_no_client_auth());
    };
    let certs = CertificateDer::pem_file_iter(&tls.ca)
        .map_err(|e| cfg("ca", &format!("{}: {e}", tls.ca.display())))?;
    for c in certs {
        let c = c.map_err(|e| cfg("ca", &format!("{}: {e}", tls.ca.display())))?;
        roots
            .add(c)
            .map_err(|e| cfg("ca", &format!("{}: {e}", tls.ca.display())))?;
    }
    if roots.is_empty() {
        return Err(cfg(
            "ca",
            &format!("{}: no PEM certificate in it", tls.ca.display()),
        ));
    }
    let builder = builder.with_root_certificates(roots);
    match (&tls.cert, &tls.key) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| cfg("cert", &format!("{}: {e}", cert.display())))?;
            if chain.is_empty() {
                return Err(cfg(
                    "cert",
                    &format!("{}: no PEM certificate in it", cert.display()),
                ));
            }
            let key_der = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| cfg("key", &format!("{}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| cfg("key", &e))
        }
        _ => Err(cfg("cert", &"cert and key go together")),
    }
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

fn unb64(v: Option<&Value>) -> Result<Vec<u8>> {
    match v.and_then(Value::as_str) {
        None => Ok(Vec::new()),
        Some(s) => B64
            .decode(s)
            .map_err(|e| FleetError::Decode(format!("base64: {e}"))),
    }
}

/// An int64 as protobuf's JSON mapping writes it (a string), or a plain number; absent = 0.
fn num(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn revision(v: &Value) -> i64 {
    v.get("header")
        .and_then(|h| h.get("revision"))
        .map(num)
        .unwrap_or(0)
}

fn kvs(range: &Value) -> Result<Vec<Kv>> {
    let Some(list) = range.get("kvs").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    list.iter()
        .map(|kv| {
            Ok(Kv {
                key: unb64(kv.get("key"))?,
                value: unb64(kv.get("value"))?,
                create_revision: kv.get("create_revision").map(num).unwrap_or(0),
                mod_revision: kv.get("mod_revision").map(num).unwrap_or(0),
                version: kv.get("version").map(num).unwrap_or(0),
                lease: kv.get("lease").map(num).unwrap_or(0),
            })
        })
        .collect()
}

/// The range end that selects every key starting with `prefix` (etcd's convention:
/// the prefix with its last byte below 0xff incremented).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): every key from the prefix on.
    vec![0]
}

fn compare_json(c: &Compare) -> Value {
    match c {
        Compare::CreateRevision(key, rev) => json!({
            "key": b64(key.as_bytes()), "target": "CREATE", "result": "EQUAL",
            "create_revision": rev.to_string(),
        }),
        Compare::ModRevision(key, rev) => json!({
            "key": b64(key.as_bytes()), "target": "MOD", "result": "EQUAL",
            "mod_revision": rev.to_string(),
        }),
        Compare::Value(key, value) => json!({
            "key": b64(key.as_bytes()), "target": "VALUE", "result": "EQUAL",
            "value": b64(value),
        }),
    }
}

fn op_json(op: &Op) -> Value {
    match op {
        Op::Put { key, value, lease } => {
            let mut put = json!({ "key": b64(key.as_bytes()), "value": b64(value) });
            if *lease != 0 {
                put["lease"] = Value::String(lease.to_string());
            }
            json!({ "request_put": put })
        }
        Op::Get(key) => json!({ "request_range": { "key": b64(key.as_bytes()) } }),
        Op::Delete(key) => json!({ "request_delete_range": { "key": b64(key.as_bytes()) } }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_follows_etcd() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }

    #[test]
    fn int64_fields_decode_from_strings_and_numbers() {
        assert_eq!(num(&json!("7587")), 7587);
        assert_eq!(num(&json!(42)), 42);
        assert_eq!(num(&Value::Null), 0);
    }

    #[test]
    fn endpoints_are_validated() {
        let t = Duration::from_secs(1);
        assert_eq!(
            EtcdClient::new::<&str>(&[], t).unwrap_err().code(),
            "fleet.endpoint"
        );
        assert_eq!(
            EtcdClient::new(&["https://127.0.0.1:2379"], t)
                .unwrap_err()
                .code(),
            "fleet.endpoint"
        );
        let c = EtcdClient::new(&["http://127.0.0.1:2379/"], t).expect("valid");
        assert_eq!(c.endpoints(), ["http://127.0.0.1:2379"]);
    }
}
