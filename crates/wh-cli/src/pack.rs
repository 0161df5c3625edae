//! Packs a source directory into the tar.gz an upload deploy carries. Version-control and
//! build-output directories (`.git`, `node_modules`, `target`, `.wh-dev`) stay out; the result is
//! checked against the same limits the control plane applies, so an oversized source fails here.

use std::path::Path;

use wh_wsproto::archive::{self, Limits};

use crate::error::CliError;

const SKIPPED: &[&str] = &[".git", "node_modules", "target", ".wh-dev"];

/// The directory as a checked tar.gz, and how many files it holds.
pub fn pack_dir(dir: &Path) -> Result<(Vec<u8>, usize), CliError> {
    if !dir.is_dir() {
        return Err(CliError::Usage(format!("{} is not a directory", dir.display())));
    }
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(gz);
    builder.follow_symlinks(false);
    add(&mut builder, dir, Path::new(""))?;
    let bytes = builder
        .into_inner()
        .and_then(|gz| gz.finish())
        .map_err(|e| CliError::Local(format!("packing {}: {e}", dir.display())))?;
    let summary = archive::check(&bytes, &Limits::default())
        .map_err(|e| CliError::Usage(format!("cannot upload {}: {e}", dir.display())))?;
    Ok((bytes, summary.files))
}

fn add(
    builder: &mut tar::Builder<flate2::write::GzEncoder<Vec<u8>>>,
    root: &Path,
    rel: &Path,
) -> Result<(), CliError> {
    let here = root.join(rel);
    let mut entries: Vec<_> = std::fs::read_dir(&here)
        .map_err(|e| CliError::Local(format!("{}: {e}", here.display())))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if SKIPPED.iter().any(|s| name == *s) {
            continue;
        }
        let path = rel.join(&name);
        let kind = entry.file_type()?;
        if kind.is_dir() {
            add(builder, root, &path)?;
        } else if kind.is_file() || kind.is_symlink() {
            builder
                .append_path_with_name(root.join(&path), &path)
                .map_err(|e| CliError::Local(format!("{}: {e}", path.display())))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_sources_without_vcs_or_dependencies() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<h1>hi</h1>").unwrap();
        std::fs::create_dir_all(dir.path().join(".git/objects")).unwrap();
        std::fs::write(dir.path().join(".git/HEAD"), "ref").unwrap();
        std::fs::create_dir_all(dir.path().join("node_modules/x")).unwrap();
        std::fs::write(dir.path().join("node_modules/x/i.js"), "x").unwrap();
        std::fs::create_dir_all(dir.path().join("css")).unwrap();
        std::fs::write(dir.path().join("css/site.css"), "body{}").unwrap();
        let (bytes, files) = pack_dir(dir.path()).unwrap();
        assert_eq!(files, 2);
        let mut names = Vec::new();
        archive::walk(&bytes, &Limits::default(), |e, _| {
            if let archive::Entry::File { path, .. } = e {
                names.push(path.display().to_string());
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(names, ["css/site.css", "index.html"]);
        assert!(matches!(pack_dir(&dir.path().join("nope")), Err(CliError::Usage(_))));
    }
}
