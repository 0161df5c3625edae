//! The source archive of an upload deploy (`wh deploy --path`): a gzip-compressed tar whose
//! entries are regular files, directories and relative symlinks that stay inside the tree.
//!
//! The control plane [`check`]s an upload before storing it and the worker checks it again
//! while unpacking ([`walk`]), with the same limits on compressed size, unpacked size, entry
//! count, name lengths and header sizes (a gzip bomb stops at the limit, not at the end of the
//! disk). File contents are streamed, never held: checking any archive costs a few hundred KiB
//! plus the names it holds (bounded by [`Limits::max_names`]).
//!
//! Links are judged against the tree the archive builds, entry by entry, not by their text: no
//! entry may sit below a symlink (or a file) an earlier entry made, no entry may change the kind
//! of an earlier one, and once the whole tree is known every symlink must resolve inside it,
//! through any chain of other links. Nothing here touches the filesystem.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Size limits of an archive.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_compressed: usize,
    pub max_unpacked: u64,
    pub max_entries: usize,
    /// The longest path or link target, in bytes.
    pub max_path: usize,
    /// All paths and link targets together, in bytes (what checking holds in memory).
    pub max_names: usize,
    /// The largest GNU long-name or pax header entry.
    pub max_header: u64,
}

impl Default for Limits {
    /// 50 MiB compressed, 500 MiB unpacked, 100,000 entries, 4 KiB a path, 8 MiB of names,
    /// 64 KiB a header entry.
    fn default() -> Self {
        Limits {
            max_compressed: 50 << 20,
            max_unpacked: 500 << 20,
            max_entries: 100_000,
            max_path: 4096,
            max_names: 8 << 20,
            max_header: 64 << 10,
        }
    }
}

/// Why an archive is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArchiveError {
    #[error("the archive is {0} bytes; the limit is {1}")]
    TooLarge(usize, usize),
    #[error("the archive unpacks to more than {0} bytes")]
    UnpacksTooLarge(u64),
    #[error("the archive has more than {0} entries")]
    TooManyEntries(usize),
    #[error("a name in the archive is longer than {0} bytes, or all names together are")]
    NamesTooLong(usize),
    #[error("not a gzip-compressed tar archive: {0}")]
    Malformed(String),
    #[error("entry `{0}` leaves the source directory")]
    UnsafePath(String),
    #[error("entry `{0}` is below `{1}`, which is not a directory")]
    NotADirectory(String, String),
    #[error("entry `{0}` changes the kind of an earlier entry of that name")]
    KindChanged(String),
    #[error("entry `{0}` is a {1}; only files, directories and relative symlinks are allowed")]
    UnsupportedEntry(String, &'static str),
    #[error("the archive is empty")]
    Empty,
}

/// One entry, as the worker writes it. A file's contents come with it as a reader.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    Dir(PathBuf),
    File { path: PathBuf, executable: bool, size: u64 },
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
    walk(bytes, limits, |e, data| {
        if let Entry::File { .. } = &e {
            summary.files += 1;
            summary.unpacked_bytes +=
                std::io::copy(data, &mut std::io::sink()).map_err(malformed)?;
        }
        Ok(())
    })?;
    if summary.files == 0 {
        return Err(ArchiveError::Empty);
    }
    Ok(summary)
}

fn malformed(e: std::io::Error) -> ArchiveError {
    ArchiveError::Malformed(e.to_string())
}

/// The decompressed tar stream, cut one MiB past the unpacked limit (headers take room too).
fn tar_stream<'a>(bytes: &'a [u8], limits: &Limits) -> tar::Archive<impl Read + 'a> {
    let gz = flate2::read::GzDecoder::new(bytes);
    tar::Archive::new(gz.take(limits.max_unpacked.saturating_add(1 << 20)))
}

