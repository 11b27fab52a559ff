//! `runbook plugin test` and `runbook plugin new`: a plugin author's loop outside any
//! runbook. `test` runs one component with a given input and answers its capability
//! calls from a fixture file or from what a past execution's journal recorded; `new`
//! writes out a plugin project (Rust, Python or JavaScript) that builds against the WIT
//! this runner ships.

mod new;
mod replay;
mod test;

pub use new::{NewArgs, new};
pub use test::{TestArgs, test};
