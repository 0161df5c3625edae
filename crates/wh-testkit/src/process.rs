//! Running helper commands and turning their failures into [`Error`]s.

use std::process::{Command, Output, Stdio};

use crate::{Error, Result};

/// Runs `cmd` to completion; a non-zero exit becomes [`Error::Command`] carrying its output.
pub(crate) fn run(cmd: &mut Command) -> Result<Output> {
    let shown = format!("{cmd:?}");
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Missing {
                program: cmd.get_program().to_string_lossy().into(),
                hint: e.to_string(),
            }
        } else {
            Error::Io(e)
        }
    })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(Error::Command {
            command: shown,
            status: out.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }
}

/// Finds `name` on `PATH`.
pub(crate) fn which(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}
