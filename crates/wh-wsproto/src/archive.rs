//! The source archive of an upload deploy (`wh deploy --path`): a gzip-compressed tar whose
//! entries are regular files, directories and relative symlinks that stay inside the tree.
//!
//! The control plane [`check`]s an upload before storing it and the worker checks it again
//! before unpacking, with the same limits on compressed size, unpacked size and entry count
//! (a gzip bomb stops at the limit, not at the end of the disk). Nothing here touches the
//! filesystem.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Size limits of an archive.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_compressed: usize,
    pub max_unpacked: u64,
    pub max_entries: usize,
}

impl Default for Limits {
    /// 50 MiB compressed, 500 MiB unpacked, 100,000 entries.
    fn default() -> Self {
        Limits { max_compressed: 50 << 20, max_unpacked: 500 << 20, max_entries: 100_000 }
    }
}

/// Why an archive is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArchiveError {
    #[error("the archive is {0} bytes; the limit is {1}")]
    TooLarge(usize, usize),
    #[error("the archive unpacks to more than {0} bytes")]
    UnpacksTooLarge(u64),
    #[error("the archive has more than {0} entries")]
    TooManyEntries(usize),
    #[error("not a gzip-compressed tar archive: {0}")]
    Malformed(String),
    #[error("entry `{0}` leaves the source directory")]
    UnsafePath(String),
    #[error("entry `{0}` is a {1}; only files, directories and relative symlinks are allowed")]
    UnsupportedEntry(String, &'static str),
    #[error("the archive is empty")]
    Empty,
}

/// One entry, as the worker writes it.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    Dir(PathBuf),
    File { path: PathBuf, executable: bool, data: Vec<u8> },
    Symlink { path: PathBuf, target: PathBuf },
}

/// What [`check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub files: usize,
    pub unpacked_bytes: u64,
}

/// A relative path made of normal components only (`./` prefixes dropped); `None` otherwise.
pub fn safe_path(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// Validates an archive without keeping its contents.
pub fn check(bytes: &[u8], limits: &Limits) -> Result<Summary, ArchiveError> {
    let mut summary = Summary { files: 0, unpacked_bytes: 0 };
    walk(bytes, limits, |e| {
        if let Entry::File { data, .. } = &e {
            summary.files += 1;
            summary.unpacked_bytes += data.len() as u64;
        }
        Ok(())
    })?;
    if summary.files == 0 {
        return Err(ArchiveError::Empty);
    }
    Ok(summary)
}

/// Calls `each` for every entry, in order, enforcing `limits` and path safety throughout.
pub fn walk(
    bytes: &[u8],
    limits: &Limits,
    mut each: impl FnMut(Entry) -> Result<(), ArchiveError>,
) -> Result<(), ArchiveError> {
    if bytes.len() > limits.max_compressed {
        return Err(ArchiveError::TooLarge(bytes.len(), limits.max_compressed));
    }
    let malformed = |e: std::io::Error| ArchiveError::Malformed(e.to_string());
    let gz = flate2::read::GzDecoder::new(bytes);
    // One byte over the limit tells "too large" from "exactly at the limit".
    let mut archive = tar::Archive::new(gz.take(limits.max_unpacked.saturating_add(1 << 20)));
    let mut total = 0u64;
    let mut count = 0usize;
    for entry in archive.entries().map_err(malformed)? {
        let mut entry = entry.map_err(malformed)?;
        count += 1;
        if count > limits.max_entries {
            return Err(ArchiveError::TooManyEntries(limits.max_entries));
        }
        let raw = entry.path().map_err(malformed)?.into_owned();
        let name = raw.display().to_string();
        let path = safe_path(&raw).ok_or_else(|| ArchiveError::UnsafePath(name.clone()))?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            if !path.as_os_str().is_empty() {
                each(Entry::Dir(path))?;
            }
        } else if kind.is_file() {
            let size = entry.header().size().map_err(malformed)?;
            total = total.saturating_add(size);
            if total > limits.max_unpacked {
                return Err(ArchiveError::UnpacksTooLarge(limits.max_unpacked));
            }
            let mut data = Vec::with_capacity(size.min(1 << 20) as usize);
            entry.read_to_end(&mut data).map_err(malformed)?;
            let executable = entry.header().mode().is_ok_and(|m| m & 0o111 != 0);
            each(Entry::File { path, executable, data })?;
        } else if kind.is_symlink() {
            let target =
                entry.link_name().map_err(malformed)?.map(|t| t.into_owned()).unwrap_or_default();
            // Relative and inside the tree once resolved from the link's own directory.
            let parent = path.parent().unwrap_or(Path::new("")).join(&target);
            if target.is_absolute() || !stays_inside(&parent) {
                return Err(ArchiveError::UnsafePath(format!("{name} -> {}", target.display())));
            }
            each(Entry::Symlink { path, target })?;
        } else if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        } else {
            let what = if kind.is_hard_link() { "hard link" } else { "special file" };
            return Err(ArchiveError::UnsupportedEntry(name, what));
        }
    }
    Ok(())
}

