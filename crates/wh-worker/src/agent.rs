//! Executes jobs from the control plane. A `deploy` job: shallow-clone the ref (or unpack the
//! uploaded source archive) into a temporary directory (removed afterwards), use the
//! repository's Containerfile/Dockerfile or a preset, build (output streamed as log lines),
//! start the container with the app's env vars and plan limits, published on this worker's address at a free host port, health-check it, and report
//! the host port. A failed health check removes the new container (whatever was serving keeps
//! serving) and fails the job with the reason and the container's last log lines. A `retire`
//! job stops the containers of a superseded deployment once the control plane's drain delay
//! has passed. A running container's output is followed and forwarded as log lines.
//! `container.stop` removes containers the control plane does not account for (only ones
//! carrying our app label). Each deploy job's result is followed by an image sweep
//! ([`images`]). The jobs in progress are listed in every heartbeat, which keeps their leases
//! alive.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wh_wsproto::job::{
    DeployJob, DeployOutput, Job, JobKind, JobOutput, RetireJob, RetireOutput, Source, Stage,
};
use wh_wsproto::messages::{JobAssign, JobProgress, JobRef, JobResult, LogLine, LogLines, Stream};
use wh_wsproto::Message;

use crate::frameworks::{self, BaseImages};
use crate::git::RepoPolicy;
use crate::images::{self, ImagePolicy};
use crate::lines::{BoundedLines, MAX_LINE};
use crate::monitor::in_scope;
use crate::runtime::{BuildSpec, Podman, RunSpec, RuntimeError, LABEL_APP, LABEL_DEPLOYMENT};
use crate::transport::Transport;
use wh_http::client::{Target, Trust};

mod error;
pub use error::{DeployError, DeployStage, HealthError, JobError, Probe};

/// How the agent runs apps on this host.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Address container ports are published on (the mesh address; 127.0.0.1 for dev).
    pub publish_ip: String,
    pub base_images: BaseImages,
    pub build_timeout: Duration,
    pub health_timeout: Duration,
    pub health_path: String,
    /// Extra labels on everything the agent creates (tests use it for cleanup); images are
    /// swept only among those carrying all of them.
    pub extra_labels: Vec<(String, String)>,
    pub images: ImagePolicy,
    /// Which repositories may be cloned (public hosts only, unless allowed).
    pub repos: RepoPolicy,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            publish_ip: "127.0.0.1".into(),
            base_images: BaseImages::default(),
            build_timeout: Duration::from_secs(15 * 60),
            health_timeout: Duration::from_secs(60),
            health_path: "/".into(),
            extra_labels: Vec::new(),
            images: ImagePolicy::default(),
            repos: RepoPolicy::default(),
        }
    }
}

/// The job executor.
pub struct Agent {
    podman: Podman,
    transport: Arc<Transport>,
    settings: AgentSettings,
    /// The jobs in progress, each with the token that cancels it.
    running: std::sync::Mutex<std::collections::BTreeMap<i64, CancellationToken>>,
    /// The `podman logs -f` followers: they end (their child killed) at `stop`, and the worker
    /// waits for them before it returns.
    pub followers: tokio_util::task::TaskTracker,
    stop: CancellationToken,
}

impl Agent {
    pub fn new(
        podman: Podman,
        transport: Arc<Transport>,
        settings: AgentSettings,
        stop: CancellationToken,
    ) -> Arc<Agent> {
        Arc::new(Agent {
            podman,
            transport,
            settings,
            running: Default::default(),
            followers: Default::default(),
            stop,
        })
    }

    /// Follows `container`'s output until it goes away or the worker stops ([`forward_logs`]).
    pub fn follow(&self, app: String, deployment: i64, container: String, since: Option<u64>) {
        self.followers.spawn(forward_logs(
            self.podman.clone(),
            self.transport.clone(),
            app,
            deployment,
            container,
            since,
            self.stop.clone(),
        ));
    }

