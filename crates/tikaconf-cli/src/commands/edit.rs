//! `tikaconf edit`: change a document in a text editor, as `kubectl edit` and
//! `git commit` do.
//!
//! The document is written pretty-printed to a private temporary file and the
//! editor runs on it; what comes back is parsed, diffed against what was
//! opened (`tikaconf::diff`) and submitted only on the head that was opened,
//! so that a write made meanwhile by someone else is never undone: it makes
//! the edit exit 4 instead. Whenever the edit is not published (the editor
//! failed, the file is no longer JSON, the write was refused) the file is
//! kept and its path printed, so that no typing is lost; it is removed once
//! the edit is committed or changed nothing.
//!
//! The editor is `$VISUAL`, then `$EDITOR`, then `vi`, run the way git runs
//! it: a plain program name directly, anything with spaces or shell syntax
//! (`code --wait`, `emacs -nw`) through `sh -c '<editor> "$@"'`, so that the
//! value means what it means to git and to the shell.

use std::path::Path;

use crate::cli::Global;
use crate::commands::write;
use crate::failure::{Code, Failure};
use crate::remote::Remote;
use crate::session;

/// `edit ROOT`.
pub async fn run(global: &Global, root: &str) -> Result<(), Failure> {
    let root = session::parse_root(root)?;
    let target = Remote::connect(global).await?.open(root).await?;
    let opened = target.read().await?;
    let mut text = serde_json::to_string_pretty(&*opened.document).map_err(Failure::other)?;
    text.push('\n');
    let file = tempfile::Builder::new()
        .prefix("tikaconf-edit-")
        .suffix(".json")
        .tempfile()
        .map_err(|e| Failure::other(e).context("cannot make the file to edit"))?;
    std::fs::write(file.path(), &text)
        .map_err(|e| Failure::other(e).context("cannot write the file to edit"))?;

    let kept = |failure: Failure, path: &Path| {
        failure.context(format!(
            "nothing was published; your edit is kept in {}",
            path.display()
        ))
    };
    let edited = match run_editor(file.path()).await {
        Ok(()) => std::fs::read(file.path())
            .map_err(|e| Failure::other(e).context("cannot read the edited file")),
        Err(failure) => Err(failure),
    };
    let document = edited.and_then(|bytes| {
        write::parse(&bytes).map_err(|f| f.context("the edited document is not valid JSON"))
    });
    let document = match document {
        Ok(document) => document,
        Err(failure) => {
            let (_, path) = file.keep().map_err(|e| Failure::other(e.error))?;
            return Err(kept(failure, &path));
        }
    };
    let ops = tikaconf::diff(&opened.document, &document);
    if ops.as_array().is_some_and(Vec::is_empty) {
        // Nothing to publish, whatever happened meanwhile: the head opened.
        return write::report(
            global,
            &write::Outcome {
                root: target.root(),
                head: opened.head,
                height: opened.height,
                changed: false,
            },
        );
    }
    match write::commit(&target, ops, Some(opened.head)).await {
        Ok(outcome) => write::report(global, &outcome),
        Err(failure) => {
            let (_, path) = file.keep().map_err(|e| Failure::other(e.error))?;
            Err(kept(failure, &path))
        }
    }
}

/// Runs the editor on `path` and waits for it; a failure if it cannot start
/// or does not exit 0.
async fn run_editor(path: &Path) -> Result<(), Failure> {
    let editor = editor();
    let mut command = command(&editor, path);
    let status = command.status().await.map_err(|e| {
        Failure::other(e).context(format!(
            "cannot run the editor {editor:?} (set VISUAL or EDITOR)"
        ))
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(Failure::new(
            Code::Other,
            anyhow::anyhow!("the editor {editor:?} exited with {status}"),
        ))
    }
}

/// `$VISUAL`, `$EDITOR`, or `vi`; empty values do not count.
fn editor() -> String {
    ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|value| !value.trim().is_empty())
        .unwrap_or_else(|| "vi".to_owned())
}

/// The command that runs `editor` on `path`, as git's `prepare_shell_cmd`
/// makes it: directly when it is one plain word, else through the shell with
/// the path as `"$@"`, so that quoting and arguments in the variable work.
fn command(editor: &str, path: &Path) -> tokio::process::Command {
    const SHELL_SYNTAX: &[char] = &[
        '|', '&', ';', '<', '>', '(', ')', '$', '`', '\\', '"', '\'', ' ', '\t', '\n', '*', '?',
        '[', '#', '~', '=', '%',
    ];
    if editor.contains(SHELL_SYNTAX) {
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(format!("{editor} \"$@\""))
            .arg(editor)
            .arg(path);
        command
    } else {
        let mut command = tokio::process::Command::new(editor);
        command.arg(path);
        command
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(editor: &str) -> Vec<String> {
        let command = command(editor, Path::new("/tmp/f.json"));
        let std = command.as_std();
        std::iter::once(std.get_program())
            .chain(std.get_args())
            .map(|s| s.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_editor_runs_as_git_runs_it() {
        assert_eq!(argv("vim"), ["vim", "/tmp/f.json"]);
        assert_eq!(
            argv("code --wait"),
            [
                "sh",
                "-c",
                "code --wait \"$@\"",
                "code --wait",
                "/tmp/f.json"
            ]
        );
        assert_eq!(
            argv("'/opt/my editor/bin/ed'"),
            [
                "sh",
                "-c",
                "'/opt/my editor/bin/ed' \"$@\"",
                "'/opt/my editor/bin/ed'",
                "/tmp/f.json"
            ]
        );
    }
}
