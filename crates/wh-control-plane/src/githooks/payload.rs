//! What a verified delivery says, read into one typed form whatever the provider: a ping, the
//! pushes it reports (a branch or tag now at a commit, with that commit's message and author),
//! or something ignored with the reason. Bodies are hostile even once verified (the secret may
//! have leaked): only the fields used are read, commit ids must be hex, texts are bounded.

use serde::Deserialize;

use super::Provider;

/// The header naming a delivery's event.
pub fn event_header(provider: Provider) -> &'static str {
    match provider {
        Provider::Github => "x-github-event",
        Provider::Gitlab => "x-gitlab-event",
        Provider::Bitbucket => "x-event-key",
        Provider::Gitea => "x-gitea-event",
        Provider::Forgejo => "x-forgejo-event",
    }
}

/// The header carrying a delivery's unique id (the same on a provider's redelivery).
pub fn delivery_header(provider: Provider) -> &'static str {
    match provider {
        Provider::Github => "x-github-delivery",
        Provider::Gitlab => "x-gitlab-event-uuid",
        Provider::Bitbucket => "x-request-uuid",
        Provider::Gitea => "x-gitea-delivery",
        Provider::Forgejo => "x-forgejo-delivery",
    }
}

/// A branch or a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    Branch,
    Tag,
}

/// One ref moved to a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub kind: RefKind,
    /// The branch or tag name (`main`, `v1.2`), without `refs/heads/`.
    pub name: String,
    /// The commit id (hex).
    pub commit: String,
    /// The commit message's first line (at most [`MAX_TEXT`] characters).
    pub message: String,
    /// `Name <email>` (at most [`MAX_TEXT`] characters).
    pub author: String,
    /// The paths the pushed commits touched, when the delivery lists them all (Bitbucket's
    /// never does; a truncated list is not all).
    pub changed: Option<Vec<String>>,
}

/// The most changed paths kept; a push touching more is taken as touching everything.
pub const MAX_CHANGED: usize = 2000;

/// The files `commits` added, modified or removed, unless there are too many.
fn changed_paths(commits: &[GithubCommit]) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for c in commits {
        for p in c.added.iter().chain(&c.modified).chain(&c.removed) {
            if out.len() == MAX_CHANGED {
                return None;
            }
            out.push(p.chars().take(1024).collect());
        }
    }
    Some(out)
}

/// What happened to a pull (merge) request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullAction {
    /// Opened, reopened, or new commits pushed to it: its head deploys.
    Updated,
    /// Closed or merged: its preview goes.
    Closed,
}

/// A pull (merge) request's event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// Its number (GitLab's `iid`).
    pub number: u32,
    pub action: PullAction,
    /// The head commit (hex).
    pub commit: String,
    /// The branch it comes from and the one it goes into.
    pub head_branch: String,
    pub base_branch: String,
    /// Its title (at most [`MAX_TEXT`] characters).
    pub title: String,
}

/// What a delivery is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The provider checking the hook (GitHub's `ping`).
    Ping,
    /// Refs that moved (a deleted ref is not among them).
    Pushes(Vec<Push>),
    /// A pull or merge request opened, updated or closed.
    PullRequest(PullRequest),
    /// Anything else, with what it was.
    Ignored(String),
}

/// Why a delivery's body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    #[error("the body is not the expected JSON: {0}")]
    Json(String),
    #[error("{0}")]
    Invalid(&'static str),
}

/// The longest message or author kept.
pub const MAX_TEXT: usize = 200;