    /// The ids of the jobs in progress (for heartbeats).
    pub fn running_jobs(&self) -> Vec<i64> {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).keys().copied().collect()
    }

    /// Runs every job that arrives, each in its own task, until `inbound` closes. A job whose
    /// task panics still ends: it leaves the heartbeat's list and fails with the panic's message.
    pub async fn run(self: Arc<Self>, inbound: Arc<tokio::sync::Mutex<mpsc::Receiver<Message>>>) {
        let mut inbound = inbound.lock().await;
        while let Some(msg) = inbound.recv().await {
            match msg {
                Message::JobAssign(job) => {
                    let me = self.clone();
                    tokio::spawn(async move {
                        let (id, attempt) = (job.job_id, job.attempt);
                        let inner = me.clone();
                        if let Err(why) =
                            wh_cmd::supervise_panics("job", async move { inner.execute(job).await })
                                .await
                        {
                            me.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                            me.transport.send(Message::JobResult(JobResult {
                                job_id: id,
                                attempt,
                                ok: false,
                                error: Some(format!("the worker failed internally: {why}")),
                                output: None,
                            }));
                        }
                    });
                }
                Message::ContainerStop(stop) => {
                    let me = self.clone();
                    tokio::spawn(async move { me.stop_unknown(stop.container_ids).await });
                }
                Message::JobCancel(c) => {
                    let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(token) = running.get(&c.job_id) {
                        tracing::info!(job = c.job_id, reason = %c.reason, "the control plane cancelled a job");
                        token.cancel();
                    }
                }
                _ => {}
            }
        }
    }

    /// Removes the listed containers that carry our app label and labels (never anything else).
    async fn stop_unknown(&self, ids: Vec<String>) {
        let Ok(ours) = self.podman.list(LABEL_APP).await else { return };
        let scope = &self.settings.extra_labels;
        for c in ours.into_iter().filter(|c| ids.contains(&c.id) && in_scope(&c.labels, scope)) {
            tracing::info!(container = %c.id, name = %c.name, "stopping a container the control plane does not account for");
            if let Err(e) = self.podman.remove(&c.id, Duration::from_secs(10)).await {
                tracing::warn!(container = %c.id, error = %e, "cannot stop container");
            }
        }
    }

    async fn execute(&self, job: JobAssign) {
        let (id, attempt) = (job.job_id, job.attempt);
        let cancel = CancellationToken::new();
        self.running.lock().unwrap_or_else(|e| e.into_inner()).insert(id, cancel.clone());
        self.transport.send(Message::JobAck(JobRef { job_id: id, attempt }));
        let work = async {
            match &job.job {
                Job::Deploy(d) => {
                    self.deploy(&job, d).await.map(JobOutput::Deploy).map_err(JobError::from)
                }
                Job::Retire(r) => self.retire(r).await.map(JobOutput::Retire),
            }
        };
        let is_deploy = job.job.kind() == JobKind::Deploy;
        let result = tokio::select! {
            r = work => r,
            // Dropping the work ends it: a clone or build is killed with its process tree.
            _ = cancel.cancelled() => {
                if is_deploy {
                    // Whatever it started (a container being health-checked) goes too.
                    let d = job.job.deployment_id();
                    if let Err(e) = self.remove_deployment(d).await {
                        tracing::warn!(deployment = d, error = %e, "cannot remove a cancelled deployment's containers");
                    }
                    // A build killed mid-way leaves its working container.
                    if let Err(e) = self.podman.remove_build_leftovers().await {
                        tracing::warn!(error = %e, "cannot remove a cancelled build's working container");
                    }
                }
                Err(JobError::Cancelled)
            }
        };
        self.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        let (ok, error, output) = match result {
            Ok(output) => (true, None, Some(output)),
            Err(e) => {
                // The reason goes to the control plane; it can carry the app's own output, so
                // the worker's log keeps only where it failed.
                if let JobError::Deploy(d) = &e {
                    tracing::info!(job = id, stage = d.stage().as_str(), "deploy failed");
                }
                (false, Some(e.to_string()), None)
            }
        };
        self.transport.send(Message::JobResult(JobResult {
            job_id: id,
            attempt,
            ok,
            error,
            output,
        }));
        if is_deploy {
            // Older images of this app (or of apps gone from here) need not wait for the hourly
            // sweep; after the result, so the deploy is not kept waiting for it.
            let (podman, policy, scope) = (
                self.podman.clone(),
                self.settings.images.clone(),
                self.settings.extra_labels.clone(),
            );
            tokio::spawn(async move {
                if let Err(e) = images::sweep(&podman, &policy, &scope).await {
                    tracing::warn!(error = %e, "image sweep failed");
                }
            });
        }
    }

    /// Stops the containers of a superseded deployment (the proxy no longer routes to them).
    async fn retire(&self, job: &RetireJob) -> Result<RetireOutput, JobError> {
        let stopped = self.remove_deployment(job.deployment_id).await?;
        Ok(RetireOutput { stopped })
    }

    /// Removes this worker's containers of `deployment`; returns their ids.
    async fn remove_deployment(&self, deployment: i64) -> Result<Vec<String>, RuntimeError> {
        let wanted = deployment.to_string();
        let found = self.podman.list(LABEL_DEPLOYMENT).await?;
        let mut stopped = Vec::new();
        let scope = &self.settings.extra_labels;
        let ours = |c: &crate::runtime::Found| {
            c.labels.get(LABEL_DEPLOYMENT) == Some(&wanted) && in_scope(&c.labels, scope)
        };
        for c in found.into_iter().filter(ours) {
            self.podman.remove(&c.id, Duration::from_secs(10)).await?;
            stopped.push(c.id);
        }
        Ok(stopped)
    }

    fn progress(&self, job: &JobAssign, stage: Stage, message: &str) {
        self.transport.send(Message::JobProgress(JobProgress {
            job_id: job.job_id,
            attempt: job.attempt,
            stage,
            message: message.into(),
        }));
    }

    async fn deploy(&self, job: &JobAssign, d: &DeployJob) -> Result<DeployOutput, DeployError> {
        let (app, deployment, port) = (d.app.clone(), d.deployment_id, d.port);
        let memory_mb = d.limits.memory_mb;
        let cpus = d.limits.cpu_millis as f64 / 1000.0;
        let disk_mb = d.limits.disk_mb.filter(|_| self.podman.settings.disk_quota_enabled());
        let mut labels = vec![
            (LABEL_APP.to_owned(), app.clone()),
            (LABEL_DEPLOYMENT.to_owned(), deployment.to_string()),
        ];
        labels.extend(self.settings.extra_labels.iter().cloned());
        let (tag, commit, image_of) = match &d.source {
            Source::Image { image_of, rebuild } => match self.find_image(&app, *image_of).await? {
                Some(image) => {
                    let says = format!("reusing the image of deployment {image_of}");
                    self.build_line(&app, deployment, &says);
                    self.progress(job, Stage::Building, &says);
                    (image, None, Some(*image_of))
                }
                None => match rebuild {
                    Some(source) => {
                        let says = format!(
                            "the image of deployment {image_of} is no longer on this worker: building its commit again"
                        );
                        self.build_line(&app, deployment, &says);
                        let (tag, commit) = self.build(job, d, source, &labels).await?;
                        (tag, commit, None)
                    }
                    None => return Err(DeployError::ImageGone(*image_of)),
                },
            },
            source => {
                let (tag, commit) = self.build(job, d, source, &labels).await?;
                (tag, commit, None)
            }
        };
        let mut out = self.start(job, d, tag, labels, (memory_mb, cpus, disk_mb), port).await?;
        (out.commit, out.image_of) = (commit, image_of);
        Ok(out)
    }

    /// This worker's image of `app`'s deployment `of` (labelled by it, with this worker's
    /// labels), if it still has it.
    async fn find_image(&self, app: &str, of: i64) -> Result<Option<String>, DeployError> {
        let images = self
            .podman
            .images(&format!("{LABEL_DEPLOYMENT}={of}"))
            .await
            .map_err(DeployError::Start)?;
        Ok(images
            .into_iter()
            .find(|i| {
                i.labels.get(LABEL_APP).map(String::as_str) == Some(app)
                    && in_scope(&i.labels, &self.settings.extra_labels)
            })
            .map(|i| i.id))
    }

    /// One line of the worker's own in the deployment's build log.
    fn build_line(&self, app: &str, deployment: i64, line: &str) {
        self.transport.send(Message::LogLines(LogLines {
            app: app.to_owned(),
            deployment_id: Some(deployment),
            lines: vec![LogLine { ts_ms: now_ms(), stream: Stream::Build, line: line.to_owned() }],
            dropped: 0,
        }));
    }

    /// Fetches `source` and builds it into `localhost/wh-<app>:<deployment>`; returns the tag
    /// and, for git, the commit built.
    async fn build(
        &self,
        job: &JobAssign,
        d: &DeployJob,
        source: &Source,
        labels: &[(String, String)],
    ) -> Result<(String, Option<String>), DeployError> {
        let (app, deployment) = (d.app.clone(), d.deployment_id);
        let memory_mb = d.limits.memory_mb;
        let cpus = d.limits.cpu_millis as f64 / 1000.0;
        let checkout = tempfile::Builder::new()
            .prefix("wh-build-")
            .tempdir()
            .map_err(DeployError::Workspace)?;
        let commit = match source {
            Source::Upload => {
                self.progress(job, Stage::Building, "downloading the uploaded source");
                let bytes = self
                    .transport
                    .fetch(
                        &format!("/v1/workers/sources/{deployment}"),
                        wh_wsproto::archive::Limits::default().max_compressed,
                        Duration::from_secs(120),
                    )
                    .await?;
                let into = checkout.path().to_owned();
                tokio::task::spawn_blocking(move || crate::source::unpack(&bytes, &into))
                    .await
                    .map_err(|e| DeployError::Internal(e.to_string()))??;
                None
            }
            Source::Git { repo_url, git_ref, repo_auth } => {
                self.progress(job, Stage::Building, "cloning");
                let credentials = repo_auth.as_deref();
                crate::git::clone(
                    repo_url,
                    credentials,
                    git_ref,
                    checkout.path(),
                    self.settings.repos,
                )
                .await?;
                crate::git::head_commit(checkout.path()).await
            }
            // An image's rebuild is a git or upload source, never another image.
            Source::Image { image_of, .. } => return Err(DeployError::ImageGone(*image_of)),
        };
        let context = crate::context::resolve(checkout.path(), &d.root_dir)?;
        let dockerfile: Option<PathBuf> = match frameworks::own_dockerfile(&context) {
            Some(_) => None,
            None => {
                let preset = frameworks::detect(&context, &self.settings.base_images)
                    .ok_or(DeployError::NoRecipe)?;
                let path = context.join("Containerfile.wisehosting");
                std::fs::write(&path, preset.dockerfile).map_err(DeployError::Recipe)?;
                Some(path)
            }
        };
        let tag = format!("localhost/wh-{app}:{deployment}");
        // Build output streams while it runs: batched by count or a short quiet time.
        let (lines_tx, lines_rx) = mpsc::channel::<LogLine>(1024);
        let sender =
            tokio::spawn(send_batches(self.transport.clone(), app.clone(), deployment, lines_rx));
        let built = self
            .podman
            .build(
                &BuildSpec {
                    context: &context,
                    dockerfile: dockerfile.as_deref(),
                    tag: &tag,
                    labels,
                    memory_mb: memory_mb.max(256),
                    cpus,
                    timeout: self.settings.build_timeout,
                },
                |line| {
                    // A full queue drops the line rather than stall the build.
                    let _ = lines_tx.try_send(LogLine {
                        ts_ms: now_ms(),
                        stream: Stream::Build,
                        line: line.to_owned(),
                    });
                },
            )
            .await;
        drop(lines_tx);
        let _ = sender.await;
        built.map_err(DeployError::Build)?;
        drop(checkout);
        Ok((tag, commit))
    }

    /// Runs `image` as the deployment's container and health-checks it.
    async fn start(
        &self,
        job: &JobAssign,
        d: &DeployJob,
        tag: String,
        labels: Vec<(String, String)>,
        (memory_mb, cpus, disk_mb): (u64, f64, Option<u64>),
        port: u16,
    ) -> Result<DeployOutput, DeployError> {
        let (app, deployment) = (d.app.clone(), d.deployment_id);
        self.progress(job, Stage::Starting, "");
        let host_port = free_port(&self.settings.publish_ip)?;
        let mut env: Vec<(String, String)> =
            d.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        env.push(("PORT".into(), port.to_string()));
        let spec = RunSpec {
            // Unique on the host even when two control planes (two `wh dev`s) share its Podman.
            name: format!(
                "wh-{app}-{deployment}-{}-{}",
                job.attempt,
                &wh_wsproto::Signer::new_id()[..8]
            ),
            image: tag,
            env,
            memory_mb,
            cpus,
            pids_limit: 512,
            labels,
            publish: Some((self.settings.publish_ip.clone(), host_port, port)),
            extra_args: disk_mb
                .map(|mb| vec!["--storage-opt".to_owned(), format!("size={mb}M")])
                .unwrap_or_default(),
        };
        let container = self.podman.run(&spec).await.map_err(DeployError::Start)?;
        let url =
            format!("http://{}:{host_port}{}", self.settings.publish_ip, self.settings.health_path);
        if let Err(why) = health_check(&url, self.settings.health_timeout).await {
            let logs = self.podman.logs_tail(&container, 20).await.unwrap_or_default();
            let _ = self.podman.remove(&container, Duration::from_secs(0)).await;
            return Err(DeployError::Unhealthy { why, logs });
        }
        self.progress(job, Stage::Healthy, "");
        self.follow(app.clone(), deployment, container.clone(), None);
        Ok(DeployOutput::started(host_port, container))
    }
}

