//! What a command reads that the user hands it: a file, or standard input
//! when the path is `-` (as `patch` and `import` take it).

use std::io::Read;
use std::path::Path;

use crate::failure::Failure;

/// Whether `path` means standard input.
pub fn is_stdin(path: &Path) -> bool {
    path == Path::new("-")
}

/// The bytes of `path` (standard input for `-`), and a name for messages
/// ("stdin", or the path). A file that cannot be read is bad input (exit 2);
/// standard input that cannot be read is not the user's fault (exit 1).
pub fn read(path: &Path) -> Result<(Vec<u8>, String), Failure> {
    if is_stdin(path) {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| Failure::other(e).context("cannot read stdin"))?;
        Ok((bytes, "stdin".to_owned()))
    } else {
        let bytes = std::fs::read(path).map_err(|e| {
            Failure::bad_input(e).context(format!("cannot read {}", path.display()))
        })?;
        Ok((bytes, path.display().to_string()))
    }
}
