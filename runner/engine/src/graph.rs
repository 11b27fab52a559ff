//! Diagrams of a state machine: Mermaid flowcharts and Graphviz DOT. Parallel branches and
//! Map processors are subgraphs, Catch edges are dashed and Choice edges carry their rule.

use crate::model::{ChoiceRule, Operand, RuleKind, StateKind, StateMachine};
use std::fmt::Write;

/// A short human-readable form of a Choice rule, for edge labels.
pub fn describe_rule(r: &ChoiceRule) -> String {
    match &r.kind {
        RuleKind::And(rs) => rs
            .iter()
            .map(describe_rule)
            .collect::<Vec<_>>()
            .join(" and "),
        RuleKind::Or(rs) => rs
            .iter()
            .map(describe_rule)
            .collect::<Vec<_>>()
            .join(" or "),
        RuleKind::Not(x) => format!("not ({})", describe_rule(x)),
        RuleKind::Condition(body) => body.trim().to_string(),
        RuleKind::Compare {
            variable,
            op,
            operand,
        } => {
            let rhs = match operand {
                Operand::Value(v) => v.to_string(),
                Operand::Path(p) => p.as_str().to_string(),
            };
            format!("{} {} {}", variable.as_str(), op.name(), rhs)
        }
    }
}

struct Edge {
    from: String,
    to: String,
    label: Option<String>,
    dashed: bool,
}

struct Node {
    id: String,
    label: String,
    kind: &'static str,
}

/// Flattened graph: nodes grouped by (nested) clusters.
struct Cluster {
    title: Option<String>,
    nodes: Vec<Node>,
    clusters: Vec<Cluster>,
}

struct Builder {
    next: usize,
    edges: Vec<Edge>,
}

impl Builder {
    fn id(&mut self) -> String {
        self.next += 1;
        format!("n{}", self.next)
    }

    /// Build a cluster for `m`; returns it and the id of its entry node.
    fn machine(&mut self, m: &StateMachine, title: Option<String>) -> (Cluster, String) {
        let mut c = Cluster {
            title,
            nodes: Vec::new(),
            clusters: Vec::new(),
        };
        let ids: Vec<String> = m.states.iter().map(|_| self.id()).collect();
        let start = self.id();
        let end = self.id();
        c.nodes.push(Node {
            id: start.clone(),
            label: "start".into(),
            kind: "start",
        });
        c.nodes.push(Node {
            id: end.clone(),
            label: "end".into(),
            kind: "end",
        });
        let idx = |name: &str| m.index_of(name).map(|i| ids[i].clone());
        if let Some(s) = idx(&m.start_at) {
            self.edges.push(Edge {
                from: start,
                to: s,
                label: None,
                dashed: false,
            });
        }
        for (i, s) in m.states.iter().enumerate() {
            let id = ids[i].clone();
            c.nodes.push(Node {
                id: id.clone(),
                label: format!("{} ({})", s.name, s.kind.type_name()),
                kind: s.kind.type_name(),
            });
            let edge =
                |to: Option<String>, label: Option<String>, dashed: bool, edges: &mut Vec<Edge>| {
                    if let Some(to) = to {
                        edges.push(Edge {
                            from: id.clone(),
                            to,
                            label,
                            dashed,
                        });
                    }
                };
            if let Some(n) = &s.next {
                edge(idx(n), None, false, &mut self.edges);
            }
            if s.end || matches!(s.kind, StateKind::Succeed | StateKind::Fail(_)) {
                edge(Some(end.clone()), None, false, &mut self.edges);
            }
            let catch = match &s.kind {
                StateKind::Task(t) => &t.catch[..],
                StateKind::Parallel(p) => &p.catch[..],
                StateKind::Map(mp) => &mp.catch[..],
                _ => &[],
            };
            for k in catch {
                edge(
                    idx(&k.next),
                    Some(format!("Catch {}", k.error_equals.join(", "))),
                    true,
                    &mut self.edges,
                );
            }
            match &s.kind {
                StateKind::Choice(ch) => {
                    for r in &ch.choices {
                        if let Some(n) = &r.next {
                            edge(idx(n), Some(describe_rule(r)), false, &mut self.edges);
                        }
                    }
                    if let Some(d) = &ch.default {
                        edge(idx(d), Some("Default".into()), false, &mut self.edges);
                    }
                }
                StateKind::Parallel(p) => {
                    for (b, m) in p.branches.iter().enumerate() {
                        let (sub, entry) = self.machine(m, Some(format!("{} branch {b}", s.name)));
                        c.clusters.push(sub);
                        edge(Some(entry), None, true, &mut self.edges);
                    }
                }
                StateKind::Map(mp) => {
                    let (sub, entry) =
                        self.machine(&mp.processor, Some(format!("{} (each item)", s.name)));
                    c.clusters.push(sub);
                    edge(Some(entry), None, true, &mut self.edges);
                }
                _ => {}
            }
        }
        let entry = c.nodes[0].id.clone();
        (c, entry)
    }
}