/// First pass, over raw entries: the tar reader holds GNU long names and pax headers in memory
/// whole and expands sparse maps, so those are bounded before it sees them.
fn check_headers(bytes: &[u8], limits: &Limits) -> Result<(), ArchiveError> {
    let mut archive = tar_stream(bytes, limits);
    let (mut count, mut total) = (0usize, 0u64);
    for entry in archive.entries().map_err(malformed)?.raw(true) {
        let entry = entry.map_err(malformed)?;
        count += 1;
        // Each entry may bring a long name, a long link and a pax header of its own.
        if count > limits.max_entries.saturating_mul(4) {
            return Err(ArchiveError::TooManyEntries(limits.max_entries));
        }
        let kind = entry.header().entry_type();
        if kind.is_gnu_sparse() {
            return Err(ArchiveError::UnsupportedEntry(
                String::from_utf8_lossy(&entry.path_bytes()).into_owned(),
                "sparse file",
            ));
        }
        let size = entry.header().size().map_err(malformed)?;
        if kind.is_file() {
            total = total.saturating_add(size);
            if total > limits.max_unpacked {
                return Err(ArchiveError::UnpacksTooLarge(limits.max_unpacked));
            }
        }
        let header = kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions();
        if header && size > limits.max_header {
            return Err(ArchiveError::NamesTooLong(limits.max_header as usize));
        }
    }
    Ok(())
}

/// What an earlier entry made at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Made {
    Dir,
    File,
    Link(PathBuf),
}

/// The tree the archive has built so far.
#[derive(Default)]
struct Tree {
    made: HashMap<PathBuf, Made>,
    names: usize,
}

impl Tree {
    /// Records `made` at `path`, with its parents as directories; refuses a path below a file or
    /// a symlink and a change of kind.
    fn add(&mut self, path: &Path, made: Made, limits: &Limits) -> Result<(), ArchiveError> {
        let name = || path.display().to_string();
        let mut parent = PathBuf::new();
        let mut parts = path.components().peekable();
        while let Some(c) = parts.next() {
            if parts.peek().is_none() {
                break;
            }
            parent.push(c);
            match self.made.get(&parent) {
                Some(Made::Dir) => {}
                Some(_) => {
                    return Err(ArchiveError::NotADirectory(name(), parent.display().to_string()))
                }
                None => {
                    self.count(&parent, None, limits)?;
                    self.made.insert(parent.clone(), Made::Dir);
                }
            }
        }
        match self.made.get(path) {
            None => {
                let target = match &made {
                    Made::Link(t) => Some(t.as_path()),
                    _ => None,
                };
                self.count(path, target, limits)?;
                self.made.insert(path.to_owned(), made);
                Ok(())
            }
            // A directory or a file listed again is fine, and so is the same link again.
            Some(old) if *old == made => Ok(()),
            Some(_) => Err(ArchiveError::KindChanged(name())),
        }
    }

    fn count(
        &mut self,
        path: &Path,
        target: Option<&Path>,
        l: &Limits,
    ) -> Result<(), ArchiveError> {
        let len = path.as_os_str().len() + target.map_or(0, |t| t.as_os_str().len());
        self.names += len;
        if self.names > l.max_names {
            return Err(ArchiveError::NamesTooLong(l.max_names));
        }
        Ok(())
    }

    /// Whether the link at `at` (to `target`) resolves inside the tree, following the links the
    /// tree holds (at most 40 of them, as the kernel does).
    fn resolves_inside(&self, at: &Path, target: &Path) -> bool {
        let mut resolved: Vec<OsString> = Vec::new();
        if let Some(parent) = at.parent() {
            resolved.extend(parent.components().map(|c| c.as_os_str().to_owned()));
        }
        let mut pending: VecDeque<OsString> = VecDeque::new();
        let push_front = |pending: &mut VecDeque<OsString>, t: &Path| -> bool {
            if t.is_absolute() {
                return false;
            }
            for c in t.components().rev() {
                match c {
                    Component::Normal(n) => pending.push_front(n.to_owned()),
                    Component::ParentDir => pending.push_front("..".into()),
                    Component::CurDir => {}
                    _ => return false,
                }
            }
            true
        };
        if !push_front(&mut pending, target) {
            return false;
        }
        let mut hops = 0;
        while let Some(part) = pending.pop_front() {
            if part == ".." {
                if resolved.pop().is_none() {
                    return false;
                }
                continue;
            }
            resolved.push(part);
            let here: PathBuf = resolved.iter().collect();
            if let Some(Made::Link(next)) = self.made.get(&here) {
                hops += 1;
                if hops > 40 {
                    return false;
                }
                resolved.pop();
                if !push_front(&mut pending, next) {
                    return false;
                }
            }
        }
        true
    }
}

