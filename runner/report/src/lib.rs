//! Game-day reports.
//!
//! The runner fills a [`GameDay`] from its journal and the traffic ledger; this crate
//! only renders it (no journal, network or clock access): JSON (schema
//! [`SCHEMA_ID`]), one self-contained HTML file with inline SVG charts (no JavaScript,
//! no external resources), JUnit XML for CI, and a Markdown summary for a PR or chat.
//! [`render_trend_html`] draws the RTO of several game days over time.

mod buckets;
mod html;
mod json;
mod junit;
mod markdown;
mod model;
mod rpo;
mod timeline;
mod trend;

use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use buckets::buckets;
pub use html::render_html;
pub use json::{SCHEMA_ID, parse_json, render_json};
pub use junit::render_junit;
pub use markdown::render_markdown;
pub use model::{
    Bucket, Check, FaultInfo, GameDay, LagSample, Measured, Phase, Scope, Series, Targets, Verdict,
};
pub use rpo::{AckedWrite, observed_rpo_seconds};
pub use timeline::{Event, milestone};
pub use trend::{TrendPoint, render_trend_html};

/// Errors of this crate, each with a stable code.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("unknown report format {0:?} (expected json, html, junit, md or markdown)")]
    UnknownFormat(String),
    #[error("not a game-day report: {0}")]
    BadJson(#[from] serde_json::Error),
    #[error("unsupported report schema {found:?} (expected {SCHEMA_ID:?})")]
    WrongSchema { found: String },
}

impl ReportError {
    pub fn code(&self) -> &'static str {
        match self {
            ReportError::UnknownFormat(_) => "report.unknown_format",
            ReportError::BadJson(_) => "report.bad_json",
            ReportError::WrongSchema { .. } => "report.wrong_schema",
        }
    }
}

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Json,
    Html,
    Junit,
    Markdown,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Json, Format::Html, Format::Junit, Format::Markdown];

    /// File extension without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Html => "html",
            Format::Junit => "xml",
            Format::Markdown => "md",
        }
    }

    /// The file name [`render_all`] writes this format to.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Json => "report.json",
            Format::Html => "report.html",
            Format::Junit => "junit.xml",
            Format::Markdown => "report.md",
        }
    }
}

impl FromStr for Format {
    type Err = ReportError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "html" => Ok(Format::Html),
            "junit" | "xml" => Ok(Format::Junit),
            "md" | "markdown" => Ok(Format::Markdown),
            _ => Err(ReportError::UnknownFormat(s.to_string())),
        }
    }
}

/// Renders `g` in `format`.
pub fn render(g: &GameDay, format: Format) -> String {
    match format {
        Format::Json => render_json(g),
        Format::Html => render_html(g),
        Format::Junit => render_junit(g),
        Format::Markdown => render_markdown(g),
    }
}

/// Writes every format into `dir` (created if missing): report.json, report.html,
/// junit.xml, report.md. Returns the paths written, in that order.
pub fn render_all(g: &GameDay, dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    Format::ALL
        .iter()
        .map(|&f| {
            let path = dir.join(f.file_name());
            std::fs::write(&path, render(g, f))?;
            Ok(path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names() {
        for (s, f) in [
            ("json", Format::Json),
            ("HTML", Format::Html),
            ("junit", Format::Junit),
            ("md", Format::Markdown),
            ("markdown", Format::Markdown),
        ] {
            assert_eq!(s.parse::<Format>().unwrap(), f);
        }
        let err = "pdf".parse::<Format>().unwrap_err();
        assert_eq!(err.code(), "report.unknown_format");
        assert_eq!(Format::Junit.extension(), "xml");
        assert_eq!(Format::Markdown.file_name(), "report.md");
    }
}
