//! The one way tests build a control plane (feature `test-util`; never in a shipped binary).
//!
//! [`TestControlPlane::start`] wires the same parts as [`crate::server::start`] (state, hub,
//! the scheduler's pipeline, the worker-status enforcer, the API on a loopback port) around a
//! test's database, each part switchable through [`Options`]. [`fixtures`] inserts users, apps
//! and deployments the way the API would leave them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::hub::{self, Hub, Queues};
use crate::jwt::JwtKeys;
use crate::scheduler::{self, SchedulerSettings};
use crate::{api, AppState, Routing};

pub mod fixtures;
pub mod forge;
pub mod standin;

/// The JWT secret of test control planes (workers' tokens are signed with it).
pub const JWT_SECRET: [u8; 32] = [7u8; 32];

/// What to start.
#[derive(Clone)]
pub struct Options {
    /// Run the scheduler's pipeline with these settings (env vars and logs wired from the
    /// state). `None`: nothing consumes worker messages; [`TestControlPlane::queues`] has them.
    pub scheduler: Option<SchedulerSettings>,
    /// Serve the API (public and internal routes) on this address; `None`: not served (tests
    /// call [`TestControlPlane::router`]). Port 0 picks a free one.
    pub listen: Option<SocketAddr>,
    /// The token wh-proxy presents for proxy-config.
    pub proxy_token: Option<String>,
    /// Lifetime of worker tokens.
    pub jwt_ttl: Duration,
    /// The hub's ping interval and silence limit.
    pub hub_timing: (Duration, Duration),
    /// Close connections of disabled, deleted or re-keyed workers this often; `None`: never.
    pub enforce_enabled: Option<Duration>,
    /// The DNS servers custom domains are verified against (a test's own); `None`: a loopback
    /// port nothing answers on, so that no test ever asks a public resolver.
    pub dns: Option<crate::domains::DnsSettings>,
    /// Serve the admin routes (`/metrics`) on a free loopback port too.
    pub admin: bool,
    /// Git providers users may connect (a fake forge's addresses); the public URL is the
    /// served API's. Token refreshes and commit statuses run when there are any.
    pub git_providers: Vec<crate::gitproviders::ForgeConfig>,
    /// Run the webhook dispatcher with these outbound settings; `None`: it does not run (and
    /// the state's dispatcher resolves no name).
    pub outbound: Option<Outbound>,
}

/// What webhooks and channels may reach in a test, and how names resolve.
#[derive(Clone)]
pub struct Outbound {
    pub resolver: Arc<dyn crate::outbound::resolve::Resolve>,
    pub allow: Vec<crate::outbound::guard::Cidr>,
    pub allow_http: bool,
    /// The roots TLS trusts (the stand-ins' certificates).
    pub trust: wh_http::client::Trust,
    /// How long a claimed delivery is held.
    pub lease: Duration,
    /// The dashboard's base URL in messages.
    pub dashboard: String,
}

impl Outbound {
    /// Names resolved by `resolver`, loopback allowed, https trusting `pem` (if any).
    pub fn loopback(
        resolver: Arc<dyn crate::outbound::resolve::Resolve>,
        pem: Option<&str>,
    ) -> Outbound {
        Outbound {
            resolver,
            allow: crate::outbound::guard::parse_cidrs("127.0.0.0/8").expect("a CIDR"),
            allow_http: false,
            trust: match pem {
                Some(pem) => wh_http::client::Trust::from_pem(pem.as_bytes()).expect("a PEM"),
                None => wh_http::client::Trust::System,
            },
            lease: Duration::from_secs(60),
            dashboard: "https://wh.example.com".into(),
        }
    }
}

impl Default for Options {
    /// Everything on: the pipeline with default settings, the API on a free loopback port.
    fn default() -> Self {
        Options {
            scheduler: Some(SchedulerSettings::default()),
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            proxy_token: None,
            jwt_ttl: Duration::from_secs(900),
            hub_timing: (hub::PING_INTERVAL, hub::DEAD_AFTER),
            enforce_enabled: Some(Duration::from_millis(100)),
            dns: None,
            admin: false,
            git_providers: Vec::new(),
            outbound: None,
        }
    }
}

impl Options {
    /// State and hub only: no pipeline, no listener (for `oneshot` API tests).
    pub fn bare() -> Options {
        Options { scheduler: None, listen: None, enforce_enabled: None, ..Options::default() }
    }
}

