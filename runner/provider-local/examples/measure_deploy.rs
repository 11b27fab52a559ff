//! Measures a local deploy through the Provider API: secret, Multi-AZ primary,
//! cross-region read replica streaming through the link, and a routing endpoint that
//! answers a query. Prints each run and the median, in seconds.
//!
//! ```text
//! cargo build -p runbook-provider-local --bins --examples
//! target/debug/examples/measure_deploy [RUNS] [--single-az]
//! ```
//! The daemon binary is found next to the examples dir (or via RUNBOOK_LOCAL_DAEMON).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use runbook_caps::{CapCall, CapError, Provider};
use runbook_provider_local::{DaemonLauncher, LocalConfig, LocalProvider};
use serde_json::{Value, json};

async fn call(
    p: &LocalProvider,
    service: &str,
    action: &str,
    region: Option<&str>,
    args: Value,
) -> Result<Value, CapError> {
    p.call(CapCall {
        service: service.into(),
        action: action.into(),
        region: region.map(Into::into),
        resource: None,
        args,
    })
    .await
}

async fn wait_available(p: &LocalProvider, region: &str, id: &str) -> Result<(), CapError> {
    loop {
        let d = call(
            p,
            "rds",
            "DescribeDBInstances",
            Some(region),
            json!({"identifier": id}),
        )
        .await?;
        match d[0]["status"].as_str() {
            Some("available") => return Ok(()),
            Some("failed") | Some("incompatible-network") => {
                return Err(CapError::internal(format!("{id}: {}", d[0]["status"])));
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn deploy(p: &LocalProvider, multi_az: bool) -> Result<(), CapError> {
    let (us, eu) = ("us-east-1", "eu-west-1");
    call(p, "secretsmanager", "CreateSecret", Some(us), json!({"request": {"name": "postgres-credentials-dev", "description": null,
        "username": "postgres", "generate_password": {"length": 32, "exclude_punctuation": true}, "tags": []}})).await?;
    let mut vpcs = Vec::new();
    let mut groups = Vec::new();
    for (region, cidr) in [(us, "10.0"), (eu, "10.1")] {
        let vpc = call(
            p,
            "ec2",
            "CreateVpc",
            Some(region),
            json!({"cidr_block": format!("{cidr}.0.0/16"), "tags": []}),
        )
        .await?;
        let vpc_id = vpc["vpc_id"].as_str().unwrap_or_default().to_string();
        let mut subnets = Vec::new();
        for (i, az) in ["a", "b"].iter().enumerate() {
            let sn = call(
                p,
                "ec2",
                "CreateSubnet",
                Some(region),
                json!({"vpc_id": vpc_id, "cidr_block": format!("{cidr}.{}.0/24", i + 1),
                "availability_zone": format!("{region}{az}"), "tags": []}),
            )
            .await?;
            subnets.push(sn["subnet_id"].clone());
        }
        call(
            p,
            "rds",
            "CreateDBSubnetGroup",
            Some(region),
            json!({"name": "db-subnets", "description": "db", "subnet_ids": subnets, "tags": []}),
        )
        .await?;
        let sg = call(
            p,
            "ec2",
            "CreateSecurityGroup",
            Some(region),
            json!({"group_name": "db", "description": "db", "vpc_id": vpc_id, "tags": []}),
        )
        .await?;
        let peer = if cidr == "10.0" {
            "10.1.0.0/16"
        } else {
            "10.0.0.0/16"
        };
        call(p, "ec2", "AuthorizeSecurityGroupIngress", Some(region), json!({"group_id": sg["group_id"], "permissions": [
            {"ip_protocol": "tcp", "from_port": 5432, "to_port": 5432, "cidr_blocks": [peer], "source_security_groups": []}]})).await?;
        vpcs.push(vpc_id);
        groups.push(sg["group_id"].clone());
    }
    let pcx = call(
        p,
        "ec2",
        "CreateVpcPeeringConnection",
        Some(us),
        json!({"vpc_id": vpcs[0], "peer_vpc_id": vpcs[1], "peer_region": eu, "tags": []}),
    )
    .await?;
    call(
        p,
        "ec2",
        "AcceptVpcPeeringConnection",
        Some(eu),
        json!({"peering_id": pcx["id"]}),
    )
    .await?;
    let primary = call(p, "rds", "CreateDBInstance", Some(us), json!({"request": {
        "identifier": "primary-postgres-dev", "engine": "postgres", "engine_version": "15", "instance_class": "db.t3.large",
        "allocated_storage": 100, "storage_type": "gp3", "storage_encrypted": true, "multi_az": multi_az, "backup_retention_period": 7,
        "master_username": "postgres", "master_user_secret": "postgres-credentials-dev", "db_name": null, "port": null,
        "db_subnet_group": "db-subnets", "parameter_group": null, "vpc_security_groups": [groups[0]], "deletion_protection": false, "tags": []}})).await?;
    let zone = call(
        p,
        "route53",
        "CreateHostedZone",
        None,
        json!({"name": "db-dev.internal", "caller_reference": "measure",
        "vpc": {"vpc_id": vpcs[0], "vpc_region": us}, "comment": null}),
    )
    .await?;
    call(p, "route53", "ChangeResourceRecordSets", None, json!({"zone_id": zone["id"], "changes": [{"action": "Upsert", "record_set": {
        "name": "postgres.db-dev.internal", "record_type": "CNAME", "ttl": 60, "values": [primary["endpoint_address"]],
        "set_identifier": "primary", "weight": 100, "failover": null, "health_check_id": null}}]})).await?;
    wait_available(p, us, "primary-postgres-dev").await?;
    call(p, "rds", "CreateDBInstanceReadReplica", Some(eu), json!({"request": {
        "identifier": "replica-postgres-dev", "source": primary["arn"], "source_region": us, "instance_class": "db.t3.large",
        "storage_type": null, "storage_encrypted": true, "multi_az": false, "db_subnet_group": "db-subnets", "parameter_group": null,
        "vpc_security_groups": [groups[1]], "tags": []}})).await?;
    wait_available(p, eu, "replica-postgres-dev").await?;
    // Streaming, seen from the writer through the routing endpoint.
    let target = json!({"endpoint": "postgres.db-dev.internal", "region": null, "database": "postgres",
        "secret_id": "postgres-credentials-dev", "secret_region": us, "connect_timeout_ms": 2000});
    loop {
        let r = call(p, "postgres", "Query", None, json!({"target": target,
            "sql": "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND application_name LIKE 'replica%'", "params": []})).await;
        if r.as_ref().is_ok_and(|v| v["rows"][0][0] == "1") {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(3);
    let multi_az = !args.iter().any(|a| a == "--single-az");
    let daemon = std::env::var_os("RUNBOOK_LOCAL_DAEMON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("current exe");
            exe.parent()
                .and_then(|d| d.parent())
                .expect("target dir")
                .join("runbook-local-daemon")
        });
    assert!(
        daemon.exists(),
        "daemon binary {} not found: cargo build -p runbook-provider-local --bins",
        daemon.display()
    );
    let mut times = Vec::new();
    for i in 0..runs {
        let dir = tempfile::Builder::new()
            .prefix("rbl-measure-")
            .tempdir()
            .expect("tempdir");
        let p = LocalProvider::open(LocalConfig::new(
            dir.path(),
            DaemonLauncher::standalone(&daemon, dir.path()),
        ))
        .expect("open");
        // Start the daemon first: the figure is the deploy, not process start-up.
        p.up().await.expect("daemon");
        let started = Instant::now();
        let r = deploy(&p, multi_az).await;
        let secs = started.elapsed().as_secs_f64();
        p.down().await.expect("down");
        match r {
            Ok(()) => {
                println!("run {}: {secs:.2} s", i + 1);
                times.push(secs);
            }
            Err(e) => {
                eprintln!("run {} failed: {e}", i + 1);
                std::process::exit(1);
            }
        }
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "local deploy ({}primary + cross-region replica streaming + endpoint): median {:.2} s over {} runs",
        if multi_az { "Multi-AZ " } else { "" },
        times[times.len() / 2],
        times.len()
    );
}
