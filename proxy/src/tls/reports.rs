//! The queue certificate order outcomes wait in until [`crate::provider::report`] tells the
//! control plane. Bounded: a full queue drops the newest and says so (an outcome is news, not
//! state the proxy depends on).

use tokio::sync::mpsc;
use wh_wsproto::proxy::CertificateReport;

/// Reports waiting to be sent, at most.
pub const QUEUE: usize = 1024;

/// Where certificate outcomes are queued.
#[derive(Debug, Clone)]
pub struct Reports(mpsc::Sender<CertificateReport>);

impl Reports {
    /// Queues `report`; never waits.
    pub fn send(&self, report: CertificateReport) {
        if self.0.try_send(report).is_err() {
            tracing::warn!("certificate report queue full; a report was dropped");
        }
    }
}

/// A queue and its receiving end.
pub fn queue() -> (Reports, mpsc::Receiver<CertificateReport>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    (Reports(tx), rx)
}