/// Reads a delivery of `provider` whose event header said `event`.
pub fn parse(provider: Provider, event: &str, body: &[u8]) -> Result<Delivery, PayloadError> {
    let json = |e: serde_json::Error| PayloadError::Json(e.to_string());
    match (provider, event) {
        (Provider::Github, "ping") => Ok(Delivery::Ping),
        (Provider::Github | Provider::Gitea | Provider::Forgejo, "push") => {
            let p: GithubPush = serde_json::from_slice(body).map_err(json)?;
            Ok(Delivery::Pushes(github_like(p)?.into_iter().collect()))
        }
        (Provider::Gitlab, "Push Hook" | "Tag Push Hook") => {
            let p: GitlabPush = serde_json::from_slice(body).map_err(json)?;
            Ok(Delivery::Pushes(gitlab(p)?.into_iter().collect()))
        }
        (Provider::Bitbucket, "repo:push") => {
            let p: BitbucketPush = serde_json::from_slice(body).map_err(json)?;
            bitbucket(p).map(Delivery::Pushes)
        }
        (Provider::Bitbucket, "diagnostics:ping") => Ok(Delivery::Ping),
        (Provider::Github | Provider::Gitea | Provider::Forgejo, "pull_request") => {
            let p: GithubPull = serde_json::from_slice(body).map_err(json)?;
            github_pull(p)
        }
        (Provider::Gitlab, "Merge Request Hook") => {
            let p: GitlabMerge = serde_json::from_slice(body).map_err(json)?;
            gitlab_merge(p)
        }
        (
            Provider::Bitbucket,
            "pullrequest:created"
            | "pullrequest:updated"
            | "pullrequest:fulfilled"
            | "pullrequest:rejected",
        ) => {
            let p: BitbucketPull = serde_json::from_slice(body).map_err(json)?;
            bitbucket_pull(event, p)
        }
        (_, other) => Ok(Delivery::Ignored(format!("the {} event is not used", bounded(other)))),
    }
}

/// A provider's text as we repeat it: control characters dropped, at most [`MAX_TEXT`].
pub fn bounded(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(MAX_TEXT).collect()
}

fn first_line(s: &str) -> String {
    bounded(s.lines().next().unwrap_or(""))
}

fn commit_id(id: &str) -> Result<String, PayloadError> {
    if (7..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id.to_ascii_lowercase())
    } else {
        Err(PayloadError::Invalid("a commit id is not hex"))
    }
}

/// `refs/heads/x` or `refs/tags/x`.
fn split_ref(r: &str) -> Result<(RefKind, String), PayloadError> {
    let (kind, name) = if let Some(n) = r.strip_prefix("refs/heads/") {
        (RefKind::Branch, n)
    } else if let Some(n) = r.strip_prefix("refs/tags/") {
        (RefKind::Tag, n)
    } else {
        return Err(PayloadError::Invalid("the ref is neither a branch nor a tag"));
    };
    if !crate::repos::valid_ref_name(name) {
        return Err(PayloadError::Invalid("the ref's name is not a valid git name"));
    }
    Ok((kind, name.to_owned()))
}

fn is_zero(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b == b'0')
}

#[derive(Deserialize)]
struct Person {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
}

fn person(p: &Person) -> String {
    bounded(&format!("{} <{}>", p.name, p.email))
}

#[derive(Deserialize)]
struct GithubCommit {
    id: String,
    #[serde(default)]
    message: String,
    author: Option<Person>,
    #[serde(default)]
    added: Vec<String>,
    #[serde(default)]
    modified: Vec<String>,
    #[serde(default)]
    removed: Vec<String>,
}

#[derive(Deserialize)]
struct GithubPush {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    #[serde(default)]
    deleted: bool,
    head_commit: Option<GithubCommit>,
    /// Absent: the provider did not say which files changed.
    commits: Option<Vec<GithubCommit>>,
}

/// GitHub, Gitea and Forgejo send the same shape.
fn github_like(p: GithubPush) -> Result<Option<Push>, PayloadError> {
    if p.deleted || is_zero(&p.after) {
        return Ok(None);
    }
    let (kind, name) = split_ref(&p.git_ref)?;
    let commit = commit_id(&p.after)?;
    let (message, author) = match &p.head_commit {
        Some(c) if c.id.eq_ignore_ascii_case(&p.after) => {
            (first_line(&c.message), c.author.as_ref().map(person).unwrap_or_default())
        }
        _ => (String::new(), String::new()),
    };
    let changed = p.commits.as_deref().and_then(changed_paths);
    Ok(Some(Push { kind, name, commit, message, author, changed }))
}

#[derive(Deserialize)]
struct GithubPullRef {
    #[serde(rename = "ref")]
    branch: String,
    sha: String,
}

#[derive(Deserialize)]
struct GithubPullBody {
    number: Option<u32>,
    #[serde(default)]
    title: String,
    head: GithubPullRef,
    base: GithubPullRef,
}

#[derive(Deserialize)]
struct GithubPull {
    action: String,
    number: u32,
    pull_request: GithubPullBody,
}