/// Follows a container's output (`podman logs -f`, from `since` in Unix seconds when given, so
/// a restarted worker does not send old lines again) and sends it as log lines
/// ([`send_batches`]) until the container goes away. The transport bounds what waits while
/// disconnected (oldest dropped, counted).
pub(crate) async fn forward_logs(
    podman: Podman,
    transport: Arc<Transport>,
    app: String,
    deployment: i64,
    container: String,
    since: Option<u64>,
    stop: CancellationToken,
) {
    let mut args = vec!["logs".to_owned(), "-f".to_owned()];
    if let Some(s) = since {
        args.extend(["--since".to_owned(), s.to_string()]);
    }
    args.push(container);
    let child = podman
        .program()
        .args(&args)
        // A worker that dies without stopping this is found and killed by the next one.
        .env(crate::process_tree::OWNER_VAR, crate::process_tree::owner())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let Ok(mut child) = child else { return };
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else { return };
    let (tx, rx) = mpsc::channel::<LogLine>(1024);
    for (reader, stream) in [
        (Box::new(out) as Box<dyn tokio::io::AsyncRead + Unpin + Send>, Stream::Stdout),
        (Box::new(err), Stream::Stderr),
    ] {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BoundedLines::new(tokio::io::BufReader::new(reader), MAX_LINE);
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send(LogLine { ts_ms: now_ms(), stream, line }).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    tokio::select! {
        _ = send_batches(transport, app, deployment, rx) => {}
        // Killed and reaped here: a stopped worker leaves no follower behind.
        _ = stop.cancelled() => {}
    }
    let _ = child.kill().await;
}

/// Sends the lines arriving on `rx` as `log.lines`, in batches of up to 100 lines or whatever
/// arrived before 200 ms of quiet, until `rx` closes.
async fn send_batches(
    transport: Arc<Transport>,
    app: String,
    deployment: i64,
    mut rx: mpsc::Receiver<LogLine>,
) {
    let mut batch = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await;
        let (done, quiet) = (matches!(next, Ok(None)), next.is_err());
        if let Ok(Some(line)) = next {
            batch.push(line);
        }
        if !batch.is_empty() && (batch.len() >= 100 || done || quiet) {
            transport.send(Message::LogLines(LogLines {
                app: app.clone(),
                deployment_id: Some(deployment),
                lines: std::mem::take(&mut batch),
                dropped: 0,
            }));
        }
        if done {
            break;
        }
    }
}