/// Calls `each` for every entry, in order, with a reader of its contents (empty for
/// directories and links), enforcing `limits` and path safety throughout. A file's contents
/// that `each` does not read are skipped. After the last entry every symlink is resolved
/// against the whole tree; one that leaves it fails the walk (the worker then discards what it
/// unpacked).
pub fn walk(
    bytes: &[u8],
    limits: &Limits,
    mut each: impl FnMut(Entry, &mut dyn Read) -> Result<(), ArchiveError>,
) -> Result<(), ArchiveError> {
    if bytes.len() > limits.max_compressed {
        return Err(ArchiveError::TooLarge(bytes.len(), limits.max_compressed));
    }
    check_headers(bytes, limits)?;
    let mut archive = tar_stream(bytes, limits);
    let mut tree = Tree::default();
    let mut total = 0u64;
    let mut count = 0usize;
    for entry in archive.entries().map_err(malformed)? {
        let mut entry = entry.map_err(malformed)?;
        count += 1;
        if count > limits.max_entries {
            return Err(ArchiveError::TooManyEntries(limits.max_entries));
        }
        let raw = entry.path().map_err(malformed)?.into_owned();
        if raw.as_os_str().len() > limits.max_path {
            return Err(ArchiveError::NamesTooLong(limits.max_path));
        }
        let name = raw.display().to_string();
        let path = safe_path(&raw).ok_or_else(|| ArchiveError::UnsafePath(name.clone()))?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            if !path.as_os_str().is_empty() {
                tree.add(&path, Made::Dir, limits)?;
                each(Entry::Dir(path), &mut std::io::empty())?;
            }
        } else if kind.is_file() {
            let size = entry.header().size().map_err(malformed)?;
            total = total.saturating_add(size);
            if total > limits.max_unpacked {
                return Err(ArchiveError::UnpacksTooLarge(limits.max_unpacked));
            }
            if path.as_os_str().is_empty() {
                return Err(ArchiveError::UnsafePath(name));
            }
            tree.add(&path, Made::File, limits)?;
            let executable = entry.header().mode().is_ok_and(|m| m & 0o111 != 0);
            each(Entry::File { path, executable, size }, &mut entry)?;
        } else if kind.is_symlink() {
            let target =
                entry.link_name().map_err(malformed)?.map(|t| t.into_owned()).unwrap_or_default();
            if target.as_os_str().len() > limits.max_path {
                return Err(ArchiveError::NamesTooLong(limits.max_path));
            }
            // Relative and inside the tree as written; through other links, checked at the end.
            let parent = path.parent().unwrap_or(Path::new("")).join(&target);
            if path.as_os_str().is_empty()
                || target.as_os_str().is_empty()
                || target.is_absolute()
                || !stays_inside(&parent)
            {
                return Err(ArchiveError::UnsafePath(format!("{name} -> {}", target.display())));
            }
            tree.add(&path, Made::Link(target.clone()), limits)?;
            each(Entry::Symlink { path, target }, &mut std::io::empty())?;
        } else if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        } else {
            let what = if kind.is_hard_link() { "hard link" } else { "special file" };
            return Err(ArchiveError::UnsupportedEntry(name, what));
        }
    }
    for (at, made) in &tree.made {
        if let Made::Link(target) = made {
            if !tree.resolves_inside(at, target) {
                return Err(ArchiveError::UnsafePath(format!(
                    "{} -> {}",
                    at.display(),
                    target.display()
                )));
            }
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
        walk(&bytes, &Limits::default(), |e, data| {
            let mut contents = Vec::new();
            data.read_to_end(&mut contents).unwrap();
            seen.push((e, contents));
            Ok(())
        })
        .unwrap();
        assert!(seen.contains(&(
            Entry::File { path: "bin/run".into(), executable: true, size: 9 },
            b"#!/bin/sh".to_vec()
        )));
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
        assert_eq!(walk(&ok_link, &l, |_, _| Ok(())), Ok(()));
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

    /// A tar.gz of raw (name, kind, link, data) entries, names as given.
    fn raw_archive(entries: &[(&str, tar::EntryType, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut tar = Vec::new();
        for (path, kind, link, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(*kind);
            if let Some(l) = link {
                header.as_gnu_mut().unwrap().linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
            header.set_cksum();
            tar.extend_from_slice(header.as_bytes());
            tar.extend_from_slice(data);
            tar.resize(tar.len().div_ceil(512) * 512, 0);
        }
        tar.extend_from_slice(&[0u8; 1024]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        gz.finish().unwrap()
    }

    use tar::EntryType::{Directory as D, Regular as F, Symlink as L};

    #[test]
    fn links_placed_earlier_are_judged_by_where_they_lead() {
        let l = Limits::default();
        // The reported climb: each `..` link is fine as text, but `d/l/m` sits below a link.
        let climb = raw_archive(&[
            ("d/", D, None, b""),
            ("d/l", L, Some(".."), b""),
            ("d/l/m", L, Some(".."), b""),
            ("d/l/m/victim.txt", F, None, b"owned"),
        ]);
        assert!(
            matches!(check(&climb, &l), Err(ArchiveError::NotADirectory(..))),
            "{:?}",
            check(&climb, &l)
        );
        // A link made later turns an earlier, textually fine link into an escape.
        let later = raw_archive(&[
            ("a", L, Some("b/.."), b""),
            ("b", L, Some("."), b""),
            ("f", F, None, b"x"),
        ]);
        assert!(matches!(check(&later, &l), Err(ArchiveError::UnsafePath(_))));
        // A chain of links that stays inside is fine; a loop is refused.
        let chain = raw_archive(&[
            ("x/y/", D, None, b""),
            ("a", L, Some("x"), b""),
            ("b", L, Some("a/y/.."), b""),
            ("f", F, None, b"x"),
        ]);
        assert_eq!(check(&chain, &l).map(|s| s.files), Ok(1));
        let cycle = raw_archive(&[
            ("a", L, Some("b"), b""),
            ("b", L, Some("a"), b""),
            ("f", F, None, b"x"),
        ]);
        assert!(matches!(check(&cycle, &l), Err(ArchiveError::UnsafePath(_))));
        // Changing an earlier entry's kind (a link where a directory was, or back) is refused.
        for entries in [
            &[("d/", D, None, &b""[..]), ("d", L, Some("."), b"")][..],
            &[("d", L, Some("."), &b""[..]), ("d/", D, None, b""), ("d/f", F, None, b"x")][..],
            &[("f", F, None, &b"x"[..]), ("f", L, Some("."), b"")][..],
        ] {
            let bytes = raw_archive(entries);
            assert!(
                matches!(
                    check(&bytes, &l),
                    Err(ArchiveError::KindChanged(_) | ArchiveError::NotADirectory(..))
                ),
                "{entries:?}"
            );
        }
        // Below a file is refused too.
        let under_file = raw_archive(&[("f", F, None, b"x"), ("f/g", F, None, b"y")]);
        assert!(matches!(check(&under_file, &l), Err(ArchiveError::NotADirectory(..))));
    }

    #[test]
    fn names_headers_and_sparse_files_are_bounded_before_anything_holds_them() {
        let l = Limits::default();
        // A GNU long name of 1 MiB: refused from its header, never read into memory.
        let mut tar = Vec::new();
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
        header.set_entry_type(tar::EntryType::GNULongName);
        header.set_size(1 << 20);
        header.set_cksum();
        tar.extend_from_slice(header.as_bytes());
        tar.resize(tar.len() + (1 << 20), b'a');
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        let long = gz.finish().unwrap();
        assert_eq!(check(&long, &l), Err(ArchiveError::NamesTooLong(64 << 10)));
        let sparse = raw_archive(&[("s", tar::EntryType::GNUSparse, None, b"")]);
        assert!(
            matches!(check(&sparse, &l), Err(ArchiveError::UnsupportedEntry(_, "sparse file"))),
            "{:?}",
            check(&sparse, &l)
        );
        let small = Limits { max_names: 50, ..l };
        let many =
            pack([("a".repeat(30).as_str(), &b"x"[..], false), (&"b".repeat(30), b"y", false)])
                .unwrap();
        assert_eq!(check(&many, &small), Err(ArchiveError::NamesTooLong(50)));
        let short = Limits { max_path: 10, ..l };
        assert_eq!(check(&many, &short), Err(ArchiveError::NamesTooLong(10)));
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