/// A control plane in this process. Dropping it stops everything it started.
pub struct TestControlPlane {
    pub state: AppState,
    pub hub: Arc<Hub>,
    /// Where the API listens, when served.
    pub addr: Option<SocketAddr>,
    /// Where the admin routes listen, when asked for.
    pub admin_addr: Option<SocketAddr>,
    /// The worker-message queues, when no pipeline consumes them.
    pub queues: Option<Queues>,
    stop: CancellationToken,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl TestControlPlane {
    /// Starts what `options` asks for around `pool`.
    pub async fn start(pool: &sqlx::PgPool, options: Options) -> TestControlPlane {
        let stop = CancellationToken::new();
        let (routes, queues) = hub::routes(4096);
        let (ping, dead) = options.hub_timing;
        let hub = Arc::new(Hub::with_timing(routes, ping, dead));
        let token = options.proxy_token.as_deref().map(crate::config::secret_bytes);
        let mut state = AppState::new(
            pool.clone(),
            Arc::new(JwtKeys::new(&JWT_SECRET, options.jwt_ttl)),
            hub.clone(),
            Arc::new(Routing::follow(pool, token, "route.test")),
        );
        // Tests never ask the public resolvers: without settings, a loopback port nothing
        // answers on (checks end in `timeout`).
        let dns = options.dns.clone().unwrap_or_else(|| crate::domains::DnsSettings {
            servers: vec![std::net::SocketAddr::from(([127, 0, 0, 1], 9))],
            timeout: std::time::Duration::from_millis(500),
        });
        state.dns = Arc::new(crate::domains::Verifier::new(&dns));
        // Bound before anything is built, so the providers' redirects and hook URLs can name it.
        let listener = match options.listen {
            Some(listen) => Some(bind(listen).await),
            None => None,
        };
        let addr =
            listener.as_ref().map(|l| l.local_addr().expect("a bound listener has an address"));
        let public_url =
            addr.map(|a| format!("http://{a}")).unwrap_or_else(|| "http://localhost".into());
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the OS random source is available");
        state.forges = Arc::new(crate::gitproviders::Forges::new(
            options.git_providers.clone(),
            &public_url,
            crate::outbound::Client::new(&wh_http::client::Trust::System),
            Arc::new(
                crate::secrets::MasterKey::from_bytes(key).sealer(crate::secrets::Purpose::OAuth),
            ),
        ));
        crate::gitproviders::spawn_every(
            pool,
            &state.forges,
            &state.routing,
            &stop,
            Duration::from_millis(200),
        );
        if let Some(o) = options.outbound.clone() {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).expect("the OS random source is available");
            let master = crate::secrets::MasterKey::from_bytes(key);
            let dispatcher = Arc::new(crate::webhooks::Dispatcher::new(
                pool.clone(),
                crate::webhooks::dispatch::Settings {
                    client: crate::outbound::Client::new(&o.trust),
                    guard: crate::outbound::guard::Guard {
                        allow_http: o.allow_http,
                        allow: o.allow,
                        resolver: o.resolver,
                    },
                    keys: Arc::new(crate::webhooks::targets::Keys {
                        urls: master.sealer(crate::secrets::Purpose::TargetUrl),
                        secrets: master.sealer(crate::secrets::Purpose::Webhook),
                    }),
                    dashboard: o.dashboard,
                    lease: o.lease,
                },
            ));
            state.dispatcher = dispatcher.clone();
            tokio::spawn(dispatcher.run(stop.clone()));
        }
        if let Some(every) = options.enforce_enabled {
            tokio::spawn(hub.clone().enforce_enabled(pool.clone(), every, stop.clone()));
        }
        let queues = match options.scheduler {
            Some(mut settings) => {
                settings.env = Some(state.env.clone());
                settings.logs = Some(state.logs.clone());
                settings.metrics = state.metrics.clone();
                settings.forges = Some(state.forges.clone());
                let pipeline =
                    scheduler::run(pool.clone(), hub.clone(), settings, queues, stop.clone());
                tokio::spawn(pipeline);
                None
            }
            None => Some(queues),
        };
        let server = listener.map(|l| serve_on(l, api::app(state.clone()), &stop));
        let admin_addr = match options.admin {
            true => {
                let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
                let (addr, _) = serve(loopback, api::admin_router(state.clone()), &stop).await;
                Some(addr)
            }
            false => None,
        };
        TestControlPlane { state, hub, addr, admin_addr, queues, stop, server }
    }

    /// `http://<addr>` of the served API.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr.expect("the API is not served (Options::listen)"))
    }

    /// The API's router, for `oneshot` calls.
    pub fn router(&self) -> axum::Router {
        api::app(self.state.clone())
    }

    /// `method uri` through the router with `bearer` (an `Authorization` value) and a JSON
    /// body: the status and the answer's JSON (Null when it is none).
    pub async fn call(
        &self,
        bearer: &str,
        method: &str,
        uri: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        use tower::ServiceExt;
        let mut req =
            axum::http::Request::builder().method(method).uri(uri).header("authorization", bearer);
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let body = body.map(|b| axum::body::Body::from(b.to_string())).unwrap_or_default();
        let resp =
            self.router().oneshot(req.body(body).expect("a request")).await.expect("an answer");
        let status = resp.status().as_u16();
        let bytes =
            http_body_util::BodyExt::collect(resp.into_body()).await.expect("a body").to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    /// Stops serving and drops every worker connection at once, as a crash of the control
    /// plane would (nothing is drained).
    pub fn kill(mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
        for id in self.hub.connected() {
            self.hub.disconnect(id);
        }
        self.stop.cancel();
    }
}

impl Drop for TestControlPlane {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// Serves `app` on `addr` until `stop`.
async fn serve(
    addr: SocketAddr,
    app: axum::Router,
    stop: &CancellationToken,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = bind(addr).await;
    let addr = listener.local_addr().expect("a bound listener has an address");
    (addr, serve_on(listener, app, stop))
}

/// Serves `app` on `listener` until `stop`.
fn serve_on(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    stop: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let stopped = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopped.cancelled().await })
            .await;
    })
}

/// Binds `addr`, retrying for a while when it is a fixed port a previous control plane of the
/// same test just released.
async fn bind(addr: SocketAddr) -> tokio::net::TcpListener {
    let mut last = None;
    for _ in 0..50 {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("cannot listen on {addr}: {last:?}");
}
