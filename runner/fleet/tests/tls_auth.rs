//! TLS and etcd's user/password auth against real etcd members: certificates made in
//! the test (rcgen), a member with `--client-cert-auth`, auth enabled with etcdctl.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use runbook_fleet::client::{Compare, Op, OpResult};
use runbook_fleet::{EtcdClient, EtcdOptions, Fleet, FleetError, LeaseKeeper, Timing, TlsFiles};
use runbook_test_support::etcd::{Cluster, Options, ServerTls};
use runbook_test_support::wait;

const TIMEOUT: Duration = Duration::from_secs(2);

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ca {
        cert: p.self_signed(&key).expect("CA"),
        key,
    }
}

/// A leaf signed by `ca`, written as `<name>.pem` / `<name>-key.pem`.
fn leaf(ca: &Ca, dir: &Path, name: &str, usage: &[ExtendedKeyUsagePurpose]) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("params");
    p.distinguished_name.push(DnType::CommonName, name);
    p.extended_key_usages = usage.to_vec();
    let cert = p.signed_by(&key, &ca.cert, &ca.key).expect("sign");
    let (c, k) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}-key.pem")),
    );
    std::fs::write(&c, cert.pem()).expect("write cert");
    std::fs::write(&k, key.serialize_pem()).expect("write key");
    (c, k)
}

fn write_ca(ca: &Ca, path: &Path) -> PathBuf {
    std::fs::write(path, ca.cert.pem()).expect("write CA");
    path.to_path_buf()
}

async fn put_get(client: &EtcdClient, key: &str, value: &[u8]) -> Result<Vec<u8>, FleetError> {
    client
        .txn(
            &[],
            &[Op::Put {
                key: key.into(),
                value: value.to_vec(),
                lease: 0,
            }],
            &[],
        )
        .await?;
    let r = client
        .txn(
            &[Compare::CreateRevision(key.into(), 0)],
            &[],
            &[Op::Get(key.into())],
        )
        .await?;
    match r.results.first() {
        Some(OpResult::Get(Some(kv))) => Ok(kv.value.clone()),
        other => panic!("{key}: {other:?}"),
    }
}

/// Members on https with `--client-cert-auth`: a client with the cluster's CA and a
/// client certificate (given as an `etcd://...?ca=&cert=&key=` URL) writes and reads,
/// and etcdctl reads the same key; a client trusting another CA, and one without a
/// client certificate, are refused with `fleet.tls`; an http:// client gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let good = ca("runbook test CA");
    let ca_file = write_ca(&good, &d.join("ca.pem"));
    let (server_cert, server_key) = leaf(
        &good,
        d,
        "server",
        // etcd's gateway dials its own gRPC port with the server certificate.
        &[
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    );
    let (client_cert, client_key) =
        leaf(&good, d, "client", &[ExtendedKeyUsagePurpose::ClientAuth]);
    let c = Cluster::start_with(
        3,
        Options {
            tls: Some(ServerTls {
                cert: server_cert,
                key: server_key,
                ca: ca_file.clone(),
                client_cert_auth: true,
                etcdctl_cert: Some((client_cert.clone(), client_key.clone())),
            }),
        },
    )
    .expect("TLS etcd cluster (run scripts/setup.sh)");
    assert!(c.endpoints().iter().all(|e| e.starts_with("https://")));

    let hosts: Vec<String> = c
        .endpoints()
        .iter()
        .map(|e| e.trim_start_matches("https://").to_string())
        .collect();
    let url = format!(
        "etcd://{}/tls-test?ca={}&cert={}&key={}",
        hosts.join(","),
        ca_file.display(),
        client_cert.display(),
        client_key.display()
    );
    let options = EtcdOptions::parse_with(&url, None).expect("url");
    assert_eq!(options.endpoints, c.endpoints());
    let client = Arc::new(EtcdClient::connect(&options, TIMEOUT).expect("client"));
    assert_eq!(
        put_get(&client, "/tls/k", b"over-tls")
            .await
            .unwrap_or_else(|e| panic!("TLS write: {e:?}\n{}", c.logs())),
        b"over-tls"
    );
    let out = c
        .etcdctl(&["get", "--print-value-only", "/tls/k"])
        .expect("etcdctl");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "over-tls");
    // Leases (the keepalive is a streamed answer) work over TLS too.
    let fleet = Fleet::new(
        client.clone(),
        options.prefix.as_deref().unwrap_or("/runbook"),
    );
    let t = Timing::new(
        Duration::from_secs(1),
        Duration::from_millis(200),
        Duration::from_millis(350),
    )
    .expect("timing");
    let keeper = LeaseKeeper::start(client.clone(), t).await.expect("lease");
    let token = fleet
        .acquire("prod", "tls-runner", keeper.id())
        .await
        .expect("acquire");
    let start = std::time::Instant::now();
    assert!(wait::poll(
        Duration::from_secs(30),
        Duration::from_millis(50),
        || { start.elapsed() > 3 * t.ttl() }
    ));
    assert!(keeper.is_valid(), "renewed over TLS");
    fleet
        .guarded_put("/tls-test/state", b"1", &token)
        .await
        .expect("fenced write over TLS");

    // Trusting another CA: the members' certificate is unknown.
    let other = ca("some other CA");
    let other_file = write_ca(&other, &d.join("other-ca.pem"));
    let wrong_ca = EtcdClient::connect(
        &EtcdOptions {
            tls: Some(TlsFiles {
                ca: other_file,
                cert: Some(client_cert.clone()),
                key: Some(client_key.clone()),
            }),
            ..options.clone()
        },
        TIMEOUT,
    )
    .expect("client");
    let e = wrong_ca.get("/tls/k").await.unwrap_err();
    assert_eq!(e.code(), "fleet.tls", "{e}");
    eprintln!("wrong CA: {e}");

    // The right CA, no client certificate: the members refuse the handshake.
    let no_cert = EtcdClient::connect(
        &EtcdOptions {
            tls: Some(TlsFiles {
                ca: ca_file.clone(),
                cert: None,
                key: None,
            }),
            ..options.clone()
        },
        TIMEOUT,
    )
    .expect("client");
    let e = no_cert.get("/tls/k").await.unwrap_err();
    assert_eq!(e.code(), "fleet.tls", "{e}");
    eprintln!("no client certificate: {e}");

    // Plain HTTP to a TLS port is no way around it.
    let plain: Vec<String> = hosts.iter().map(|h| format!("http://{h}")).collect();
    let e = EtcdClient::new(&plain, TIMEOUT)
        .expect("client")
        .get("/tls/k")
        .await
        .unwrap_err();
    eprintln!("plain http to the TLS port: {} {e}", e.code());

    // Bad files are configuration errors, named.
    let missing = EtcdClient::connect(
        &EtcdOptions {
            tls: Some(TlsFiles {
                ca: d.join("absent.pem"),
                cert: None,
                key: None,
            }),
            ..options.clone()
        },
        TIMEOUT,
    )
    .unwrap_err();
    assert!(
        matches!(&missing, FleetError::Config(what, _) if what == "ca"),
        "{missing:?}"
    );
}

