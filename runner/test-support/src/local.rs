//! The local provider in a test: a provider on a temp state dir whose guard stops
//! every server and the daemon it started (by PID) and removes the directory, even
//! when a test panics; capability calls, status waits, and the seed topology.
//!
//! For the integration tests of `runbook-provider-local` (its daemon binary must be
//! built, which cargo does for that package's tests).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use runbook_caps::{CapError, Provider};
use runbook_provider_local::{DaemonLauncher, LocalConfig, LocalProvider};
use serde_json::{Value, json};

pub use crate::process::alive;
use crate::process::{cargo_bin, read_pid, signal, stop_pid, wait_dead};
use crate::wait::poll_async;

/// How often status waits ask again.
const POLL: Duration = Duration::from_millis(50);

pub const US: &str = "us-east-1";
pub const EU: &str = "eu-west-1";

pub struct Env {
    pub provider: LocalProvider,
    pub dir: tempfile::TempDir,
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("rbl-")
            .tempdir()
            .expect("tempdir");
        Env {
            provider: open(dir.path()),
            dir,
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub async fn call(
        &self,
        service: &str,
        action: &str,
        region: Option<&str>,
        args: Value,
    ) -> Result<Value, CapError> {
        self.provider
            .call(crate::caps::call(service, action, region, args))
            .await
    }

    pub async fn ok(
        &self,
        service: &str,
        action: &str,
        region: Option<&str>,
        args: Value,
    ) -> Value {
        match self.call(service, action, region, args).await {
            Ok(v) => v,
            Err(e) => panic!("{service}:{action} failed: {e:?}\n{}", self.daemon_log()),
        }
    }

    pub fn daemon_log(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("local/daemon.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().rev().take(40).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    pub async fn secret(&self, region: &str, name: &str) {
        self.ok(
            "secretsmanager",
            "CreateSecret",
            Some(region),
            json!({"request": {"name": name, "description": null, "username": "postgres",
                   "generate_password": {"length": 32, "exclude_punctuation": false}, "tags": []}}),
        )
        .await;
    }

    pub async fn create_primary(
        &self,
        region: &str,
        id: &str,
        secret: &str,
        multi_az: bool,
        extra: Value,
    ) -> Value {
        let mut req = json!({
            "identifier": id, "engine": "postgres", "engine_version": "15.4", "instance_class": "db.t3.large",
            "allocated_storage": 100, "storage_type": "gp3", "storage_encrypted": true, "multi_az": multi_az,
            "backup_retention_period": 7, "master_username": "postgres", "master_user_secret": secret,
            "db_name": "app", "port": null, "db_subnet_group": null, "parameter_group": null,
            "vpc_security_groups": [], "deletion_protection": false, "tags": []
        });
        if let (Some(r), Some(e)) = (req.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                r.insert(k.clone(), v.clone());
            }
        }
        self.ok(
            "rds",
            "CreateDBInstance",
            Some(region),
            json!({"request": req}),
        )
        .await
    }

    pub async fn describe(&self, region: &str, id: &str) -> Result<Value, CapError> {
        self.call(
            "rds",
            "DescribeDBInstances",
            Some(region),
            json!({"identifier": id}),
        )
        .await
        .map(|v| v[0].clone())
    }

    pub async fn wait_status(
        &self,
        region: &str,
        id: &str,
        want: &str,
        timeout: Duration,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let d = self.describe(region, id).await.expect("describe");
            let st = d["status"].as_str().unwrap_or_default().to_string();
            if seen.last() != Some(&st) {
                seen.push(st.clone());
            }
            if st == want {
                return d;
            }
            // Terminal states: waiting on would only hide the cause.
            if Instant::now() > deadline || st == "failed" || st == "incompatible-network" {
                panic!("{id}: wanted {want}, saw {seen:?}\n{}", self.daemon_log());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub async fn wait_gone(&self, region: &str, id: &str, timeout: Duration) {
        let gone = poll_async(timeout, POLL, || async move {
            self.describe(region, id).await.is_err()
        })
        .await;
        assert!(gone, "{id} not deleted\n{}", self.daemon_log());
    }

    /// A client through any name the provider resolves (route53 name or instance).
    pub async fn client(&self, name: &str, secret: &str) -> tokio_postgres::Client {
        let addr = self.provider.endpoint(name).await.expect("endpoint");
        let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
        let s = self.provider.secret_get(secret, None).expect("secret");
        connect(
            port,
            s["username"].as_str().unwrap(),
            s["password"].as_str().unwrap(),
        )
        .await
        .expect("connect")
    }
}

pub async fn connect(
    port: u16,
    user: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host("127.0.0.1")
        .port(port)
        .user(user)
        .password(password)
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(5))
        // A test must fail, never hang (e.g. a commit waiting for a lost standby).
        .options("-c statement_timeout=20000");
    let (client, conn) = cfg.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// A provider on `dir`, starting this package's `runbook-local-daemon` when needed.
pub fn open(dir: &Path) -> LocalProvider {
    let launcher = DaemonLauncher::standalone(cargo_bin("runbook-local-daemon"), dir);
    LocalProvider::open(LocalConfig::new(dir, launcher)).expect("open provider")
}

impl Drop for Env {
    fn drop(&mut self) {
        kill_everything(self.dir.path());
    }
}

/// Stop the daemon and every postmaster under `dir` by PID, synchronously (Drop may run
/// while a test unwinds, outside any runtime).
pub fn kill_everything(dir: &Path) {
    let root = dir.join("local");
    if let Some(pid) = read_pid(&root.join("daemon.pid")) {
        stop_pid(pid, libc::SIGKILL);
    }
    let Ok(regions) = std::fs::read_dir(root.join("regions")) else {
        return;
    };
    let mut pids = Vec::new();
    for r in regions.flatten() {
        let Ok(nodes) = std::fs::read_dir(r.path().join("clusters")) else {
            continue;
        };
        for n in nodes.flatten() {
            if let Some(pid) = read_pid(&n.path().join("postmaster.pid")) {
                signal(pid, libc::SIGQUIT);
                pids.push(pid);
            }
        }
    }
    for pid in pids {
        wait_dead(pid);
    }
}

/// Ids of the deployed topology.
pub struct Deployed {
    pub zone_id: String,
    pub peering_id: String,
    pub us_sg: String,
    pub health_check_id: String,
    pub primary_address: String,
    pub replica_address: String,
}

pub const SECRET: &str = "postgres-credentials-dev";
pub const PRIMARY: &str = "primary-postgres-dev";
pub const REPLICA: &str = "replica-postgres-dev";
pub const NAME: &str = "postgres.db-dev.internal";

impl Env {
    async fn vpc(&self, region: &str, cidr: &str, subnets: [&str; 2]) -> (String, Vec<String>) {
        let vpc = self.ok("ec2", "CreateVpc", Some(region), json!({"cidr_block": cidr, "tags": [{"key": "Name", "value": format!("vpc-{region}")}]})).await;
        let vpc_id = vpc["vpc_id"].as_str().unwrap().to_string();
        let mut ids = Vec::new();
        for (i, c) in subnets.iter().enumerate() {
            let az = format!("{region}{}", ["a", "b"][i]);
            let sn = self
                .ok(
                    "ec2",
                    "CreateSubnet",
                    Some(region),
                    json!({"vpc_id": vpc_id, "cidr_block": c, "availability_zone": az, "tags": []}),
                )
                .await;
            ids.push(sn["subnet_id"].as_str().unwrap().to_string());
        }
        (vpc_id, ids)
    }

    /// The seed system: two peered VPCs, a Multi-AZ primary in us-east-1, a cross-region
    /// replica in eu-west-1, a weighted routing name with a PostgreSQL health check.
    pub async fn deploy(&self, multi_az: bool) -> Deployed {
        self.secret(US, SECRET).await;
        let (us_vpc, us_subnets) = self
            .vpc(US, "10.0.0.0/16", ["10.0.1.0/24", "10.0.2.0/24"])
            .await;
        let (eu_vpc, eu_subnets) = self
            .vpc(EU, "10.1.0.0/16", ["10.1.1.0/24", "10.1.2.0/24"])
            .await;
        let sg = self.ok("ec2", "CreateSecurityGroup", Some(US), json!({"group_name": "primary-db", "description": "db", "vpc_id": us_vpc, "tags": []})).await;
        let us_sg = sg["group_id"].as_str().unwrap().to_string();
        self.ok("ec2", "AuthorizeSecurityGroupIngress", Some(US), json!({"group_id": us_sg, "permissions": [
            {"ip_protocol": "tcp", "from_port": 5432, "to_port": 5432, "cidr_blocks": ["10.1.0.0/16"], "source_security_groups": []}]})).await;
        let eu_sg = self.ok("ec2", "CreateSecurityGroup", Some(EU), json!({"group_name": "replica-db", "description": "db", "vpc_id": eu_vpc, "tags": []})).await;
        let eu_sg = eu_sg["group_id"].as_str().unwrap().to_string();
        self.ok("rds", "CreateDBSubnetGroup", Some(US), json!({"name": "primary-subnets", "description": "d", "subnet_ids": us_subnets, "tags": []})).await;
        self.ok("rds", "CreateDBSubnetGroup", Some(EU), json!({"name": "replica-subnets", "description": "d", "subnet_ids": eu_subnets, "tags": []})).await;
        let pcx = self
            .ok(
                "ec2",
                "CreateVpcPeeringConnection",
                Some(US),
                json!({"vpc_id": us_vpc, "peer_vpc_id": eu_vpc, "peer_region": EU, "tags": []}),
            )
            .await;
        assert_eq!(pcx["status"], "pending-acceptance");
        let peering_id = pcx["id"].as_str().unwrap().to_string();
        let acc = self
            .ok(
                "ec2",
                "AcceptVpcPeeringConnection",
                Some(EU),
                json!({"peering_id": peering_id}),
            )
            .await;
        assert_eq!(acc["status"], "active");

        self.ok("rds", "CreateDBParameterGroup", Some(US), json!({"name": "pg15-audit", "family": "postgres15", "description": "audit", "tags": []})).await;
        self.ok(
            "rds",
            "ModifyDBParameterGroup",
            Some(US),
            json!({"name": "pg15-audit", "parameters": [
            {"name": "log_statement", "value": "all", "apply_method": "immediate"},
            {"name": "rds.force_ssl", "value": "0", "apply_method": "immediate"}]}),
        )
        .await;
        let p = self
            .create_primary(US, PRIMARY, SECRET, multi_az, json!({"db_subnet_group": "primary-subnets", "vpc_security_groups": [us_sg], "parameter_group": "pg15-audit"}))
            .await;
        let primary_address = p["endpoint_address"].as_str().unwrap().to_string();
        let primary = self
            .wait_status(US, PRIMARY, "available", Duration::from_secs(60))
            .await;
        let r = self
            .ok("rds", "CreateDBInstanceReadReplica", Some(EU), json!({"request": {
                "identifier": REPLICA, "source": primary["arn"], "source_region": US, "instance_class": "db.t3.large",
                "storage_type": null, "storage_encrypted": true, "multi_az": false, "db_subnet_group": "replica-subnets",
                "parameter_group": null, "vpc_security_groups": [eu_sg], "tags": []}}))
            .await;
        let replica_address = r["endpoint_address"].as_str().unwrap().to_string();

        let zone = self
            .ok(
                "route53",
                "CreateHostedZone",
                None,
                json!({"name": "db-dev.internal", "caller_reference": "deploy-1",
            "vpc": {"vpc_id": us_vpc, "vpc_region": US}, "comment": null}),
            )
            .await;
        let zone_id = zone["id"].as_str().unwrap().to_string();
        let hc = self.ok("route53", "CreateHealthCheck", None, json!({"caller_reference": "hc-primary", "name": "primary", "config": {
            "check_type": "POSTGRES", "fqdn": null, "ip_address": null, "port": null, "resource_path": null,
            "request_interval": 1, "failure_threshold": 2, "alarm_name": null, "alarm_region": null,
            "insufficient_data_health_status": null, "db_instance_identifier": PRIMARY, "db_instance_region": US}})).await;
        let health_check_id = hc["id"].as_str().unwrap().to_string();
        self.set_weights(
            &zone_id,
            &primary_address,
            &replica_address,
            100,
            0,
            Some(&health_check_id),
        )
        .await;
        self.wait_status(EU, REPLICA, "available", Duration::from_secs(60))
            .await;
        Deployed {
            zone_id,
            peering_id,
            us_sg,
            health_check_id,
            primary_address,
            replica_address,
        }
    }

    pub async fn set_weights(
        &self,
        zone: &str,
        primary: &str,
        replica: &str,
        wp: u32,
        wr: u32,
        hc: Option<&str>,
    ) {
        self.ok("route53", "ChangeResourceRecordSets", None, json!({"zone_id": zone, "changes": [
            {"action": "Upsert", "record_set": {"name": NAME, "record_type": "CNAME", "ttl": 60, "values": [primary],
              "set_identifier": "primary", "weight": wp, "failover": null, "health_check_id": hc}},
            {"action": "Upsert", "record_set": {"name": NAME, "record_type": "CNAME", "ttl": 60, "values": [replica],
              "set_identifier": "replica", "weight": wr, "failover": null, "health_check_id": null}}]})).await;
    }

    /// application_names streaming from the primary's writer.
    pub async fn streaming(&self) -> Vec<String> {
        let c = self.client(PRIMARY, SECRET).await;
        c.query(
            "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    }

    pub async fn wait_until<F, Fut>(&self, what: &str, timeout: Duration, f: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        if !poll_async(timeout, Duration::from_millis(100), f).await {
            panic!("timed out waiting for {what}\n{}", self.daemon_log());
        }
    }
}
