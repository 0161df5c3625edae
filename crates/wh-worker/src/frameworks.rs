//! Built-in Dockerfile presets for repositories without a Dockerfile/Containerfile:
//! Next.js, Vite, Node, Go, Python and static sites, detected from the files present.
//!
//! Base images are settings ([`BaseImages`]): production uses the usual official images, the
//! tests a local busybox image. Every preset listens on `$PORT`, which the runtime sets to the
//! app's port.

use std::path::Path;

/// Base images per stack.
#[derive(Debug, Clone)]
pub struct BaseImages {
    pub node: String,
    pub go: String,
    pub go_runtime: String,
    pub python: String,
    pub static_site: String,
}

impl Default for BaseImages {
    fn default() -> Self {
        BaseImages {
            node: "docker.io/library/node:20-alpine".into(),
            go: "docker.io/library/golang:1.22-alpine".into(),
            go_runtime: "docker.io/library/alpine:3.20".into(),
            python: "docker.io/library/python:3.12-slim".into(),
            static_site: "docker.io/library/busybox:1.36".into(),
        }
    }
}

/// What was detected, and the Dockerfile to build it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preset {
    pub framework: &'static str,
    pub dockerfile: String,
}

/// `Some(name)` when the repository brings its own build file.
pub fn own_dockerfile(dir: &Path) -> Option<&'static str> {
    ["Containerfile", "Dockerfile"].into_iter().find(|f| dir.join(f).is_file())
}

fn package_json(dir: &Path) -> Option<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(dir.join("package.json")).ok()?).ok()
}

fn depends_on(pkg: &serde_json::Value, name: &str) -> bool {
    ["dependencies", "devDependencies"]
        .iter()
        .any(|k| pkg.get(*k).and_then(|d| d.get(name)).is_some())
}

/// Detects the stack of the checkout at `dir`.
pub fn detect(dir: &Path, images: &BaseImages) -> Option<Preset> {
    let preset = |framework, dockerfile: String| Some(Preset { framework, dockerfile });
    if let Some(pkg) = package_json(dir) {
        let node = &images.node;
        if depends_on(&pkg, "next") {
            return preset("nextjs", format!(
                "FROM {node}\nWORKDIR /app\nCOPY . .\nRUN npm ci || npm install\nRUN npm run build\nENV NODE_ENV=production\nCMD [\"sh\", \"-c\", \"npx next start -p ${{PORT:-3000}}\"]\n"
            ));
        }
        if depends_on(&pkg, "vite") {
            let web = &images.static_site;
            return preset("vite", format!(
                "FROM {node} AS build\nWORKDIR /app\nCOPY . .\nRUN npm ci || npm install\nRUN npm run build\n\nFROM {web}\nCOPY --from=build /app/dist /www\nCMD [\"sh\", \"-c\", \"httpd -f -p ${{PORT:-8080}} -h /www\"]\n"
            ));
        }
        return preset("node", format!(
            "FROM {node}\nWORKDIR /app\nCOPY . .\nRUN npm ci --omit=dev || npm install --omit=dev\nENV NODE_ENV=production\nCMD [\"npm\", \"start\"]\n"
        ));
    }
    if dir.join("go.mod").is_file() {
        let (go, rt) = (&images.go, &images.go_runtime);
        return preset("go", format!(
            "FROM {go} AS build\nWORKDIR /src\nCOPY . .\nRUN CGO_ENABLED=0 go build -o /app .\n\nFROM {rt}\nCOPY --from=build /app /app\nCMD [\"/app\"]\n"
        ));
    }
    if dir.join("requirements.txt").is_file() || dir.join("pyproject.toml").is_file() {
        let py = &images.python;
        let install = if dir.join("requirements.txt").is_file() {
            "pip install --no-cache-dir -r requirements.txt"
        } else {
            "pip install --no-cache-dir ."
        };
        return preset("python", format!(
            "FROM {py}\nWORKDIR /app\nCOPY . .\nRUN {install}\nCMD [\"sh\", \"-c\", \"if [ -f main.py ]; then exec python main.py; else exec python app.py; fi\"]\n"
        ));
    }
    if dir.join("index.html").is_file() {
        let web = &images.static_site;
        return preset("static", format!("FROM {web}\nCOPY . /www\nCMD [\"sh\", \"-c\", \"httpd -f -p ${{PORT:-8080}} -h /www\"]\n"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        dir
    }

    #[test]
    fn detects_each_stack_and_prefers_the_repos_own_file() {
        let images = BaseImages::default();
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("package.json", r#"{"dependencies": {"next": "14"}}"#)], "nextjs"),
            (&[("package.json", r#"{"devDependencies": {"vite": "5"}}"#)], "vite"),
            (&[("package.json", r#"{"name": "api"}"#)], "node"),
            (&[("go.mod", "module x")], "go"),
            (&[("requirements.txt", "flask")], "python"),
            (&[("pyproject.toml", "[project]")], "python"),
            (&[("index.html", "<h1>hi</h1>")], "static"),
        ];
        for (files, expected) in cases {
            let dir = repo(files);
            assert_eq!(
                detect(dir.path(), &images).map(|p| p.framework),
                Some(*expected),
                "{files:?}"
            );
        }
        assert_eq!(detect(repo(&[("README.md", "x")]).path(), &images), None);
        assert_eq!(
            own_dockerfile(repo(&[("Containerfile", "FROM x"), ("index.html", "")]).path()),
            Some("Containerfile")
        );
    }

    #[test]
    fn base_images_are_settings() {
        let images =
            BaseImages { static_site: "localhost/test-base:1".into(), ..BaseImages::default() };
        let p = detect(repo(&[("index.html", "x")]).path(), &images).unwrap();
        assert!(p.dockerfile.starts_with("FROM localhost/test-base:1\n"), "{}", p.dockerfile);
        assert!(p.dockerfile.contains("${PORT:-8080}"));
    }
}
