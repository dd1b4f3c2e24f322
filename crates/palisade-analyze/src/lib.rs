//! Analysis on top of the policy engine: connectivity matrices and their renderers, and plain-words
//! explanations of single flows (the engine's reasons are data; [`reason`] words them). Nothing here
//! touches the kernel.

pub mod diff;
pub mod explain;
pub mod fix;
pub mod lint;
pub mod matrix;
pub mod observed;
pub mod probe;
pub mod reason;
pub mod render;
pub mod report;
pub mod status;

pub use matrix::{Matrix, Scope};
pub use probe::{default_probes, Probe};
pub use render::{Format, Grid};
