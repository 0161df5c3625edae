//! The build context: the checkout, or the app's root directory inside it (a monorepo's
//! `services/web`). The name comes from the tenant and the tree from the tenant's repository,
//! so the directory must resolve, through any symbolic link, to a directory inside the
//! checkout: never a path out of it.

use std::path::{Component, Path, PathBuf};

/// Why a root directory cannot be the build context.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    #[error("the root directory {0:?} is not a relative path of plain names")]
    NotRelative(String),
    #[error("the root directory {0:?} is not in the repository")]
    Missing(String),
    #[error("the root directory {0:?} leads out of the repository")]
    Escapes(String),
}

/// `checkout` joined with `root_dir` (empty: the checkout itself), checked.
pub fn resolve(checkout: &Path, root_dir: &str) -> Result<PathBuf, ContextError> {
    if root_dir.is_empty() {
        return Ok(checkout.to_owned());
    }
    let rel = Path::new(root_dir);
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(ContextError::NotRelative(root_dir.to_owned()));
    }
    let base = checkout.canonicalize().map_err(|_| ContextError::Missing(root_dir.to_owned()))?;
    let dir =
        base.join(rel).canonicalize().map_err(|_| ContextError::Missing(root_dir.to_owned()))?;
    if !dir.starts_with(&base) {
        return Err(ContextError::Escapes(root_dir.to_owned()));
    }
    if !dir.is_dir() {
        return Err(ContextError::Missing(root_dir.to_owned()));
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_directory_stays_inside_the_checkout() {
        let tmp = tempfile::tempdir().unwrap();
        let checkout = tmp.path().join("checkout");
        std::fs::create_dir_all(checkout.join("services/web")).unwrap();
        std::fs::write(checkout.join("README"), "x").unwrap();
        std::fs::create_dir_all(tmp.path().join("outside")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("outside"), checkout.join("link-out")).unwrap();
        std::os::unix::fs::symlink("services/web", checkout.join("link-in")).unwrap();

        assert_eq!(resolve(&checkout, "").unwrap(), checkout);
        let web = resolve(&checkout, "services/web").unwrap();
        assert!(web.ends_with("checkout/services/web"), "{web:?}");
        assert!(resolve(&checkout, "link-in").unwrap().ends_with("services/web"));
        for (bad, want) in [
            ("../outside", "not a relative"),
            ("/etc", "not a relative"),
            ("services/../..", "not a relative"),
            ("./services", "not a relative"),
            ("link-out", "leads out"),
            ("nope", "not in the repository"),
            ("README", "not in the repository"),
        ] {
            let err = resolve(&checkout, bad).unwrap_err().to_string();
            assert!(err.contains(want), "{bad}: {err}");
        }
    }
}
