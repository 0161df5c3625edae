//! The Podman runtime against real Podman, with the testkit's local busybox base image.

use std::time::Duration;

use wh_testkit::podman::{Podman as TestPodman, LABEL};
use wh_worker::runtime::{BuildSpec, Podman, PodmanSettings, RunSpec, LABEL_APP, LABEL_DEPLOYMENT};

/// A build of `context` into `tag`: 128 MiB, one core, two minutes, no labels.
fn spec<'a>(context: &'a std::path::Path, tag: &'a str) -> BuildSpec<'a> {
    BuildSpec {
        context,
        dockerfile: None,
        tag,
        labels: &[],
        memory_mb: 128,
        cpus: 1.0,
        timeout: Duration::from_secs(120),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_with_streamed_output_runs_with_env_and_limits_lists_by_label_and_removes() {
    let kit = TestPodman::get().unwrap();
    let base = kit.base_image().unwrap();
    let cleanup = (LABEL.to_owned(), kit.run_id().to_owned());
    let settings = PodmanSettings::probe().await.unwrap();
    assert_eq!(
        settings.runtime.as_deref(),
        Some("runc"),
        "this host needs runc (cgroup v1 hybrid)"
    );
    let podman = Podman { settings };

    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Containerfile"),
        format!(
            "FROM {base}\nRUN mkdir -p /www && echo built-by-wh > /www/index.html && echo step-output-line\n\
             RUN echo cpu-quota=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) mem-limit=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)\n\
             CMD [\"/bin/sh\", \"-c\", \"echo $GREETING > /www/env.txt; echo \\\"$PATH $LD_PRELOAD [$SPACED]\\\" > /www/host.txt; exec /bin/httpd -f -p 8000 -h /www\"]\n"
        ),
    )
    .unwrap();
    let mut lines = Vec::new();
    let tag = format!("localhost/wh-runtime-test:{}", kit.run_id());
    podman
        .build(
            &BuildSpec {
                labels: std::slice::from_ref(&cleanup),
                memory_mb: 256,
                cpus: 0.5,
                ..spec(ctx.path(), &tag)
            },
            |l| lines.push(l.to_owned()),
        )
        .await
        .unwrap();
    assert!(
        lines.iter().any(|l| l.contains("step-output-line")),
        "build output not streamed: {lines:?}"
    );
    // The build ran under its caps: half a core of each period and 256 MiB.
    assert!(
        lines.iter().any(|l| l.contains("cpu-quota=50000 mem-limit=268435456")),
        "build caps not applied: {lines:?}"
    );

    let port = wh_testkit::net::free_port();
    let spec = RunSpec {
        name: format!("wh-rt-{}", kit.run_id()),
        image: tag.clone(),
        // Names that would steer Podman itself on the host if they became its environment.
        env: vec![
            ("GREETING".into(), "hello-from-env".into()),
            ("LD_PRELOAD".into(), "/nonexistent".into()),
            ("PATH".into(), "/nowhere".into()),
            ("SPACED".into(), " a = b ".into()),
        ],
        memory_mb: 64,
        cpus: 0.5,
        pids_limit: 100,
        labels: vec![
            cleanup.clone(),
            (LABEL_APP.into(), "rt-app".into()),
            (LABEL_DEPLOYMENT.into(), "42".into()),
        ],
        publish: Some(("127.0.0.1".into(), port, 8000)),
        extra_args: vec![],
    };
    let id = podman.run(&spec).await.unwrap();
    let page = wh_testkit::within(Duration::from_secs(10), async || {
        let r = wh_testkit::http::get(&format!("http://127.0.0.1:{port}/env.txt"), &[]).await;
        r.ok().filter(|r| r.status == 200).map(|r| r.text())
    })
    .await;
    assert_eq!(
        page.as_deref().map(str::trim),
        Some("hello-from-env"),
        "env var did not reach the container"
    );
    // Item A3: the tenant's PATH and LD_PRELOAD reached the container, not the host's Podman.
    let seen = wh_testkit::http::get(&format!("http://127.0.0.1:{port}/host.txt"), &[]).await;
    assert_eq!(seen.unwrap().text().trim(), "/nowhere /nonexistent [ a = b ]");
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("wh-env-"))
        .collect();
    assert!(leftovers.is_empty(), "env files left behind: {leftovers:?}");
    let inspect = podman.inspect(&id).await.unwrap();
    assert_eq!(inspect["HostConfig"]["Memory"].as_i64(), Some(64 * 1024 * 1024));
    assert_eq!(inspect["HostConfig"]["PidsLimit"].as_i64(), Some(100));
    // Podman's init is PID 1 (so an app without a SIGTERM handler still stops when told).
    assert!(podman.settings.init, "catatonit is installed with podman here");
    assert_eq!(inspect["HostConfig"]["Init"].as_bool(), Some(true), "{}", inspect["HostConfig"]);
    let args = inspect["Args"].to_string() + &inspect["Config"]["Cmd"].to_string();
    assert!(!args.contains("hello-from-env"), "the env value leaked into the command line");

    let found = podman.list(LABEL_APP).await.unwrap();
    let mine = found
        .iter()
        .find(|f| id.starts_with(&f.id) || f.id.starts_with(&id))
        .expect("not listed by label");
    assert_eq!(mine.labels.get(LABEL_DEPLOYMENT).map(String::as_str), Some("42"));
    assert_eq!(mine.state, "running");

    podman.remove(&id, Duration::from_secs(0)).await.unwrap();
    assert!(podman.inspect(&id).await.is_err(), "container still there after remove");
}

