//! Image retention against real Podman: old app images go, used, newest and young ones stay,
//! nothing outside the worker's labels is touched, and only the worker's own containers keep an
//! app's images.

use std::collections::BTreeSet;
use std::time::Duration;

use wh_testkit::podman::{Podman as TestPodman, LABEL};
use wh_worker::images::{sweep, ImagePolicy};
use wh_worker::runtime::{BuildSpec, Podman, PodmanSettings, RunSpec, LABEL_APP, LABEL_DEPLOYMENT};

const SCOPE: &str = "wh.test.scope";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeps_keep_used_newest_and_young_images_of_this_worker_only() {
    let kit = TestPodman::get().unwrap();
    let base = kit.base_image().unwrap();
    let podman = Podman { settings: PodmanSettings::probe().await.unwrap() };
    let run = kit.run_id();
    let cleanup = (LABEL.to_owned(), run.to_owned());
    let scope = vec![cleanup.clone(), (SCOPE.to_owned(), "in".to_owned())];
    let (a, b) = (format!("imga-{run}"), format!("imgb-{run}"));

    // App a: deployments 1–4; app b: 1–2; one more image of app a outside the scope.
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Containerfile"),
        format!("FROM {base}\nCMD [\"sleep\", \"300\"]\n"),
    )
    .unwrap();
    let mut tags = std::collections::BTreeMap::new();
    for (app, deployment, within) in [
        (&a, 1, "in"),
        (&a, 2, "in"),
        (&a, 3, "in"),
        (&a, 4, "in"),
        (&b, 1, "in"),
        (&b, 2, "in"),
        (&a, 9, "out"),
    ] {
        let tag = format!("localhost/wh-{app}:{deployment}");
        let labels = vec![
            cleanup.clone(),
            (SCOPE.to_owned(), within.to_owned()),
            (LABEL_APP.to_owned(), app.clone()),
            (LABEL_DEPLOYMENT.to_owned(), deployment.to_string()),
        ];
        podman
            .build(
                &BuildSpec {
                    context: ctx.path(),
                    dockerfile: None,
                    tag: &tag,
                    labels: &labels,
                    memory_mb: 256,
                    cpus: 1.0,
                    timeout: Duration::from_secs(120),
                },
                |_| {},
            )
            .await
            .unwrap();
        tags.insert(format!("{app}:{deployment}"), tag);
    }
    // a:2 is what runs here; b runs only under another worker (outside the scope), from an
    // image of its own, which is no reason to keep this worker's images of b.
    let start = |name: String, image: String, app: &str, within: &str| {
        let labels = vec![
            cleanup.clone(),
            (SCOPE.to_owned(), within.to_owned()),
            (LABEL_APP.to_owned(), app.to_owned()),
            (LABEL_DEPLOYMENT.to_owned(), "2".to_owned()),
        ];
        let podman = &podman;
        async move {
            podman
                .run(&RunSpec {
                    name,
                    image,
                    memory_mb: 64,
                    cpus: 0.5,
                    pids_limit: 100,
                    labels,
                    ..RunSpec::default()
                })
                .await
                .unwrap()
        }
    };
    let container = start(format!("wh-img-{run}"), tags[&format!("{a}:2")].clone(), &a, "in").await;
    let elsewhere = start(format!("wh-img-out-{run}"), base.clone(), &b, "out").await;

    let left = || async {
        podman
            .images(LABEL_APP)
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.labels.get(LABEL) == Some(&run.to_owned()))
            .map(|i| format!("{}:{}", i.labels[LABEL_APP], i.labels[LABEL_DEPLOYMENT]))
            .collect::<BTreeSet<_>>()
    };
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let all = left().await;
    assert_eq!(all.len(), 7, "{all:?}");

    // Everything was just built: an hour's minimum age keeps it all.
    let young = ImagePolicy { keep: 1, ..ImagePolicy::default() };
    assert!(sweep(&podman, &young, &scope).await.unwrap().is_empty());
    assert_eq!(left().await, all);

    // Keep 2: a's newest two (4, 3) and the used one (2) stay; b has no container here.
    let two = ImagePolicy { keep: 2, min_age: Duration::ZERO, ..ImagePolicy::default() };
    let removed = sweep(&podman, &two, &scope).await.unwrap();
    assert_eq!(removed.len(), 3, "{removed:?}");
    let out = format!("{a}:9");
    assert_eq!(
        left().await,
        names(&[&format!("{a}:2"), &format!("{a}:3"), &format!("{a}:4"), &out])
    );

    // Keep 1: a:3 goes too; the running a:2 and the image outside the scope stay.
    let one = ImagePolicy { keep: 1, ..two };
    assert_eq!(sweep(&podman, &one, &scope).await.unwrap().len(), 1);
    assert_eq!(left().await, names(&[&format!("{a}:2"), &format!("{a}:4"), &out]));
    podman.remove(&container, Duration::ZERO).await.unwrap();
    podman.remove(&elsewhere, Duration::ZERO).await.unwrap();
}