/// etcd auth enabled (user root, role root, by etcdctl): no credentials and a wrong
/// password are `fleet.auth`; the right password writes, holds a lease, and survives
/// the member forgetting its token (restart: simple tokens live in memory).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_password_auth() {
    let mut c = Cluster::start(1).expect("etcd (run scripts/setup.sh)");
    let ctl = |args: &[&str]| {
        let out = c.etcdctl(args).expect("etcdctl");
        assert!(out.status.success(), "etcdctl {args:?}: {out:?}");
    };
    ctl(&["user", "add", "root", "--new-user-password=right-pw"]);
    ctl(&["role", "add", "root"]);
    ctl(&["user", "grant-role", "root", "root"]);
    ctl(&["auth", "enable"]);
    let eps = c.endpoints();
    let hosts = eps[0].trim_start_matches("http://");

    let anonymous = EtcdClient::new(&eps, TIMEOUT).expect("client");
    let e = anonymous.get("/a").await.unwrap_err();
    assert_eq!(e.code(), "fleet.auth", "{e}");

    let wrong = EtcdClient::connect(
        &EtcdOptions::parse_with(&format!("etcd://root@{hosts}"), Some("wrong-pw".into()))
            .expect("url"),
        TIMEOUT,
    )
    .expect("client");
    let e = wrong.get("/a").await.unwrap_err();
    assert_eq!(e.code(), "fleet.auth", "{e}");
    eprintln!("wrong password: {e}");

    let pw_file = c.dir().join("pw");
    std::fs::write(&pw_file, "right-pw\n").expect("write pw");
    let options = EtcdOptions::parse_with(
        &format!("etcd://root@{hosts}?password_file={}", pw_file.display()),
        None,
    )
    .expect("url");
    let client = Arc::new(EtcdClient::connect(&options, TIMEOUT).expect("client"));
    assert_eq!(
        put_get(&client, "/auth/k", b"v1").await.expect("write"),
        b"v1"
    );
    let keeper = LeaseKeeper::start(client.clone(), Timing::FAST)
        .await
        .expect("lease with auth");
    assert!(keeper.is_valid());
    drop(keeper);

    // The member restarts and forgets its tokens: the client gets a new one by itself.
    c.kill(0);
    c.restart(0).expect("restart");
    c.wait_healthy(Duration::from_secs(60)).expect("healthy");
    let v = wait::poll_some_async(Duration::from_secs(30), Duration::from_millis(100), || {
        let client = client.clone();
        async move {
            match put_get(&client, "/auth/k", b"v2").await {
                Ok(v) => Some(v),
                Err(e) if e.code() == "fleet.auth" => panic!("token not renewed: {e}"),
                Err(_) => None,
            }
        }
    })
    .await
    .expect("write after the restart");
    assert_eq!(v, b"v2");
}