fn build(m: &StateMachine) -> (Cluster, Vec<Edge>) {
    let mut b = Builder {
        next: 0,
        edges: Vec::new(),
    };
    let (c, _) = b.machine(m, None);
    (c, b.edges)
}

fn mermaid_text(s: &str) -> String {
    s.replace('"', "#quot;").replace('|', "#124;")
}

/// Mermaid flowchart.
pub fn to_mermaid(m: &StateMachine) -> String {
    let (root, edges) = build(m);
    let mut out = String::from("flowchart TD\n");
    fn cluster(out: &mut String, c: &Cluster, depth: usize, counter: &mut usize) {
        let pad = "  ".repeat(depth);
        for n in &c.nodes {
            let label = mermaid_text(&n.label);
            let _ = match n.kind {
                "start" | "end" => writeln!(out, "{pad}{}((\"{label}\"))", n.id),
                "Choice" => writeln!(out, "{pad}{}{{\"{label}\"}}", n.id),
                "Fail" => writeln!(out, "{pad}{}[/\"{label}\"/]", n.id),
                _ => writeln!(out, "{pad}{}[\"{label}\"]", n.id),
            };
        }
        for sub in &c.clusters {
            *counter += 1;
            let _ = writeln!(
                out,
                "{pad}subgraph sg{} [\"{}\"]",
                counter,
                mermaid_text(sub.title.as_deref().unwrap_or(""))
            );
            cluster(out, sub, depth + 1, counter);
            let _ = writeln!(out, "{pad}end");
        }
    }
    let mut counter = 0;
    cluster(&mut out, &root, 1, &mut counter);
    for e in &edges {
        let arrow = if e.dashed { "-.->" } else { "-->" };
        let _ = match &e.label {
            Some(l) => writeln!(
                out,
                "  {} {arrow}|\"{}\"| {}",
                e.from,
                mermaid_text(l),
                e.to
            ),
            None => writeln!(out, "  {} {arrow} {}", e.from, e.to),
        };
    }
    out
}

fn dot_text(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Graphviz DOT digraph.
pub fn to_dot(m: &StateMachine) -> String {
    let (root, edges) = build(m);
    let mut out =
        String::from("digraph runbook {\n  rankdir=TB;\n  node [fontname=\"Helvetica\"];\n");
    fn cluster(out: &mut String, c: &Cluster, depth: usize, counter: &mut usize) {
        let pad = "  ".repeat(depth);
        for n in &c.nodes {
            let shape = match n.kind {
                "start" | "end" => "circle",
                "Choice" => "diamond",
                "Fail" => "octagon",
                "Succeed" => "doublecircle",
                _ => "box",
            };
            let _ = writeln!(
                out,
                "{pad}{} [label=\"{}\", shape={shape}];",
                n.id,
                dot_text(&n.label)
            );
        }
        for sub in &c.clusters {
            *counter += 1;
            let _ = writeln!(out, "{pad}subgraph cluster_{} {{", counter);
            let _ = writeln!(
                out,
                "{pad}  label=\"{}\";",
                dot_text(sub.title.as_deref().unwrap_or(""))
            );
            cluster(out, sub, depth + 1, counter);
            let _ = writeln!(out, "{pad}}}");
        }
    }
    let mut counter = 0;
    cluster(&mut out, &root, 1, &mut counter);
    for e in &edges {
        let mut attrs = Vec::new();
        if let Some(l) = &e.label {
            attrs.push(format!("label=\"{}\"", dot_text(l)));
        }
        if e.dashed {
            attrs.push("style=dashed".into());
        }
        let attrs = if attrs.is_empty() {
            String::new()
        } else {
            format!(" [{}]", attrs.join(", "))
        };
        let _ = writeln!(out, "  {} -> {}{attrs};", e.from, e.to);
    }
    out.push_str("}\n");
    out
}
