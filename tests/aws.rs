//! The DR runbooks with `--provider aws` against a moto server (one per test): the
//! `runbook` binary talks to moto through `AWS_ENDPOINT_URL` with dummy credentials,
//! and the results are checked through the AWS SDK directly.
//!
//! moto makes everything `available` at once, never evaluates alarms and runs no
//! database: the canary writes through the routed name are switched off with the
//! runbooks' `VerifyWrites=false` parameter, and failback stops at its first PostgreSQL
//! step, said so below. The harness corrects moto's PromoteReadReplica
//! (`moto_fixes.py` of runbook-test-support), so failover runs to its end.

use aws_config::Region;
use runbook_provider_aws::{AwsOptions, AwsProvider};
use runbook_test_support::moto::Moto;
use runbook_test_support::runbook::{RunbookHome, runbook, stdout_json};
use serde_json::{Value, json};

const E: &str = "us-east-1";
const W: &str = "eu-west-1";

/// A moto server, and the `runbook` binary pointed at it with dummy credentials.
struct Env {
    // Dropped before moto: nothing the home runs on drop finds moto gone.
    home: RunbookHome,
    moto: Moto,
}

impl Env {
    fn new() -> Env {
        let moto = Moto::start();
        Env {
            home: RunbookHome::new().with_env(moto.cli_env()),
            moto,
        }
    }

    /// `runbook run FILE --provider aws --json ARGS...`, which must succeed.
    fn run(&self, file: &str, args: &[&str]) -> Value {
        self.home.run_book(&runbook(file), &aws(args), "SUCCEEDED")
    }

    /// `runbook run FILE --provider aws --json ARGS...`, which must fail (exit 1,
    /// FAILED). Returns the execution id and the JSON result.
    fn run_fails(&self, file: &str, args: &[&str]) -> (String, Value) {
        let v = self.home.run_book(&runbook(file), &aws(args), "FAILED");
        let id = v["execution_id"]
            .as_str()
            .expect("execution_id")
            .to_string();
        (id, v)
    }

    /// `runbook plan FILE --provider aws --json ARGS...`: the plan's JSON and exit code.
    fn plan(&self, file: &str, args: &[&str]) -> (Option<i32>, Value) {
        let path = runbook(file);
        let mut a = vec!["plan", path.to_str().unwrap(), "--json"];
        a.extend(aws(args));
        let out = self.home.run(&a);
        (
            out.status.code(),
            stdout_json(&out, &format!("plan {file}")),
        )
    }

    /// `runbook show ID --json`.
    fn show(&self, id: &str) -> Value {
        self.home.show(id)
    }

    /// SDK configuration for checks: the provider's own (endpoint, HTTP client), with
    /// dummy keys, in `region`.
    async fn sdk(&self, region: &str) -> aws_config::SdkConfig {
        let p = AwsProvider::new(AwsOptions {
            region: Some(region.into()),
            endpoint_url: Some(self.moto.url()),
            static_credentials: Some(("testing".into(), "testing".into())),
            ..Default::default()
        });
        p.sdk_config()
            .await
            .to_builder()
            .region(Region::new(region.to_string()))
            .build()
    }
}

/// `--provider aws`, then `args`.
fn aws<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["--provider", "aws"];
    a.extend_from_slice(args);
    a
}