fn pull(
    number: u32,
    action: PullAction,
    commit: &str,
    head: String,
    base: String,
    title: &str,
) -> Result<Delivery, PayloadError> {
    if number == 0 || number > 9_999_999 {
        return Err(PayloadError::Invalid("a pull request's number is out of range"));
    }
    if !crate::repos::valid_ref_name(&head) || !crate::repos::valid_ref_name(&base) {
        return Err(PayloadError::Invalid("a branch name is not a valid git name"));
    }
    Ok(Delivery::PullRequest(PullRequest {
        number,
        action,
        commit: commit_id(commit)?,
        head_branch: head,
        base_branch: base,
        title: first_line(title),
    }))
}

/// GitHub's, Gitea's and Forgejo's `pull_request` (Gitea says `synchronized`).
fn github_pull(p: GithubPull) -> Result<Delivery, PayloadError> {
    let action = match p.action.as_str() {
        "opened" | "reopened" | "synchronize" | "synchronized" => PullAction::Updated,
        "closed" => PullAction::Closed,
        other => {
            return Ok(Delivery::Ignored(format!(
                "pull request action {} is not used",
                bounded(other)
            )))
        }
    };
    let b = p.pull_request;
    let number = b.number.unwrap_or(p.number);
    pull(number, action, &b.head.sha, b.head.branch, b.base.branch, &b.title)
}

#[derive(Deserialize)]
struct GitlabLastCommit {
    id: String,
}

#[derive(Deserialize)]
struct GitlabMergeAttributes {
    iid: u32,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    title: String,
    source_branch: String,
    target_branch: String,
    last_commit: GitlabLastCommit,
}

#[derive(Deserialize)]
struct GitlabMerge {
    object_attributes: GitlabMergeAttributes,
}

fn gitlab_merge(p: GitlabMerge) -> Result<Delivery, PayloadError> {
    let a = p.object_attributes;
    let action = match a.action.as_deref() {
        Some("open" | "reopen" | "update") => PullAction::Updated,
        Some("close" | "merge") => PullAction::Closed,
        other => {
            let other = other.unwrap_or("none");
            return Ok(Delivery::Ignored(format!(
                "merge request action {} is not used",
                bounded(other)
            )));
        }
    };
    pull(a.iid, action, &a.last_commit.id, a.source_branch, a.target_branch, &a.title)
}

#[derive(Deserialize)]
struct BitbucketPullCommit {
    hash: String,
}

#[derive(Deserialize)]
struct BitbucketPullBranch {
    name: String,
}

#[derive(Deserialize)]
struct BitbucketPullEnd {
    branch: BitbucketPullBranch,
    commit: BitbucketPullCommit,
}

#[derive(Deserialize)]
struct BitbucketPullRequest {
    id: u32,
    #[serde(default)]
    title: String,
    source: BitbucketPullEnd,
    destination: BitbucketPullEnd,
}

#[derive(Deserialize)]
struct BitbucketPull {
    pullrequest: BitbucketPullRequest,
}

fn bitbucket_pull(event: &str, p: BitbucketPull) -> Result<Delivery, PayloadError> {
    let action = match event {
        "pullrequest:fulfilled" | "pullrequest:rejected" => PullAction::Closed,
        _ => PullAction::Updated,
    };
    let r = p.pullrequest;
    pull(
        r.id,
        action,
        &r.source.commit.hash,
        r.source.branch.name,
        r.destination.branch.name,
        &r.title,
    )
}

#[derive(Deserialize)]
struct GitlabPush {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    checkout_sha: Option<String>,
    #[serde(default)]
    commits: Vec<GithubCommit>,
    /// GitLab lists at most 20 commits; this says how many there were.
    total_commits_count: Option<usize>,
}

fn gitlab(p: GitlabPush) -> Result<Option<Push>, PayloadError> {
    let Some(sha) = p.checkout_sha.filter(|s| !is_zero(s)) else { return Ok(None) };
    if is_zero(&p.after) {
        return Ok(None);
    }
    let (kind, name) = split_ref(&p.git_ref)?;
    let commit = commit_id(&sha)?;
    let head = p.commits.iter().find(|c| c.id.eq_ignore_ascii_case(&sha));
    let (message, author) = head
        .map(|c| (first_line(&c.message), c.author.as_ref().map(person).unwrap_or_default()))
        .unwrap_or_default();
    let complete = p.total_commits_count.is_some_and(|n| n <= p.commits.len());
    let changed = if complete { changed_paths(&p.commits) } else { None };
    Ok(Some(Push { kind, name, commit, message, author, changed }))
}

