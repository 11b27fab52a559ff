//! `runbook plugin new`: writes out a plugin project in Rust, Python or JavaScript that
//! builds against the WIT this runner ships. The projects are the example policies
//! under `plugins/examples/` (lag-guard's rules), embedded in the binary so that it
//! needs no path into this repository, with the example's name replaced by the new one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

/// `runbook plugin new`.
#[derive(clap::Args)]
pub struct NewArgs {
    /// The plugin's name (a Cargo package name: letters, digits, `-`, `_`).
    pub name: String,
    #[arg(long, value_enum, default_value = "rust")]
    pub lang: Lang,
    /// Where to create the project (default: ./NAME). Must not exist or be empty.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Lang {
    Rust,
    /// componentize-py (`pip install componentize-py==0.25.1`).
    Python,
    /// componentize-qjs (QuickJS; from npm, a devDependency of the project).
    Js,
}

/// The WIT this runner links, written into every new project: the project never points
/// into the runner's source tree.
const WIT: &[(&str, &str)] = &[
    ("world.wit", include_str!("../../../../wit/world.wit")),
    ("types.wit", include_str!("../../../../wit/types.wit")),
    ("log.wit", include_str!("../../../../wit/log.wit")),
    ("rds.wit", include_str!("../../../../wit/rds.wit")),
    ("ec2.wit", include_str!("../../../../wit/ec2.wit")),
    ("route53.wit", include_str!("../../../../wit/route53.wit")),
    (
        "cloudwatch.wit",
        include_str!("../../../../wit/cloudwatch.wit"),
    ),
    ("sns.wit", include_str!("../../../../wit/sns.wit")),
    (
        "secretsmanager.wit",
        include_str!("../../../../wit/secretsmanager.wit"),
    ),
    ("postgres.wit", include_str!("../../../../wit/postgres.wit")),
    ("fault.wit", include_str!("../../../../wit/fault.wit")),
    ("traffic.wit", include_str!("../../../../wit/traffic.wit")),
];

/// An example project under `plugins/examples/`, as `plugin new` writes it out: its
/// files (path in the project, text) besides the WIT. The example's own name (and its
/// `_` form, the crate and `.wasm` name) is replaced by the new plugin's.
struct Example {
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
}

/// The example input every project's README and `plugin test` line use.
const PRIMARY_DOWN: (&str, &str) = (
    "examples/primary-down.json",
    include_str!("../../../../plugins/examples/primary-down.json"),
);

const RUST: Example = Example {
    name: "rust-lag-guard",
    files: &[
        (
            "Cargo.toml",
            include_str!("../../../../plugins/examples/rust-lag-guard/Cargo.toml"),
        ),
        (
            "src/lib.rs",
            include_str!("../../../../plugins/examples/rust-lag-guard/src/lib.rs"),
        ),
        PRIMARY_DOWN,
        (
            "README.md",
            include_str!("../../../../plugins/examples/rust-lag-guard/README.md"),
        ),
        (
            ".gitignore",
            include_str!("../../../../plugins/examples/rust-lag-guard/.gitignore"),
        ),
    ],
};

const PYTHON: Example = Example {
    name: "python-lag-guard",
    files: &[
        (
            "app.py",
            include_str!("../../../../plugins/examples/python-lag-guard/app.py"),
        ),
        PRIMARY_DOWN,
        (
            "README.md",
            include_str!("../../../../plugins/examples/python-lag-guard/README.md"),
        ),
        (
            ".gitignore",
            include_str!("../../../../plugins/examples/python-lag-guard/.gitignore"),
        ),
    ],
};

const JS: Example = Example {
    name: "js-lag-guard",
    files: &[
        (
            "policy.js",
            include_str!("../../../../plugins/examples/js-lag-guard/policy.js"),
        ),
        (
            "package.json",
            include_str!("../../../../plugins/examples/js-lag-guard/package.json"),
        ),
        PRIMARY_DOWN,
        (
            "README.md",
            include_str!("../../../../plugins/examples/js-lag-guard/README.md"),
        ),
        (
            ".gitignore",
            include_str!("../../../../plugins/examples/js-lag-guard/.gitignore"),
        ),
    ],
};

impl Example {
    /// The project's files for plugin `name`, the WIT included.
    fn files(&self, name: &str) -> Vec<(PathBuf, String)> {
        let example_crate = self.name.replace('-', "_");
        let krate = name.replace('-', "_");
        let names = [(self.name, name), (example_crate.as_str(), krate.as_str())];
        let fill = |t: &str| substitute(t, &names);
        let mut files: Vec<(PathBuf, String)> = self
            .files
            .iter()
            .map(|(path, text)| (PathBuf::from(path), fill(text)))
            .collect();
        files.extend(
            WIT.iter()
                .map(|(n, t)| (Path::new("wit").join(n), t.to_string())),
        );
        files
    }
}

/// `text` with each `from` replaced by its `to`, in one pass: what a replacement puts in
/// is never matched again (a new name may well contain the example's).
fn substitute(text: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while let Some(c) = rest.chars().next() {
        for (from, to) in pairs {
            if let Some(after) = rest.strip_prefix(from).filter(|_| !from.is_empty()) {
                out.push_str(to);
                rest = after;
                continue 'scan;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `runbook plugin new`: exit 0 when written, 2 for bad usage.
pub fn new(a: &NewArgs) -> anyhow::Result<ExitCode> {
    if !valid_name(&a.name) {
        eprintln!(
            "plugin new: '{}' is not a valid name (a letter, then letters, digits, '-' or '_')",
            a.name
        );
        return Ok(ExitCode::from(2));
    }
    let dir = a.dir.clone().unwrap_or_else(|| PathBuf::from(&a.name));
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        eprintln!("plugin new: {} exists and is not empty", dir.display());
        return Ok(ExitCode::from(2));
    }
    let krate = a.name.replace('-', "_");
    let example = match a.lang {
        Lang::Rust => &RUST,
        Lang::Python => &PYTHON,
        Lang::Js => &JS,
    };
    let files = example.files(&a.name);
    for (rel, text) in &files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("created {} ({} files)", dir.display(), files.len());
    println!("  cd {}", dir.display());
    let wasm = match a.lang {
        Lang::Rust => {
            println!("  cargo build --target wasm32-wasip2 --release");
            format!("target/wasm32-wasip2/release/{krate}.wasm")
        }
        Lang::Python => {
            println!("  componentize-py -d wit -w policy componentize app -o {krate}.wasm");
            format!("{krate}.wasm")
        }
        Lang::Js => {
            println!("  npm install && npm run build");
            format!("{krate}.wasm")
        }
    };
    println!("  runbook plugin test {wasm} --input @examples/primary-down.json");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_is_one_pass() {
        let pairs = [("ex-name", "my-ex-name"), ("ex_name", "my_ex_name")];
        assert_eq!(
            substitute("ex-name: ex_name.wasm; ex-name", &pairs),
            "my-ex-name: my_ex_name.wasm; my-ex-name"
        );
    }

    #[test]
    fn new_projects_carry_the_new_name_and_none_of_the_example() {
        for example in [&RUST, &PYTHON, &JS] {
            let files = example.files("my-policy");
            let example_crate = example.name.replace('-', "_");
            for (path, text) in &files {
                assert!(
                    !text.contains(example.name) && !text.contains(&example_crate),
                    "{}: {} still names the example",
                    example.name,
                    path.display()
                );
            }
            // The policy reports its own name in its decisions.
            let source = &files[0].1;
            assert!(source.contains("my-policy"), "{}", example.name);
            assert!(files.iter().any(|(p, _)| p == Path::new("wit/world.wit")));
        }
    }
}
