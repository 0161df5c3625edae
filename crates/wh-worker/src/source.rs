//! Writes an uploaded source archive into a build directory. The archive is checked entry by
//! entry while it is written ([`wh_wsproto::archive::walk`]: paths stay inside, no entry below
//! a link, every link resolving inside the tree, sizes and counts bounded); files get mode 0644
//! or 0755, nothing else from the archive, and their contents are streamed to disk.
//!
//! Whatever the archive says, unpacking never follows a symlink: every directory on the way to
//! an entry is checked to be a real directory (not a link) before anything is created in it,
//! and files are created with `O_EXCL`, which never opens through a link. A walk that fails
//! leaves the directory to be discarded by the caller.

use std::io::Write;
use std::path::{Path, PathBuf};

use wh_wsproto::archive::{self, ArchiveError, Entry, Limits};

/// Why an upload could not be unpacked.
#[derive(Debug, thiserror::Error)]
#[error("source archive refused: {0}")]
pub struct UnpackError(#[from] ArchiveError);

/// Unpacks `bytes` into `dir` (which must exist); on error, `dir` holds a partial tree that
/// the caller discards.
pub fn unpack(bytes: &[u8], dir: &Path) -> Result<(), UnpackError> {
    use std::os::unix::fs::{symlink, OpenOptionsExt};
    let io = |what: &Path, e: std::io::Error| {
        ArchiveError::Malformed(format!("{}: {e}", what.display()))
    };
    archive::walk(bytes, &Limits::default(), |entry, data| match entry {
        Entry::Dir(p) => real_dirs(dir, &p).map_err(|e| io(&p, e)),
        Entry::File { path, executable, .. } => {
            let target = in_real_dir(dir, &path).map_err(|e| io(&path, e))?;
            // A file listed twice replaces the first; `remove_file` on a link removes the link.
            let _ = std::fs::remove_file(&target);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(if executable { 0o755 } else { 0o644 })
                .open(&target)
                .map_err(|e| io(&path, e))?;
            std::io::copy(data, &mut f).map_err(|e| io(&path, e))?;
            f.flush().map_err(|e| io(&path, e))
        }
        Entry::Symlink { path, target } => {
            let at = in_real_dir(dir, &path).map_err(|e| io(&path, e))?;
            symlink(&target, &at).map_err(|e| io(&path, e))
        }
    })
    .map_err(UnpackError)
}

/// Where `path` (relative, checked) goes below `root`, after making sure every directory on
/// the way is a real one.
fn in_real_dir(root: &Path, path: &Path) -> std::io::Result<PathBuf> {
    if let Some(parent) = path.parent() {
        real_dirs(root, parent)?;
    }
    Ok(root.join(path))
}

/// Creates the directories of `path` below `root` one at a time; an existing component that is
/// anything but a real directory (a symlink above all) is an error, never followed.
fn real_dirs(root: &Path, path: &Path) -> std::io::Result<()> {
    let mut at = root.to_owned();
    for c in path.components() {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => {
                return Err(std::io::Error::other(format!(
                    "{} is not a directory (a link is never followed)",
                    at.display()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(&at)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
        assert!(unpack(b"garbage", dir.path()).unwrap_err().to_string().contains("refused"));
    }

    /// A tar.gz of raw entries, names as given (the `tar` builder refuses hostile ones).
    fn raw_archive(entries: &[(String, u8, String)]) -> Vec<u8> {
        let mut tar = Vec::new();
        for (path, kind, link) in entries {
            let mut header = tar::Header::new_gnu();
            let gnu = header.as_gnu_mut().unwrap();
            gnu.name[..path.len()].copy_from_slice(path.as_bytes());
            gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
            let data: &[u8] = if *kind == b'0' { b"archive-data" } else { b"" };
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::new(*kind));
            header.set_cksum();
            tar.extend_from_slice(header.as_bytes());
            tar.extend_from_slice(data);
            tar.resize(tar.len().div_ceil(512) * 512, 0);
        }
        tar.extend_from_slice(&[0u8; 1024]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    }

    /// Every file below `root` with its contents, links as their targets.
    fn snapshot(root: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
        let mut out = std::collections::BTreeMap::new();
        let mut stack = vec![root.to_owned()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let m = std::fs::symlink_metadata(&p).unwrap();
                let key = p.strip_prefix(root).unwrap().to_owned();
                if m.file_type().is_symlink() {
                    out.insert(
                        key,
                        std::fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes(),
                    );
                } else if m.is_dir() {
                    out.insert(key, b"<dir>".to_vec());
                    stack.push(p);
                } else {
                    out.insert(key, std::fs::read(&p).unwrap());
                }
            }
        }
        out
    }

    /// Item A4 as reported: `d/`, `d/l -> ..`, `d/l/m -> ..`, `d/l/m/victim.txt` wrote
    /// outside the build directory, one level higher per `..` link.
    #[test]
    fn the_reported_climb_writes_nothing_outside() {
        let outer = tempfile::tempdir().unwrap();
        std::fs::write(outer.path().join("victim.txt"), "original").unwrap();
        let dir = outer.path().join("a/b/build");
        std::fs::create_dir_all(&dir).unwrap();
        let s = |x: &str| x.to_owned();
        let bytes = raw_archive(&[
            (s("d/"), b'5', s("")),
            (s("d/l"), b'2', s("..")),
            (s("d/l/m"), b'2', s("..")),
            (s("d/l/m/victim.txt"), b'0', s("")),
        ]);
        assert!(unpack(&bytes, &dir).is_err());
        assert_eq!(std::fs::read_to_string(outer.path().join("victim.txt")).unwrap(), "original");
        assert!(!outer.path().join("a/victim.txt").exists());
        assert!(!outer.path().join("a/b/victim.txt").exists());
    }

    /// Entries whose paths extend earlier entries' paths (so that they often land below
    /// earlier links) by one of two names; link targets mostly climb.
    fn entries() -> impl Strategy<Value = Vec<(String, u8, String)>> {
        let name = prop::sample::select(vec!["a", "b"]);
        let step = prop::sample::select(vec!["..", "..", ".", "a", "b"]);
        let target = prop::collection::vec(step, 1..4).prop_map(|v| v.join("/"));
        let kind = prop::sample::select(vec![b'0', b'5', b'2', b'2']);
        let one = (any::<prop::sample::Index>(), name, kind, target);
        prop::collection::vec(one, 1..10).prop_map(|raw| {
            let mut out: Vec<(String, u8, String)> = Vec::new();
            for (under, name, kind, target) in raw {
                // Below the root or below any earlier entry.
                let parent = under.index(out.len() + 1);
                let path = match parent.checked_sub(1).map(|i| &out[i].0) {
                    Some(p) => format!("{}/{name}", p.trim_end_matches('/')),
                    None => name.to_owned(),
                };
                let link = if kind == b'2' { target } else { String::new() };
                out.push((path, kind, link));
            }
            out
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Random archives of files, directories and links (`..` and `.` included) never create
        /// or change anything outside the target directory, whether unpacking succeeds or not.
        #[test]
        fn random_archives_with_links_never_touch_anything_outside(
            entries in entries(),
        ) {
            let outer = tempfile::tempdir().unwrap();
            std::fs::write(outer.path().join("a"), "outside").unwrap();
            std::fs::write(outer.path().join("x/b"), "outside too").ok();
            std::fs::create_dir_all(outer.path().join("x/y")).unwrap();
            std::fs::write(outer.path().join("x/y/a"), "next door").unwrap();
            let dir = outer.path().join("x/y/build");
            std::fs::create_dir_all(&dir).unwrap();
            let before: Vec<_> = snapshot(outer.path())
                .into_iter()
                .filter(|(p, _)| !p.starts_with("x/y/build"))
                .collect();
            let _ = unpack(&raw_archive(&entries), &dir);
            let after: Vec<_> = snapshot(outer.path())
                .into_iter()
                .filter(|(p, _)| !p.starts_with("x/y/build"))
                .collect();
            prop_assert_eq!(before, after);
        }
    }
}
