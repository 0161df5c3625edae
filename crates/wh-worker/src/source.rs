//! Writes an uploaded source archive into a build directory. The archive is checked entry by
//! entry while it is written ([`wh_wsproto::archive::walk`]: paths stay inside, sizes and entry
//! counts bounded); files get mode 0644 or 0755, nothing else from the archive.

use std::io::Write;
use std::path::Path;

use wh_wsproto::archive::{self, Entry, Limits};

/// Unpacks `bytes` into `dir` (which must exist).
pub fn unpack(bytes: &[u8], dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{symlink, OpenOptionsExt};
    let io = |what: &Path, e: std::io::Error| {
        archive::ArchiveError::Malformed(format!("{}: {e}", what.display()))
    };
    archive::walk(bytes, &Limits::default(), |entry| match entry {
        Entry::Dir(p) => std::fs::create_dir_all(dir.join(&p)).map_err(|e| io(&p, e)),
        Entry::File { path, executable, data } => {
            let target = dir.join(&path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io(&path, e))?;
            }
            // A later entry never writes through an earlier symlink: replace, don't follow.
            let _ = std::fs::remove_file(&target);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(if executable { 0o755 } else { 0o644 })
                .open(&target)
                .map_err(|e| io(&path, e))?;
            f.write_all(&data).map_err(|e| io(&path, e))
        }
        Entry::Symlink { path, target } => {
            let at = dir.join(&path);
            if let Some(parent) = at.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io(&path, e))?;
            }
            let _ = std::fs::remove_file(&at);
            symlink(&target, &at).map_err(|e| io(&path, e))
        }
    })
    .map_err(|e| format!("source archive refused: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_land_with_their_modes() {
        use std::os::unix::fs::PermissionsExt;
        let bytes = archive::pack([
            ("index.html", &b"<h1>hi</h1>"[..], false),
            ("bin/start", b"#!/bin/sh\n", true),
        ])
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        unpack(&bytes, dir.path()).unwrap();
        assert_eq!(std::fs::read(dir.path().join("index.html")).unwrap(), b"<h1>hi</h1>");
        let mode = std::fs::metadata(dir.path().join("bin/start")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        assert!(unpack(b"garbage", dir.path()).unwrap_err().contains("refused"));
    }
}
