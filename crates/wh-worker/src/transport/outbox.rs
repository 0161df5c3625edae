//! Messages waiting to go to the control plane.
//!
//! Reliable messages (job acks, progress, results, container events) are never dropped: each
//! gets an envelope id when queued, is sent, stays "in flight" until the control plane
//! acknowledges that id, and after a reconnect is sent again under the same id (the control
//! plane drops ids it already processed). Log lines are bounded: when more than the cap are
//! waiting, the oldest go and their count rides on the next batch as `dropped`. Other
//! best-effort messages (heartbeats) keep only the newest few.

use std::collections::VecDeque;

use wh_wsproto::{Message, Signer};

/// Best-effort messages other than logs kept while disconnected.
const OTHER_CAP: usize = 16;

/// The outbox.
#[derive(Debug)]
pub struct Outbox {
    unsent: VecDeque<(String, Message)>,
    in_flight: Vec<(String, Message)>,
    logs: VecDeque<Message>,
    log_lines: usize,
    log_cap: usize,
    dropped_lines: u64,
    other: VecDeque<Message>,
}

impl Outbox {
    /// An outbox holding at most `log_cap` log lines.
    pub fn new(log_cap: usize) -> Outbox {
        Outbox {
            unsent: VecDeque::new(),
            in_flight: Vec::new(),
            logs: VecDeque::new(),
            log_lines: 0,
            log_cap,
            dropped_lines: 0,
            other: VecDeque::new(),
        }
    }

    /// Queues a message.
    pub fn push(&mut self, msg: Message) {
        if msg.is_reliable() {
            self.unsent.push_back((Signer::new_id(), msg));
            return;
        }
        match msg {
            Message::LogLines(ref l) => {
                self.log_lines += l.lines.len();
                self.logs.push_back(msg);
                while self.log_lines > self.log_cap {
                    let Some(Message::LogLines(old)) = self.logs.pop_front() else { break };
                    self.log_lines -= old.lines.len();
                    self.dropped_lines += old.lines.len() as u64 + old.dropped;
                }
            }
            other => {
                if self.other.len() >= OTHER_CAP {
                    self.other.pop_front();
                }
                self.other.push_back(other);
            }
        }
    }

    /// Everything ready to send now, in order: (envelope id for reliable ones, message).
    /// Reliable messages move to "in flight".
    pub fn take(&mut self) -> Vec<(Option<String>, Message)> {
        let mut out = Vec::new();
        while let Some((id, msg)) = self.unsent.pop_front() {
            self.in_flight.push((id.clone(), msg.clone()));
            out.push((Some(id), msg));
        }
        out.extend(self.other.drain(..).map(|m| (None, m)));
        let dropped = std::mem::take(&mut self.dropped_lines);
        for (i, mut msg) in self.logs.drain(..).enumerate() {
            if let (0, Message::LogLines(l)) = (i, &mut msg) {
                l.dropped += dropped;
            }
            out.push((None, msg));
        }
        self.log_lines = 0;
        out
    }

    /// The control plane processed these ids.
    pub fn ack(&mut self, ids: &[String]) {
        self.in_flight.retain(|(id, _)| !ids.contains(id));
    }

    /// The connection dropped: whatever was in flight is sent again, first, in order.
    pub fn requeue_in_flight(&mut self) {
        for item in self.in_flight.drain(..).rev() {
            self.unsent.push_front(item);
        }
    }

    /// Reliable messages not yet acknowledged.
    pub fn pending_reliable(&self) -> usize {
        self.unsent.len() + self.in_flight.len()
    }

    /// Log lines dropped and not yet reported.
    pub fn dropped_lines(&self) -> u64 {
        self.dropped_lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wh_wsproto::messages::{JobResult, LogLine, LogLines, Stream};

    fn logs(n: usize) -> Message {
        Message::LogLines(LogLines {
            app: "a".into(),
            deployment_id: None,
            lines: (0..n)
                .map(|i| LogLine { ts_ms: i as i64, stream: Stream::Stdout, line: format!("l{i}") })
                .collect(),
            dropped: 0,
        })
    }

    fn result(job: i64) -> Message {
        Message::JobResult(JobResult {
            job_id: job,
            attempt: 1,
            ok: true,
            error: None,
            output: None,
        })
    }

    #[test]
    fn logs_drop_oldest_and_report_it_results_never_drop() {
        let mut o = Outbox::new(10);
        for _ in 0..5 {
            o.push(logs(4));
        }
        for j in 0..1000 {
            o.push(result(j));
        }
        assert_eq!(o.dropped_lines(), 12, "20 lines queued, cap 10: the three oldest batches go");
        let out = o.take();
        assert_eq!(
            out.iter().filter(|(id, _)| id.is_some()).count(),
            1000,
            "a job result was dropped"
        );
        let first_logs = out.iter().find_map(|(_, m)| match m {
            Message::LogLines(l) => Some(l.dropped),
            _ => None,
        });
        assert_eq!(first_logs, Some(12));
        assert_eq!(o.pending_reliable(), 1000);
    }

    #[test]
    fn unacked_reliable_messages_are_resent_under_the_same_id() {
        let mut o = Outbox::new(10);
        o.push(result(1));
        o.push(result(2));
        let first: Vec<_> = o.take().into_iter().map(|(id, _)| id.unwrap()).collect();
        o.ack(&first[..1]);
        o.requeue_in_flight();
        o.push(result(3));
        let again: Vec<_> = o.take().into_iter().map(|(id, _)| id.unwrap()).collect();
        assert_eq!(again.len(), 2);
        assert_eq!(again[0], first[1], "the unacked result keeps its id and goes first");
        o.ack(&again);
        assert_eq!(o.pending_reliable(), 0);
    }
}