#[tokio::test]
async fn a_failing_build_reports_its_last_lines() {
    let kit = TestPodman::get().unwrap();
    let base = kit.base_image().unwrap();
    let podman = Podman { settings: PodmanSettings::probe().await.unwrap() };
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Containerfile"),
        format!("FROM {base}\nRUN echo about-to-fail && false\n"),
    )
    .unwrap();
    let tag = format!("localhost/wh-runtime-fail:{}", kit.run_id());
    let err = podman
        .build(
            &BuildSpec {
                labels: &[(LABEL.to_owned(), kit.run_id().to_owned())],
                ..spec(ctx.path(), &tag)
            },
            |_| {},
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("about-to-fail"), "{err}");
}

/// Issue 12, item C24 (working containers): the killed build's working container stayed in
/// Podman's store (`podman ps --external`), one per timed-out build, forever.
#[tokio::test]
async fn a_build_past_its_timeout_leaves_no_step_running_and_no_working_container() {
    let kit = TestPodman::get().unwrap();
    let base = kit.base_alias("wh-timeout-base").unwrap();
    let podman = Podman { settings: PodmanSettings::probe().await.unwrap() };
    let ctx = tempfile::tempdir().unwrap();
    // A duration no other process uses, to find this step's `sleep` among the host's.
    let secs = format!("{}", 900_000 + std::process::id() % 100_000);
    std::fs::write(
        ctx.path().join("Containerfile"),
        format!("FROM {base}\nRUN echo step-started {} && sleep {secs}\n", kit.run_id()),
    )
    .unwrap();
    let started = std::sync::atomic::AtomicBool::new(false);
    let tag = format!("localhost/wh-runtime-timeout:{}", kit.run_id());
    let labels = [(LABEL.to_owned(), kit.run_id().to_owned())];
    let spec =
        BuildSpec { labels: &labels, timeout: Duration::from_secs(8), ..spec(ctx.path(), &tag) };
    let build = podman.build(&spec, |l| {
        if l.starts_with("step-started") {
            started.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let err = build.await.unwrap_err();
    assert!(matches!(err, wh_worker::runtime::RuntimeError::Timeout(_)), "{err}");
    assert!(started.load(std::sync::atomic::Ordering::Relaxed), "the RUN step never started");
    let gone = wh_testkit::until(Duration::from_secs(3), async || {
        wh_testkit::procs::with_argv(&["sleep", &secs]).is_empty()
    });
    assert!(
        gone.await,
        "the timed-out build's RUN step still runs: {:?}",
        wh_testkit::procs::with_argv(&["sleep", &secs])
    );
    let working = kit.working_containers(&base).unwrap();
    assert!(working.is_empty(), "the timed-out build left working containers {working:?}");
}

/// A test container whose app ignores SIGTERM and publishes `port`; its `sleep` runs for a
/// duration no other process uses (`secs`), to find it among the host's processes.
fn stubborn(kit: &TestPodman, port: u16, secs: &str) -> String {
    let base = kit.base_image().unwrap();
    let script = format!("trap '' TERM; httpd -p 8080 -h /; sleep {secs}");
    let publish = format!("127.0.0.1:{port}:8080");
    let c = kit.run_detached(&["-p", &publish], &base, &["sh", "-c", &script]).unwrap();
    let id = c.id.clone();
    std::mem::forget(c); // removed by the test, which checks how
    id
}

/// A `podman rm` killed during its stop grace, as `wh dev`'s Ctrl-C or a stopping worker does:
/// the container is left `Stopping`.
async fn interrupt_a_removal(kit: &TestPodman, id: &str) {
    let mut rm = tokio::process::Command::from(kit.command("rm"));
    let mut rm = rm.args(["-f", "-t", "30", id]).kill_on_drop(true).spawn().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    rm.kill().await.unwrap();
    let out = kit.command("inspect").args(["--format", "{{.State.Status}}", id]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "stopping", "precondition");
}

async fn gone_and_port_free(secs: &str, port: u16) {
    let gone = wh_testkit::until(Duration::from_secs(5), async || {
        let free = std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        free && wh_testkit::procs::with_argv(&["sleep", secs]).is_empty()
    });
    assert!(
        gone.await,
        "the removed container still runs (sleep {secs}: {:?}) or holds port {port}",
        wh_testkit::procs::with_argv(&["sleep", secs])
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Issue 12, item C24 (an app deleted just before `wh dev` stopped): a container left
/// `Stopping` by an interrupted removal was deleted by the next removal with its processes still
/// running, holding the app's host port, and unknown to `podman ps`.
#[tokio::test]
async fn removing_a_container_an_interrupted_removal_left_stopping_stops_it() {
    let kit = TestPodman::get().unwrap();
    let podman = Podman { settings: PodmanSettings::probe().await.unwrap() };
    let (port, secs) = (free_port(), format!("{}", 700_000 + std::process::id() % 100_000));
    let id = stubborn(kit, port, &secs);
    interrupt_a_removal(kit, &id).await;
    podman.remove(&id, Duration::from_secs(1)).await.unwrap();
    gone_and_port_free(&secs, port).await;
}

/// ...and what such a removal left before this fix (or after a crash in the middle of one) is
/// stopped by the next start: a conmon whose container Podman no longer knows.
#[tokio::test]
async fn a_container_podman_lost_while_removing_it_is_stopped_at_start() {
    let kit = TestPodman::get().unwrap();
    let podman = Podman { settings: PodmanSettings::probe().await.unwrap() };
    let (port, secs) = (free_port(), format!("{}", 600_000 + std::process::id() % 100_000));
    let id = stubborn(kit, port, &secs);
    interrupt_a_removal(kit, &id).await;
    // The removal as it was: one `rm -f`, which deletes a `Stopping` container as it stands.
    assert!(kit.command("rm").args(["-f", "-t", "0", &id]).status().unwrap().success());
    let left = kit.command("ps").args(["-a", "-q", "--filter", &format!("id={id}")]).output();
    assert!(left.unwrap().stdout.is_empty(), "precondition: podman forgot the container");
    assert!(
        !wh_testkit::procs::with_argv(&["sleep", &secs]).is_empty(),
        "precondition: its processes outlived it"
    );
    let stopped = podman.finish_orphaned_stops().await.unwrap();
    assert!(stopped >= 1, "no orphan found");
    gone_and_port_free(&secs, port).await;
}