fn tag<'a>(tags: &'a [aws_sdk_ec2::types::Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// Weights of `postgres.db-dev.internal` by set identifier.
async fn weights(r53: &aws_sdk_route53::Client) -> Vec<(String, i64, String)> {
    let zones = r53
        .list_hosted_zones_by_name()
        .dns_name("db-dev.internal.")
        .send()
        .await
        .unwrap();
    let zone = zones
        .hosted_zones()
        .iter()
        .find(|z| z.name() == "db-dev.internal.")
        .expect("zone db-dev.internal");
    let rr = r53
        .list_resource_record_sets()
        .hosted_zone_id(zone.id())
        .send()
        .await
        .unwrap();
    let mut w: Vec<(String, i64, String)> = rr
        .resource_record_sets()
        .iter()
        .filter(|r| r.name() == "postgres.db-dev.internal." && r.weight().is_some())
        .map(|r| {
            (
                r.set_identifier().unwrap_or_default().to_string(),
                r.weight().unwrap(),
                r.resource_records()
                    .first()
                    .map(|x| x.value().to_string())
                    .unwrap_or_default(),
            )
        })
        .collect();
    w.sort();
    w
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_failover_failback_teardown_on_moto() {
    let env = Env::new();
    let conf_e = env.sdk(E).await;
    let conf_w = env.sdk(W).await;
    let rds_e = aws_sdk_rds::Client::new(&conf_e);
    let rds_w = aws_sdk_rds::Client::new(&conf_w);
    let ec2_e = aws_sdk_ec2::Client::new(&conf_e);
    let ec2_w = aws_sdk_ec2::Client::new(&conf_w);
    let r53 = aws_sdk_route53::Client::new(&conf_e);
    let cw_e = aws_sdk_cloudwatch::Client::new(&conf_e);
    let cw_w = aws_sdk_cloudwatch::Client::new(&conf_w);
    let sns_e = aws_sdk_sns::Client::new(&conf_e);
    let sm_e = aws_sdk_secretsmanager::Client::new(&conf_e);

    // Plan before anything exists: every resource is a create, the walk reaches the end
    // (planned resources answer the runbook's own waits), and nothing is made.
    let (code, plan) = env.plan("deploy.yaml", &[]);
    assert_eq!(
        (code, plan["status"].as_str()),
        (Some(0), Some("SUCCEEDED")),
        "{plan:#}"
    );
    let planned = planned_actions(&plan);
    for want in [
        "create ec2:CreateVpc us-east-1",
        "create ec2:CreateVpc eu-west-1",
        "create ec2:CreateVpcPeeringConnection us-east-1",
        "create rds:CreateDBInstance us-east-1 primary-postgres-dev",
        "create rds:CreateDBInstanceReadReplica eu-west-1 replica-postgres-dev",
        "create secretsmanager:CreateSecret us-east-1 postgres-credentials-dev",
        "create route53:CreateHostedZone global db-dev.internal",
        "create cloudwatch:PutDashboard us-east-1 postgres-dr-dev",
    ] {
        assert!(
            planned.iter().any(|p| p.starts_with(want)),
            "{want} not in {planned:#?}"
        );
    }
    // The aws provider refuses POSTGRES health checks before sending them; the plan
    // meets that refusal, and the dns plugin falls back to alarm-based checks as it will
    // in the real run.
    let hc: Vec<&Value> = plan["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "CreateHealthCheck")
        .collect();
    assert_eq!(hc.len(), 4, "{hc:#?}");
    assert!(
        hc[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("InvalidParameterValue")
    );
    assert!(
        hc[1]["detail"]
            .as_str()
            .unwrap()
            .starts_with("CLOUDWATCH_METRIC")
    );
    assert!(plan["reads"].as_u64().unwrap() > 10, "{}", plan["reads"]);
    let none = rds_e.describe_db_instances().send().await.unwrap();
    assert!(none.db_instances().is_empty(), "plan made an instance");
    let vpcs = ec2_e.describe_vpcs().send().await.unwrap();
    assert!(
        !vpcs
            .vpcs()
            .iter()
            .any(|v| tag(v.tags(), "Name").is_some_and(|n| n.starts_with("dr-"))),
        "plan made a VPC"
    );

    // Deploy twice: the second run converges without duplicates.
    env.run("deploy.yaml", &[]);
    let before = snapshot(&rds_e, &rds_w, &ec2_e, &ec2_w, &r53).await;
    env.run("deploy.yaml", &[]);
    let after = snapshot(&rds_e, &rds_w, &ec2_e, &ec2_w, &r53).await;
    assert_eq!(before, after, "a second deploy changed the resource set");

    // Plan once deployed: nothing to create, update or delete, like the second run.
    let (code, plan) = env.plan("deploy.yaml", &[]);
    assert_eq!(code, Some(0), "{plan:#}");
    let s = &plan["summary"];
    assert_eq!(
        (
            s["create"].as_u64(),
            s["update"].as_u64(),
            s["delete"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{plan:#}"
    );
    assert!(s["no_op"].as_u64().unwrap() > 0, "{s}");

    // The primary, as the seed describes it.
    let p = instance(&rds_e, "primary-postgres-dev").await;
    assert_eq!(p.engine(), Some("postgres"));
    assert!(
        p.engine_version().unwrap().starts_with("15"),
        "{:?}",
        p.engine_version()
    );
    assert_eq!(p.db_instance_class(), Some("db.t3.large"));
    assert_eq!(p.multi_az(), Some(true));
    assert_eq!(
        (p.allocated_storage(), p.storage_type()),
        (Some(100), Some("gp3"))
    );
    assert_eq!(p.storage_encrypted(), Some(true));
    assert_eq!(p.backup_retention_period(), Some(7));
    assert_eq!(
        p.db_parameter_groups()[0].db_parameter_group_name(),
        Some("postgres15-dr-dev")
    );
    let primary_arn = p.db_instance_arn().unwrap().to_string();

    // The replica in eu-west-1, from the primary's ARN, with groups of its own region.
    assert_replica_of(
        &instance(&rds_w, "replica-postgres-dev").await,
        &primary_arn,
    );

    // VPCs, peering, S3 gateway endpoints.
    let vpc_e = ec2_e.describe_vpcs().send().await.unwrap();
    let vpc_e = vpc_e
        .vpcs()
        .iter()
        .find(|v| tag(v.tags(), "Name") == Some("dr-primary-dev"))
        .expect("primary VPC");
    assert_eq!(vpc_e.cidr_block(), Some("10.0.0.0/16"));
    let vpc_w = ec2_w.describe_vpcs().send().await.unwrap();
    let vpc_w = vpc_w
        .vpcs()
        .iter()
        .find(|v| tag(v.tags(), "Name") == Some("dr-replica-dev"))
        .expect("replica VPC");
    assert_eq!(vpc_w.cidr_block(), Some("10.1.0.0/16"));
    let pcx = ec2_e
        .describe_vpc_peering_connections()
        .send()
        .await
        .unwrap();
    let active: Vec<_> = pcx
        .vpc_peering_connections()
        .iter()
        .filter(|p| p.status().and_then(|s| s.code()).map(|c| c.as_str()) == Some("active"))
        .collect();
    assert_eq!(active.len(), 1, "one active peering");
    assert_eq!(
        active[0].requester_vpc_info().and_then(|v| v.vpc_id()),
        vpc_e.vpc_id()
    );
    assert_eq!(
        active[0].accepter_vpc_info().and_then(|v| v.vpc_id()),
        vpc_w.vpc_id()
    );
    for (ec2, region, vpc) in [(&ec2_e, E, vpc_e), (&ec2_w, W, vpc_w)] {
        let eps = ec2.describe_vpc_endpoints().send().await.unwrap();
        let s3: Vec<_> = eps
            .vpc_endpoints()
            .iter()
            .filter(|e| e.vpc_id() == vpc.vpc_id())
            .filter(|e| e.service_name() == Some(&format!("com.amazonaws.{region}.s3")))
            .collect();
        assert_eq!(s3.len(), 1, "one S3 gateway endpoint in {region}");
    }

    // Zone bound to the VPCs; weights 100/0 before the failover.
    let w = weights(&r53).await;
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w.iter()
            .any(|(_, weight, v)| *weight == 100 && v.contains("primary")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|(_, weight, v)| *weight == 0 && v.contains("replica")),
        "{w:?}"
    );

    // Alarms and thresholds, dashboard, topic, secret.
    let alarms_e = cw_e.describe_alarms().send().await.unwrap();
    let alarms_w = cw_w.describe_alarms().send().await.unwrap();
    let all: Vec<_> = alarms_e
        .metric_alarms()
        .iter()
        .chain(alarms_w.metric_alarms())
        .collect();
    let lag = all
        .iter()
        .find(|a| a.metric_name() == Some("ReplicaLag"))
        .expect("a replica-lag alarm");
    assert_eq!(lag.threshold(), Some(60.0));
    let cpu = all
        .iter()
        .find(|a| a.metric_name() == Some("CPUUtilization"))
        .expect("a CPU alarm");
    assert_eq!(cpu.threshold(), Some(80.0));
    let dashboards = cw_e.list_dashboards().send().await.unwrap();
    assert!(
        dashboards
            .dashboard_entries()
            .iter()
            .any(|d| d.dashboard_name() == Some("postgres-dr-dev")),
        "dashboard postgres-dr-dev"
    );
    let topics = sns_e.list_topics().send().await.unwrap();
    assert!(
        topics.topics().iter().any(|t| t
            .topic_arn()
            .unwrap_or_default()
            .ends_with(":postgres-dr-alerts-dev")),
        "topic"
    );
    let secret = sm_e
        .describe_secret()
        .secret_id("postgres-credentials-dev")
        .send()
        .await
        .unwrap();
    assert_eq!(secret.name(), Some("postgres-credentials-dev"));

    // A game day on moto: its steady-state hypothesis starts with the data plane (a
    // write through the routed name), and moto runs no database, so it fails there —
    // clearly, before anything is injected — and the report is still written, verdict
    // aborted with the reason. (Faults on moto: runner/provider-aws/tests/faults.rs.)
    let (gd, out) = env.run_fails("gameday.yaml", &["--param", "Fault=isolate-primary"]);
    assert_eq!(out["error"], "GameDay.SteadyStateFailed", "{out:#}");
    assert!(
        out["cause"]
            .as_str()
            .unwrap()
            .contains("postgres.db-dev.internal"),
        "the cause names the routed name it could not write through: {out:#}"
    );
    let show = env.show(&gd);
    assert!(
        show["faults"].as_array().unwrap().is_empty(),
        "nothing injected: {show:#}"
    );
    let rep = env.home.run(&["report", &gd, "--format", "json"]);
    assert_eq!(
        rep.status.code(),
        Some(1),
        "a report that is not a PASS exits 1"
    );
    let rep = stdout_json(&rep, "report --format json");
    assert_eq!(rep["verdict"], "aborted", "{rep:#}");
    assert!(
        rep.to_string().contains("SteadyStateFailed"),
        "the report says why: {rep:#}"
    );
    let db = instance(&rds_e, "primary-postgres-dev").await;
    assert_eq!(db.db_instance_status(), Some("available"), "untouched");

    // Failover. moto keeps the primary `available` (and never evaluates alarms), so the
    // policy would see a healthy primary: Force=true promotes anyway. No database runs on
    // moto: VerifyWrites=false skips the canary write through the routed name. The
    // promotion completes because the harness corrects moto's PromoteReadReplica (README
    // moto gaps, runbook-test-support's moto_fixes.py).
    // First its plan: the promotion and the weight swap, described, and not made.
    let drill = ["--param", "Force=true", "--param", "VerifyWrites=false"];
    let (code, plan) = env.plan("failover.yaml", &drill);
    assert_eq!(
        (code, plan["status"].as_str()),
        (Some(0), Some("SUCCEEDED")),
        "{plan:#}"
    );
    let planned = planned_actions(&plan);
    assert!(
        planned
            .iter()
            .any(|p| p.starts_with("update rds:PromoteReadReplica eu-west-1 replica-postgres-dev")),
        "{planned:#?}"
    );
    let swap = plan["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["action"] == "ChangeResourceRecordSets")
        .expect("the plan shifts weights");
    let detail = swap["detail"].as_str().unwrap();
    assert!(
        detail.contains("[primary] weight 100 → 0") && detail.contains("[replica] weight 0 → 100"),
        "{detail}"
    );
    assert!(
        instance(&rds_w, "replica-postgres-dev")
            .await
            .read_replica_source_db_instance_identifier()
            .is_some(),
        "the plan promoted for real"
    );
    let w = weights(&r53).await;
    assert!(
        w.iter()
            .any(|(_, weight, v)| *weight == 100 && v.contains(&format!(".{E}."))),
        "the plan moved weights: {w:?}"
    );

    // The control-plane half of a game day, as far as moto can take one: no client
    // (moto runs no database: DataPlane=false), a fault moto represents (isolate-primary
    // revokes the primary's security-group ingress; the undo restores exactly those
    // rules), the real failover.yaml as its child execution (ForceFailover: moto keeps
    // the isolated primary `available` and never evaluates alarms, so the policy would
    // see a healthy primary), the undo, and the report. Its failover is this test's
    // failover: what follows checks its promotion and weights.
    let ingress_before = ingress(&ec2_e).await;
    let gd = env.run(
        "gameday.yaml",
        &[
            "--param",
            "Fault=isolate-primary",
            "--param",
            "DataPlane=false",
            "--param",
            "ForceFailover=true",
            "--param",
            "Failback=false",
        ],
    );
    assert_eq!(gd["output"]["Scope"], "control-plane", "{gd:#}");
    assert_eq!(
        gd["output"]["Failover"]["Output"]["Promoted"], true,
        "{gd:#}"
    );
    let gd_id = gd["execution_id"].as_str().unwrap();
    let show = env.show(gd_id);
    let faults = show["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 1, "{show:#}");
    assert_eq!(
        (&faults[0]["kind"], &faults[0]["state"]),
        (&json!("isolate-primary"), &json!("undone")),
        "{show:#}"
    );
    let children = show["children"].as_array().unwrap();
    assert_eq!(
        children
            .iter()
            .map(|c| (c["name"].as_str().unwrap(), c["status"].as_str().unwrap()))
            .collect::<Vec<_>>(),
        [("failover", "SUCCEEDED")],
        "{show:#}"
    );
    assert_eq!(
        ingress(&ec2_e).await,
        ingress_before,
        "the undo restored the ingress"
    );
    // Nothing measured what a client saw: the report says so, and is no pass.
    let rep = env.home.run(&["report", gd_id, "--format", "json"]);
    assert_eq!(rep.status.code(), Some(1), "only a PASS exits 0");
    let rep = stdout_json(&rep, "report --format json");
    assert_eq!(
        (&rep["verdict"], &rep["scope"], &rep["rto_seconds"]),
        (&json!("aborted"), &json!("control-plane"), &Value::Null),
        "{rep:#}"
    );
    assert!(
        rep["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().starts_with("control-plane game day")),
        "{rep:#}"
    );
    let events: Vec<&str> = rep["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for want in ["fault_injected", "decision", "promote", "weights_moved"] {
        assert!(events.contains(&want), "{want} not in {events:?}");
    }
    assert!(
        rep["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "fault undone" && c["passed"] == true),
        "{rep:#}"
    );
    let promoted = instance(&rds_w, "replica-postgres-dev").await;
    assert_eq!(promoted.read_replica_source_db_instance_identifier(), None);
    let current_arn = promoted.db_instance_arn().unwrap().to_string();

    // The zone still answers for the name; the weight moved to eu-west-1.
    let w = weights(&r53).await;
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w.iter()
            .any(|(_, weight, v)| *weight == 0 && v.contains(&format!(".{E}."))),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|(_, weight, v)| *weight == 100 && v.contains(&format!(".{W}."))),
        "{w:?}"
    );

    // Failback, as far as moto can take it. Its first half is control plane only: retire
    // the old primary, rebuild it in us-east-1 as a cross-region replica of the current
    // primary. Then the zero-loss switchover needs the databases themselves: CatchUpLsn
    // reads the current primary's WAL position over PostgreSQL, and every later step
    // (replay wait, fence check, final LSN, promote, weights) depends on that. moto runs
    // no database, so the runbook fails there, at once (no Retry on CurrentLsn, no
    // Catch before the fence), and stays failed: skipping the LSN steps would make the
    // switchover lossy, and VerifyWrites only governs the closing canary write. The
    // whole failback runs on the local provider (tests/dr.rs).
    let (id, out) = env.run_fails("failback.yaml", &["--param", "VerifyWrites=false"]);
    let calls = env.show(&id)["calls"].as_array().unwrap().clone();
    let called = |state: &str, action: &str| {
        calls
            .iter()
            .any(|c| c["state"] == state && c["action"] == action && c["outcome"] == "ok")
    };
    assert!(
        called("Retire", "DeleteDBInstance") && called("Rebuild", "CreateDBInstanceReadReplica"),
        "retired and rebuilt: {calls:#?}"
    );
    // It stopped at the first PostgreSQL call: nothing answers at the endpoint moto
    // reports for the current primary (a connect error, at most the 2 s timeout).
    let last = calls.last().unwrap();
    assert_eq!(
        (&last["state"], &last["plugin"], &last["outcome"]),
        (&json!("CatchUpLsn"), &json!("pg"), &json!("error")),
        "{calls:#?}"
    );
    assert_eq!(out["error"], "ServiceUnavailable", "{out:#}");
    assert!(
        out["cause"]
            .as_str()
            .unwrap()
            .contains("replica-postgres-dev."),
        "{out:#}"
    );
    assert_replica_of(
        &instance(&rds_e, "primary-postgres-dev").await,
        &current_arn,
    );

    // Teardown's plan deletes both instances and both VPCs, and deletes nothing.
    let (code, plan) = env.plan("teardown.yaml", &[]);
    assert_eq!(code, Some(0), "{plan:#}");
    let planned = planned_actions(&plan);
    for want in [
        "delete rds:DeleteDBInstance eu-west-1 replica-postgres-dev",
        "delete rds:DeleteDBInstance us-east-1 primary-postgres-dev",
        "delete ec2:DeleteVpc us-east-1",
        "delete ec2:DeleteVpc eu-west-1",
        "delete route53:DeleteHostedZone global",
    ] {
        assert!(
            planned.iter().any(|p| p.starts_with(want)),
            "{want} not in {planned:#?}"
        );
    }
    assert_eq!(plan["summary"]["create"], 0, "{plan:#}");
    instance(&rds_e, "primary-postgres-dev").await;
    instance(&rds_w, "replica-postgres-dev").await;

    // Teardown leaves none of it.
    let td = env.run("teardown.yaml", &[]);
    // moto gap (README): teardown deletes replica-postgres-dev first, then the rebuilt
    // primary-postgres-dev, still a replica of it. moto 5.2.5 deletes that instance but
    // answers DBInstanceNotFound (naming the deleted source); the plugin takes NotFound
    // as "already gone", so teardown converges. Asserted, so a moto fix shows up here.
    let calls = env.show(td["execution_id"].as_str().unwrap())["calls"].clone();
    let delete = calls
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["state"] == "DeletePrimary" && c["action"] == "DeleteDBInstance")
        .unwrap_or_else(|| panic!("no DeleteDBInstance in DeletePrimary: {calls:#}"));
    assert_eq!(
        delete["error_code"], "DBInstanceNotFound",
        "moto now deletes a replica whose source is gone cleanly: drop this gap: {delete:#}"
    );
    for (rds, region) in [(&rds_e, E), (&rds_w, W)] {
        let left = rds.describe_db_instances().send().await.unwrap();
        assert!(
            left.db_instances().is_empty(),
            "DB instances left in {region}"
        );
        let pg = rds.describe_db_parameter_groups().send().await.unwrap();
        assert!(
            !pg.db_parameter_groups()
                .iter()
                .any(|g| g.db_parameter_group_name() == Some("postgres15-dr-dev")),
            "parameter group left in {region}"
        );
        let sg = rds.describe_db_subnet_groups().send().await.unwrap();
        assert!(
            sg.db_subnet_groups().is_empty(),
            "subnet groups left in {region}"
        );
    }
    for (ec2, region) in [(&ec2_e, E), (&ec2_w, W)] {
        let v = ec2.describe_vpcs().send().await.unwrap();
        assert!(
            !v.vpcs()
                .iter()
                .any(|v| tag(v.tags(), "Name").is_some_and(|n| n.starts_with("dr-"))),
            "VPCs left in {region}"
        );
        let eps = ec2.describe_vpc_endpoints().send().await.unwrap();
        // Deleted endpoints stay listed in state `deleted` for a while, on AWS too.
        assert!(
            eps.vpc_endpoints().iter().all(|e| e
                .state()
                .map(|s| s.as_str().to_ascii_lowercase())
                .as_deref()
                == Some("deleted")),
            "endpoints left in {region}"
        );
    }
    let pcx = ec2_e
        .describe_vpc_peering_connections()
        .send()
        .await
        .unwrap();
    assert!(
        pcx.vpc_peering_connections().iter().all(|p| p
            .status()
            .and_then(|s| s.code())
            .map(|c| c.as_str())
            == Some("deleted")),
        "peering left"
    );
    assert!(
        r53.list_hosted_zones()
            .send()
            .await
            .unwrap()
            .hosted_zones()
            .is_empty(),
        "zone left"
    );
    assert!(
        r53.list_health_checks()
            .send()
            .await
            .unwrap()
            .health_checks()
            .is_empty(),
        "health checks left"
    );
    for cw in [&cw_e, &cw_w] {
        assert!(
            cw.describe_alarms()
                .send()
                .await
                .unwrap()
                .metric_alarms()
                .is_empty(),
            "alarms left"
        );
    }
    assert!(
        cw_e.list_dashboards()
            .send()
            .await
            .unwrap()
            .dashboard_entries()
            .is_empty(),
        "dashboard left"
    );
    assert!(
        sns_e
            .list_topics()
            .send()
            .await
            .unwrap()
            .topics()
            .is_empty(),
        "topic left"
    );
    let s = sm_e.list_secrets().send().await.unwrap();
    assert!(s.secret_list().is_empty(), "secret left");
}

/// Every security group's ingress rules in one region, comparable before and after.
async fn ingress(ec2: &aws_sdk_ec2::Client) -> Vec<(String, String)> {
    let groups = ec2.describe_security_groups().send().await.unwrap();
    let mut out: Vec<(String, String)> = groups
        .security_groups()
        .iter()
        .map(|g| {
            (
                g.group_id().unwrap_or_default().to_string(),
                format!("{:?}", g.ip_permissions()),
            )
        })
        .collect();
    out.sort();
    out
}

/// A plan's calls as `effect service:Action region resource` lines.
fn planned_actions(plan: &Value) -> Vec<String> {
    plan["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .map(|c| {
            format!(
                "{} {}:{} {} {}",
                c["effect"].as_str().unwrap(),
                c["service"].as_str().unwrap(),
                c["action"].as_str().unwrap(),
                c["region"].as_str().unwrap_or("global"),
                c["resource"].as_str().unwrap_or("-"),
            )
        })
        .collect()
}

/// DB instance `id` as DescribeDBInstances reports it.
async fn instance(rds: &aws_sdk_rds::Client, id: &str) -> aws_sdk_rds::types::DbInstance {
    let out = rds
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .unwrap();
    out.db_instances()[0].clone()
}

/// A cross-region replica as deploy and failback make one: from the source's ARN, with
/// the DR parameter and subnet groups of its own region.
fn assert_replica_of(db: &aws_sdk_rds::types::DbInstance, source_arn: &str) {
    let id = db.db_instance_identifier();
    assert_eq!(
        db.read_replica_source_db_instance_identifier(),
        Some(source_arn),
        "{id:?}"
    );
    assert_eq!(
        db.db_parameter_groups()[0].db_parameter_group_name(),
        Some("postgres15-dr-dev"),
        "{id:?}"
    );
    assert_eq!(
        db.db_subnet_group().and_then(|g| g.db_subnet_group_name()),
        Some("postgres-dr-subnets-dev"),
        "{id:?}"
    );
}

/// Identifiers of everything deploy creates, for the idempotency check.
async fn snapshot(
    rds_e: &aws_sdk_rds::Client,
    rds_w: &aws_sdk_rds::Client,
    ec2_e: &aws_sdk_ec2::Client,
    ec2_w: &aws_sdk_ec2::Client,
    r53: &aws_sdk_route53::Client,
) -> Vec<String> {
    let mut out = vec![];
    for rds in [rds_e, rds_w] {
        for d in rds
            .describe_db_instances()
            .send()
            .await
            .unwrap()
            .db_instances()
        {
            out.push(format!(
                "db {}",
                d.db_instance_identifier().unwrap_or_default()
            ));
        }
    }
    for ec2 in [ec2_e, ec2_w] {
        for v in ec2.describe_vpcs().send().await.unwrap().vpcs() {
            out.push(format!("vpc {}", v.vpc_id().unwrap_or_default()));
        }
        for s in ec2.describe_subnets().send().await.unwrap().subnets() {
            out.push(format!("subnet {}", s.subnet_id().unwrap_or_default()));
        }
        for g in ec2
            .describe_security_groups()
            .send()
            .await
            .unwrap()
            .security_groups()
        {
            out.push(format!("sg {}", g.group_id().unwrap_or_default()));
        }
        for p in ec2
            .describe_vpc_peering_connections()
            .send()
            .await
            .unwrap()
            .vpc_peering_connections()
        {
            out.push(format!(
                "pcx {}",
                p.vpc_peering_connection_id().unwrap_or_default()
            ));
        }
        for e in ec2
            .describe_vpc_endpoints()
            .send()
            .await
            .unwrap()
            .vpc_endpoints()
        {
            out.push(format!("vpce {}", e.vpc_endpoint_id().unwrap_or_default()));
        }
        for t in ec2
            .describe_route_tables()
            .send()
            .await
            .unwrap()
            .route_tables()
        {
            out.push(format!("rtb {}", t.route_table_id().unwrap_or_default()));
        }
    }
    for z in r53.list_hosted_zones().send().await.unwrap().hosted_zones() {
        out.push(format!("zone {}", z.id()));
        for r in r53
            .list_resource_record_sets()
            .hosted_zone_id(z.id())
            .send()
            .await
            .unwrap()
            .resource_record_sets()
        {
            out.push(format!(
                "rr {} {:?} {:?}",
                r.name(),
                r.set_identifier(),
                r.weight()
            ));
        }
    }
    for h in r53
        .list_health_checks()
        .send()
        .await
        .unwrap()
        .health_checks()
    {
        out.push(format!("hc {}", h.id()));
    }
    out.sort();
    out
}
