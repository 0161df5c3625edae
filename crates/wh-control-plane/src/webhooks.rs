//! Outbound webhooks: how a delivery is signed ([`signature`]: the Standard Webhooks scheme and
//! a Stripe-style header, secrets `whsec_…`, two secrets during a rotation). Targets, the outbox
//! dispatcher and the notification channels come with the rest of the webhooks issue.

pub mod signature;