#[derive(Deserialize)]
struct BitbucketPush {
    push: BitbucketChanges,
}

#[derive(Deserialize)]
struct BitbucketChanges {
    #[serde(default)]
    changes: Vec<BitbucketChange>,
}

#[derive(Deserialize)]
struct BitbucketChange {
    new: Option<BitbucketRef>,
}

#[derive(Deserialize)]
struct BitbucketRef {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    target: BitbucketTarget,
}

#[derive(Deserialize)]
struct BitbucketTarget {
    hash: String,
    #[serde(default)]
    message: String,
    author: Option<BitbucketAuthor>,
}

#[derive(Deserialize)]
struct BitbucketAuthor {
    #[serde(default)]
    raw: String,
}

/// The most refs one delivery may move.
const MAX_CHANGES: usize = 32;

fn bitbucket(p: BitbucketPush) -> Result<Vec<Push>, PayloadError> {
    if p.push.changes.len() > MAX_CHANGES {
        return Err(PayloadError::Invalid("too many changes in one push"));
    }
    let mut out = Vec::new();
    for change in p.push.changes {
        // A deleted ref has no `new`.
        let Some(new) = change.new else { continue };
        let kind = match new.kind.as_str() {
            "branch" => RefKind::Branch,
            "tag" | "annotated_tag" => RefKind::Tag,
            _ => continue,
        };
        if !crate::repos::valid_ref_name(&new.name) {
            return Err(PayloadError::Invalid("the ref's name is not a valid git name"));
        }
        out.push(Push {
            kind,
            name: new.name,
            commit: commit_id(&new.target.hash)?,
            message: first_line(&new.target.message),
            author: bounded(&new.target.author.map(|a| a.raw).unwrap_or_default()),
            changed: None,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SHA: &str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";

    fn one(d: Delivery) -> Push {
        match d {
            Delivery::Pushes(mut p) if p.len() == 1 => p.remove(0),
            other => panic!("not one push: {other:?}"),
        }
    }

    #[test]
    fn pull_requests_of_each_provider() {
        let gh = serde_json::json!({"action": "synchronize", "number": 7, "pull_request": {
            "number": 7, "title": "Add cart\nmore", "head": {"ref": "cart", "sha": SHA}, "base": {"ref": "main", "sha": SHA}}});
        let want = PullRequest {
            number: 7,
            action: PullAction::Updated,
            commit: SHA.into(),
            head_branch: "cart".into(),
            base_branch: "main".into(),
            title: "Add cart".into(),
        };
        for p in [Provider::Github, Provider::Gitea, Provider::Forgejo] {
            let got = parse(p, "pull_request", gh.to_string().as_bytes()).unwrap();
            assert_eq!(got, Delivery::PullRequest(want.clone()), "{p:?}");
        }
        let closed = serde_json::json!({"action": "closed", "number": 7, "pull_request": {
            "title": "x", "head": {"ref": "cart", "sha": SHA}, "base": {"ref": "main", "sha": SHA}}});
        let Delivery::PullRequest(c) =
            parse(Provider::Github, "pull_request", closed.to_string().as_bytes()).unwrap()
        else {
            panic!()
        };
        assert_eq!(c.action, PullAction::Closed);
        let labeled = serde_json::json!({"action": "labeled", "number": 7, "pull_request": {
            "head": {"ref": "cart", "sha": SHA}, "base": {"ref": "main", "sha": SHA}}});
        assert!(matches!(
            parse(Provider::Github, "pull_request", labeled.to_string().as_bytes()).unwrap(),
            Delivery::Ignored(_)
        ));
        let gl = serde_json::json!({"object_kind": "merge_request", "object_attributes": {"iid": 7, "action": "merge",
            "title": "Add cart", "source_branch": "cart", "target_branch": "main", "last_commit": {"id": SHA}}});
        let Delivery::PullRequest(m) =
            parse(Provider::Gitlab, "Merge Request Hook", gl.to_string().as_bytes()).unwrap()
        else {
            panic!()
        };
        assert_eq!((m.number, m.action, m.head_branch.as_str()), (7, PullAction::Closed, "cart"));
        let bb = serde_json::json!({"pullrequest": {"id": 7, "title": "Add cart",
            "source": {"branch": {"name": "cart"}, "commit": {"hash": &SHA[..12]}},
            "destination": {"branch": {"name": "main"}, "commit": {"hash": &SHA[..12]}}}});
        let Delivery::PullRequest(b) =
            parse(Provider::Bitbucket, "pullrequest:created", bb.to_string().as_bytes()).unwrap()
        else {
            panic!()
        };
        assert_eq!((b.action, b.commit.as_str()), (PullAction::Updated, &SHA[..12]));
        // A hostile branch name or number is refused.
        let evil = serde_json::json!({"action": "opened", "number": 0, "pull_request": {
            "head": {"ref": "-x", "sha": SHA}, "base": {"ref": "main", "sha": SHA}}});
        assert!(parse(Provider::Github, "pull_request", evil.to_string().as_bytes()).is_err());
    }

    #[test]
    fn github_gitea_and_forgejo_pushes() {
        let body = format!(
            r#"{{"ref":"refs/heads/main","before":"{z}","after":"{SHA}","deleted":false,
               "head_commit":{{"id":"{SHA}","message":"Fix the cart\n\nlonger text","author":{{"name":"Ada","email":"ada@example.test","username":"ada"}}}},
               "repository":{{"full_name":"shop/web"}}}}"#,
            z = "0".repeat(40)
        );
        for p in [Provider::Github, Provider::Gitea, Provider::Forgejo] {
            let push = one(parse(p, "push", body.as_bytes()).unwrap());
            assert_eq!(push.kind, RefKind::Branch);
            assert_eq!((push.name.as_str(), push.commit.as_str()), ("main", SHA));
            assert_eq!(push.message, "Fix the cart");
            assert_eq!(push.author, "Ada <ada@example.test>");
        }
        let tag = format!(r#"{{"ref":"refs/tags/v1.0","after":"{SHA}","head_commit":null}}"#);
        assert_eq!(
            one(parse(Provider::Github, "push", tag.as_bytes()).unwrap()).kind,
            RefKind::Tag
        );
        let deleted =
            format!(r#"{{"ref":"refs/heads/old","after":"{}","deleted":true}}"#, "0".repeat(40));
        assert_eq!(
            parse(Provider::Github, "push", deleted.as_bytes()),
            Ok(Delivery::Pushes(vec![]))
        );
        assert_eq!(parse(Provider::Github, "ping", b"{}"), Ok(Delivery::Ping));
        assert!(matches!(parse(Provider::Github, "issues", b"{}"), Ok(Delivery::Ignored(_))));
    }

    #[test]
    fn gitlab_pushes() {
        let body = format!(
            r#"{{"object_kind":"push","ref":"refs/heads/main","before":"{z}","after":"{SHA}","checkout_sha":"{SHA}",
               "commits":[{{"id":"{SHA}","message":"Add search","author":{{"name":"Grace","email":"grace@example.test"}}}}]}}"#,
            z = "0".repeat(40)
        );
        let push = one(parse(Provider::Gitlab, "Push Hook", body.as_bytes()).unwrap());
        assert_eq!((push.name.as_str(), push.message.as_str()), ("main", "Add search"));
        assert_eq!(push.author, "Grace <grace@example.test>");
        let deleted =
            format!(r#"{{"ref":"refs/heads/x","after":"{}","checkout_sha":null}}"#, "0".repeat(40));
        assert_eq!(
            parse(Provider::Gitlab, "Push Hook", deleted.as_bytes()),
            Ok(Delivery::Pushes(vec![]))
        );
    }

    #[test]
    fn bitbucket_pushes() {
        let body = format!(
            r#"{{"push":{{"changes":[
                {{"new":{{"type":"branch","name":"main","target":{{"type":"commit","hash":"{SHA}","message":"Ship it\n","author":{{"raw":"Linus <l@example.test>"}}}}}},"old":null}},
                {{"new":null,"old":{{"type":"branch","name":"gone","target":{{"hash":"{SHA}"}}}}}}
            ]}}}}"#
        );
        let push = one(parse(Provider::Bitbucket, "repo:push", body.as_bytes()).unwrap());
        assert_eq!((push.name.as_str(), push.commit.as_str()), ("main", SHA));
        assert_eq!(
            (push.message.as_str(), push.author.as_str()),
            ("Ship it", "Linus <l@example.test>")
        );
    }

    #[test]
    fn changed_paths_are_read_when_the_delivery_lists_them_all() {
        let body = format!(
            r#"{{"ref":"refs/heads/main","after":"{SHA}","commits":[
                {{"id":"a1b2c3d","added":["web/new.js"],"modified":["README.md"],"removed":[]}},
                {{"id":"{SHA}","added":[],"modified":["web/app.js"],"removed":["old.txt"]}}]}}"#
        );
        let push = one(parse(Provider::Github, "push", body.as_bytes()).unwrap());
        assert_eq!(
            push.changed.as_deref(),
            Some(&["web/new.js", "README.md", "web/app.js", "old.txt"].map(String::from)[..])
        );
        let unlisted = format!(r#"{{"ref":"refs/heads/main","after":"{SHA}"}}"#);
        assert_eq!(one(parse(Provider::Gitea, "push", unlisted.as_bytes()).unwrap()).changed, None);
        // GitLab lists 20 commits at most: a longer push's list is not all of it.
        let truncated = format!(
            r#"{{"ref":"refs/heads/main","after":"{SHA}","checkout_sha":"{SHA}","total_commits_count":25,
               "commits":[{{"id":"{SHA}","modified":["a"]}}]}}"#
        );
        assert_eq!(
            one(parse(Provider::Gitlab, "Push Hook", truncated.as_bytes()).unwrap()).changed,
            None
        );
        let whole = truncated.replace("25", "1");
        let got = one(parse(Provider::Gitlab, "Push Hook", whole.as_bytes()).unwrap()).changed;
        assert_eq!(got, Some(vec!["a".to_owned()]));
    }

    #[test]
    fn hostile_bodies_are_errors_not_deploys() {
        let bad_sha = r#"{"ref":"refs/heads/main","after":"; rm -rf /"}"#;
        assert_eq!(
            parse(Provider::Github, "push", bad_sha.as_bytes()),
            Err(PayloadError::Invalid("a commit id is not hex"))
        );
        let bad_ref = format!(r#"{{"ref":"refs/heads/-x","after":"{SHA}"}}"#);
        assert!(parse(Provider::Github, "push", bad_ref.as_bytes()).is_err());
        let other_ref = format!(r#"{{"ref":"refs/pull/1/head","after":"{SHA}"}}"#);
        assert!(parse(Provider::Gitea, "push", other_ref.as_bytes()).is_err());
        assert!(matches!(parse(Provider::Github, "push", b"[1,2"), Err(PayloadError::Json(_))));
        let long = format!(
            r#"{{"ref":"refs/heads/main","after":"{SHA}","head_commit":{{"id":"{SHA}","message":"{}","author":{{"name":"{}","email":"e"}}}}}}"#,
            "m".repeat(10_000),
            "\\u0007".repeat(50)
        );
        let push = one(parse(Provider::Github, "push", long.as_bytes()).unwrap());
        assert_eq!(push.message.chars().count(), MAX_TEXT);
        assert!(!push.author.contains('\u{7}'), "control characters are dropped");
    }

    proptest! {
        /// Any bytes, any event: an answer, never a panic.
        #[test]
        fn any_body_is_safe(body in proptest::collection::vec(any::<u8>(), 0..600), event in "[a-z:]{0,12}") {
            for p in Provider::ALL {
                let _ = parse(p, &event, &body);
                let _ = parse(p, "push", &body);
                let _ = parse(p, "pull_request", &body);
            }
        }

        /// A pull request of any number, branches and commit: read only when all are valid.
        #[test]
        fn pull_requests_are_read_only_when_valid(number in any::<i64>(), head in ".{0,20}", sha in "[0-9a-fg]{0,70}") {
            let body = serde_json::json!({"action": "opened", "number": number, "pull_request": {
                "head": {"ref": head, "sha": sha}, "base": {"ref": "main", "sha": sha}}});
            match parse(Provider::Github, "pull_request", body.to_string().as_bytes()) {
                Ok(Delivery::PullRequest(pr)) => {
                    prop_assert!(pr.number > 0 && i64::from(pr.number) == number);
                    prop_assert!(crate::repos::valid_ref_name(&pr.head_branch));
                    prop_assert!((7..=64).contains(&pr.commit.len()) && pr.commit.bytes().all(|b| b.is_ascii_hexdigit()));
                }
                Ok(other) => prop_assert!(false, "{other:?}"),
                Err(_) => {}
            }
        }
    }
}