use wh_wsproto::now_ms;

/// A free TCP port on `ip` (the OS picks it).
fn free_port(ip: &str) -> Result<u16, DeployError> {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| DeployError::NoPort { ip: ip.to_owned(), source })
}

/// GET `url` until 2xx/3xx, for at most `limit`.
async fn health_check(url: &str, limit: Duration) -> Result<(), HealthError> {
    let started = Instant::now();
    // Parsed once: the probe runs every 200 ms.
    let probe = Target::parse(url, &Trust::System, &[])
        .ok()
        .zip(url.parse::<hyper::Uri>().ok().map(|u| u.path().to_owned()));
    let Some((target, path)) = probe else {
        return Err(HealthError { last: Probe::BadUrl, after: Duration::ZERO });
    };
    let mut last = Probe::NoAnswer;
    while started.elapsed() < limit {
        match get_status(&target, &path).await {
            Ok(s) if (200..400).contains(&s) => return Ok(()),
            Ok(s) => last = Probe::Status(s),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(HealthError { last, after: limit })
}

/// One probe of `path` on `target` (plain HTTP on this host), within 2 s.
async fn get_status(target: &Target, path: &str) -> Result<u16, Probe> {
    let exchange = async {
        let io = target.dial(Duration::from_secs(2)).await?;
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io)).await?;
        tokio::spawn(conn);
        let req = hyper::Request::get(path)
            .header("host", target.authority())
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|_| Probe::BadUrl)?;
        Ok(send.send_request(req).await.map(|r| r.status().as_u16())?)
    };
    tokio::time::timeout(Duration::from_secs(2), exchange).await.map_err(|_| Probe::Timeout)?
}
