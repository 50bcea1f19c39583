//! One module per subcommand; `main.rs` only dispatches.

pub mod completions;
pub mod edit;
pub mod export;
pub mod get;
pub mod history;
pub mod import;
pub mod keygen;
pub mod ls;
pub mod root;
pub mod serve;
pub mod storage;
pub mod vectors;
pub mod verify;
pub mod watch;
pub mod write;
