//! EC2 networking of the DR runbooks: one VPC per region with private isolated subnets
//! in two AZs, a route table, a PostgreSQL security group and an S3 gateway endpoint
//! (no NAT, as in the seed); cross-region peering with routes and 5432 rules both ways.
//! Resources are found again by their `Name` tag, so every step is idempotent, and the
//! delete steps tolerate what is already gone.
use runbook_plugin_sdk::cap::ec2::{self, IpPermission};
use runbook_plugin_sdk::cap::types::Filter;
use runbook_plugin_sdk::{StepError, export_step, info, tag};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(tag = "Op")]
enum Op {
    EnsureVpc(VpcSpec),
    EnsurePeering(PeeringSpec),
    DeletePeering {
        #[serde(rename = "Region")]
        region: String,
        #[serde(rename = "Name")]
        name: String,
    },
    DeleteVpc {
        #[serde(rename = "Region")]
        region: String,
        #[serde(rename = "Name")]
        name: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VpcSpec {
    region: String,
    name: String,
    cidr: String,
    /// One private subnet per entry, in the region's first AZs.
    subnet_cidrs: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Side {
    region: String,
    vpc_id: String,
    cidr: String,
    route_table_id: String,
    security_group_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PeeringSpec {
    name: String,
    requester: Side,
    accepter: Side,
    #[serde(default = "pg_port")]
    port: i32,
}

fn pg_port() -> i32 {
    5432
}

fn by_name(name: &str) -> Vec<Filter> {
    vec![Filter { name: "tag:Name".into(), values: vec![name.into()] }]
}

fn named(name: &str) -> Vec<runbook_plugin_sdk::cap::types::Tag> {
    vec![tag("Name", name), tag("managed-by", "runbook")]
}

fn ensure_vpc(s: VpcSpec) -> Result<Value, StepError> {
    let r = s.region.as_str();
    let mut created = Vec::new();
    let vpc = match ec2::describe_vpcs(r, &[], &by_name(&s.name))?.into_iter().next() {
        Some(v) => v,
        None => {
            let v = ec2::create_vpc(r, &s.cidr, &named(&s.name))?;
            // Private hosted zones resolve only in VPCs with DNS support and hostnames.
            ec2::modify_vpc_attribute(r, &v.vpc_id, Some(true), None)?;
            ec2::modify_vpc_attribute(r, &v.vpc_id, None, Some(true))?;
            created.push(v.vpc_id.clone());
            v
        }
    };
    let azs = ec2::describe_availability_zones(r)?;
    if azs.len() < s.subnet_cidrs.len() {
        return Err(StepError::new(
            "InvalidParameterValue",
            format!("{r} has {} availability zones, {} subnets asked", azs.len(), s.subnet_cidrs.len()),
        ));
    }
    let mut subnet_ids = Vec::new();
    for (i, cidr) in s.subnet_cidrs.iter().enumerate() {
        let sname = format!("{}-private-{}", s.name, i + 1);
        let existing = ec2::describe_subnets(r, &[], &by_name(&sname))?;
        let id = match existing.into_iter().find(|x| x.vpc_id == vpc.vpc_id) {
            Some(sn) => sn.subnet_id,
            None => {
                let sn = ec2::create_subnet(r, &vpc.vpc_id, cidr, &azs[i], &named(&sname))?;
                created.push(sn.subnet_id.clone());
                sn.subnet_id
            }
        };
        subnet_ids.push(id);
    }
    let rt_name = format!("{}-private", s.name);
    let rt = match ec2::describe_route_tables(r, &[], &by_name(&rt_name))?
        .into_iter()
        .find(|t| t.vpc_id == vpc.vpc_id)
    {
        Some(t) => t,
        None => {
            let t = ec2::create_route_table(r, &vpc.vpc_id, &named(&rt_name))?;
            created.push(t.route_table_id.clone());
            t
        }
    };
    for sn in &subnet_ids {
        if !rt.subnet_associations.contains(sn) {
            ec2::associate_route_table(r, &rt.route_table_id, sn)?;
        }
    }
    let sg_name = format!("{}-postgres", s.name);
    let sg = match ec2::describe_security_groups(
        r,
        &[],
        &[
            Filter { name: "group-name".into(), values: vec![sg_name.clone()] },
            Filter { name: "vpc-id".into(), values: vec![vpc.vpc_id.clone()] },
        ],
    )?
    .into_iter()
    .next()
    {
        Some(g) => g,
        None => {
            let g = ec2::create_security_group(
                r,
                &sg_name,
                "PostgreSQL from the peer region",
                &vpc.vpc_id,
                &named(&sg_name),
            )?;
            created.push(g.group_id.clone());
            g
        }
    };
    let service = format!("com.amazonaws.{r}.s3");
    let ep = match ec2::describe_vpc_endpoints(
        r,
        &[],
        &[
            Filter { name: "vpc-id".into(), values: vec![vpc.vpc_id.clone()] },
            Filter { name: "service-name".into(), values: vec![service.clone()] },
        ],
    )?
    .into_iter()
    .find(|e| e.state != "deleted" && e.state != "deleting")
    {
        Some(e) => e,
        None => {
            let e = ec2::create_vpc_endpoint(
                r,
                &vpc.vpc_id,
                &service,
                "Gateway",
                std::slice::from_ref(&rt.route_table_id),
                &named(&format!("{}-s3", s.name)),
            )?;
            created.push(e.vpc_endpoint_id.clone());
            e
        }
    };
    if !created.is_empty() {
        info!("{}: created {}", s.name, created.join(", "));
    }
    Ok(json!({
        "Region": r,
        "VpcId": vpc.vpc_id,
        "Cidr": vpc.cidr_block,
        "SubnetIds": subnet_ids,
        "RouteTableId": rt.route_table_id,
        "SecurityGroupId": sg.group_id,
        "S3EndpointId": ep.vpc_endpoint_id,
        "Created": created,
    }))
}

fn ensure_peering(p: PeeringSpec) -> Result<Value, StepError> {
    let (a, b) = (&p.requester, &p.accepter);
    let live = |x: &ec2::VpcPeeringConnection| {
        matches!(x.status.as_str(), "active" | "pending-acceptance" | "initiating-request" | "provisioning")
    };
    let mut pcx = ec2::describe_vpc_peering_connections(&a.region, &[], &by_name(&p.name))?
        .into_iter()
        .find(|x| live(x) && x.requester_vpc_id == a.vpc_id && x.accepter_vpc_id == b.vpc_id);
    let created = pcx.is_none();
    if pcx.is_none() {
        let x = ec2::create_vpc_peering_connection(&a.region, &a.vpc_id, &b.vpc_id, &b.region, &named(&p.name))?;
        info!("requested peering {} ({} -> {})", x.id, a.vpc_id, b.vpc_id);
        pcx = Some(x);
    }
    let mut pcx = pcx.expect("set above");
    if pcx.status != "active" {
        pcx = ec2::accept_vpc_peering_connection(&b.region, &pcx.id)?;
        info!("accepted peering {} in {}", pcx.id, b.region);
    }
    // Routes both ways, and 5432 from the peer CIDR on both security groups.
    for (side, peer) in [(a, b), (b, a)] {
        let table = ec2::describe_route_tables(&side.region, std::slice::from_ref(&side.route_table_id), &[])?;
        let has_route = table
            .iter()
            .flat_map(|t| t.routes.iter())
            .any(|rt| rt.destination_cidr == peer.cidr && rt.target == pcx.id);
        if !has_route {
            // A stale route to an old peering is replaced.
            if table.iter().flat_map(|t| t.routes.iter()).any(|rt| rt.destination_cidr == peer.cidr) {
                ec2::delete_route(&side.region, &side.route_table_id, &peer.cidr)?;
            }
            ec2::create_route(&side.region, &side.route_table_id, &peer.cidr, &pcx.id)?;
        }
        let groups = ec2::describe_security_groups(&side.region, std::slice::from_ref(&side.security_group_id), &[])?;
        let allowed = groups.iter().flat_map(|g| g.ingress.iter()).any(|perm| {
            perm.ip_protocol == "tcp"
                && perm.from_port <= p.port
                && perm.to_port >= p.port
                && perm.cidr_blocks.contains(&peer.cidr)
        });
        if !allowed {
            ec2::authorize_security_group_ingress(
                &side.region,
                &side.security_group_id,
                &[IpPermission {
                    ip_protocol: "tcp".into(),
                    from_port: p.port,
                    to_port: p.port,
                    cidr_blocks: vec![peer.cidr.clone()],
                    source_security_groups: vec![],
                }],
            )?;
        }
    }
    Ok(json!({ "PeeringId": pcx.id, "Status": pcx.status, "Created": created }))
}

fn delete_peering(region: &str, name: &str) -> Result<Value, StepError> {
    let mut deleted = Vec::new();
    for x in ec2::describe_vpc_peering_connections(region, &[], &by_name(name))? {
        if matches!(x.status.as_str(), "deleted" | "rejected" | "failed" | "deleting") {
            continue;
        }
        if runbook_plugin_sdk::deleted(ec2::delete_vpc_peering_connection(region, &x.id))? {
            deleted.push(x.id);
        }
    }
    Ok(json!({ "Deleted": deleted }))
}

fn delete_vpc(region: &str, name: &str) -> Result<Value, StepError> {
    let Some(vpc) = ec2::describe_vpcs(region, &[], &by_name(name))?.into_iter().next() else {
        return Ok(json!({ "Deleted": [], "Reason": "not found" }));
    };
    let in_vpc = vec![Filter { name: "vpc-id".into(), values: vec![vpc.vpc_id.clone()] }];
    let mut deleted = Vec::new();
    let eps: Vec<String> = ec2::describe_vpc_endpoints(region, &[], &in_vpc)?
        .into_iter()
        .filter(|e| e.state != "deleted")
        .map(|e| e.vpc_endpoint_id)
        .collect();
    if !eps.is_empty() {
        runbook_plugin_sdk::deleted(ec2::delete_vpc_endpoints(region, &eps))?;
        deleted.extend(eps);
    }
    for g in ec2::describe_security_groups(region, &[], &in_vpc)? {
        if g.group_name == "default" {
            continue;
        }
        if runbook_plugin_sdk::deleted(ec2::delete_security_group(region, &g.group_id))? {
            deleted.push(g.group_id);
        }
    }
    for sn in ec2::describe_subnets(region, &[], &in_vpc)? {
        if runbook_plugin_sdk::deleted(ec2::delete_subnet(region, &sn.subnet_id))? {
            deleted.push(sn.subnet_id);
        }
    }
    for t in ec2::describe_route_tables(region, &[], &in_vpc)? {
        // The main route table goes with the VPC.
        if !t.tags.iter().any(|x| x.key == "managed-by") {
            continue;
        }
        if runbook_plugin_sdk::deleted(ec2::delete_route_table(region, &t.route_table_id))? {
            deleted.push(t.route_table_id);
        }
    }
    if runbook_plugin_sdk::deleted(ec2::delete_vpc(region, &vpc.vpc_id))? {
        deleted.push(vpc.vpc_id);
    }
    info!("{name}: deleted {}", deleted.join(", "));
    Ok(json!({ "Deleted": deleted }))
}

fn run(op: Op) -> Result<Value, StepError> {
    match op {
        Op::EnsureVpc(s) => ensure_vpc(s),
        Op::EnsurePeering(p) => ensure_peering(p),
        Op::DeletePeering { region, name } => delete_peering(&region, &name),
        Op::DeleteVpc { region, name } => delete_vpc(&region, &name),
    }
}

export_step!(run);
