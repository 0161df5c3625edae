//! Outbound webhooks and notification channels: the events deploys, alerts, crashes and
//! domains write to the outbox (by trigger, in the transaction that changed them), the targets
//! users choose, and the dispatcher that delivers them with retries.
//!
//! # Layout
//! - [`event`]: the event names and the delivered body `{type, timestamp, data}` (≤ 20 KB).
//! - [`signature`]: the Standard Webhooks signature and a Stripe-style header; `whsec_` secrets.
//! - [`targets`]: webhooks and channels, their sealed URLs and secrets, rotation, deliveries.
//! - [`fanout`]: outbox events and alert notices into deliveries.
//! - [`schedule`]: the retry schedule, jitter and `Retry-After`.
//! - [`dispatch`]: claiming, sending through the SSRF guard, recording, disabling.

pub mod dispatch;
pub mod event;
pub mod fanout;
pub mod schedule;
pub mod signature;
pub mod targets;

pub use dispatch::Dispatcher;