/// Whether `p` (relative, may contain `..`) never climbs above its starting directory.
fn stays_inside(p: &Path) -> bool {
    let mut depth = 0i32;
    for c in p.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

/// Packs `(path, bytes, executable)` files into a tar.gz (tests and the CLI).
pub fn pack<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a [u8], bool)>,
) -> std::io::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(gz);
    for (path, data, executable) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(if executable { 0o755 } else { 0o644 });
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, data)?;
    }
    builder.into_inner()?.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_tar(path: &[u8], kind: tar::EntryType, link: Option<&str>, data: &[u8]) -> Vec<u8> {
        // Build the header by hand so unsafe names get in (the builder refuses them).
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..path.len()].copy_from_slice(path);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(kind);
        if let Some(l) = link {
            header.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        header.set_cksum();
        let mut tar = header.as_bytes().to_vec();
        tar.extend_from_slice(data);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
        tar.extend_from_slice(&[0u8; 1024]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn a_packed_tree_checks_and_walks_back_the_same() {
        let bytes =
            pack([("index.html", &b"<h1>hi</h1>"[..], false), ("bin/run", b"#!/bin/sh", true)])
                .unwrap();
        let summary = check(&bytes, &Limits::default()).unwrap();
        assert_eq!(summary, Summary { files: 2, unpacked_bytes: 20 });
        let mut seen = Vec::new();
        walk(&bytes, &Limits::default(), |e| {
            seen.push(e);
            Ok(())
        })
        .unwrap();
        assert!(seen.contains(&Entry::File {
            path: "bin/run".into(),
            executable: true,
            data: b"#!/bin/sh".to_vec()
        }));
    }

    #[test]
    fn escapes_links_bombs_and_garbage_are_refused() {
        let l = Limits::default();
        let up = raw_tar(b"../evil", tar::EntryType::Regular, None, b"x");
        assert!(matches!(check(&up, &l), Err(ArchiveError::UnsafePath(_))));
        let abs = raw_tar(b"/etc/passwd", tar::EntryType::Regular, None, b"x");
        assert!(matches!(check(&abs, &l), Err(ArchiveError::UnsafePath(_))));
        let link = raw_tar(b"a/link", tar::EntryType::Symlink, Some("../../etc"), b"");
        assert!(matches!(check(&link, &l), Err(ArchiveError::UnsafePath(_))));
        let abs_link = raw_tar(b"link", tar::EntryType::Symlink, Some("/etc"), b"");
        assert!(matches!(check(&abs_link, &l), Err(ArchiveError::UnsafePath(_))));
        let ok_link = raw_tar(b"a/link", tar::EntryType::Symlink, Some("../b"), b"");
        assert_eq!(walk(&ok_link, &l, |_| Ok(())), Ok(()));
        let hard = raw_tar(b"h", tar::EntryType::Link, Some("x"), b"");
        assert!(matches!(check(&hard, &l), Err(ArchiveError::UnsupportedEntry(_, "hard link"))));
        let dev = raw_tar(b"d", tar::EntryType::Char, None, b"");
        assert!(matches!(check(&dev, &l), Err(ArchiveError::UnsupportedEntry(..))));
        // 4 MiB of zeros compresses to a few KiB: the unpacked limit stops it.
        let zeros = vec![0u8; 4 << 20];
        let bomb = pack([("zeros", &zeros[..], false)]).unwrap();
        let small = Limits { max_unpacked: 1 << 20, ..l };
        assert_eq!(check(&bomb, &small), Err(ArchiveError::UnpacksTooLarge(1 << 20)));
        let tiny = Limits { max_compressed: 10, ..l };
        assert!(matches!(check(&bomb, &tiny), Err(ArchiveError::TooLarge(_, 10))));
        assert!(matches!(check(b"not gzip at all", &l), Err(ArchiveError::Malformed(_))));
        let empty = pack([]).unwrap();
        assert_eq!(check(&empty, &l), Err(ArchiveError::Empty));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096)) {
            let _ = check(&bytes, &Limits::default());
        }

        #[test]
        fn arbitrary_bytes_after_a_gzip_header_never_panic(tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096)) {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, &tail).unwrap();
            let _ = check(&gz.finish().unwrap(), &Limits::default());
        }
    }
}
