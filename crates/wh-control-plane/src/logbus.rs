//! The log bus: recent runtime output of every app, in memory, bounded per app by lines and
//! bytes, with live subscribers for `?follow=1`. Build output also goes to its deployment's
//! `build_log` (the last 1 MiB), so it survives restarts.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::broadcast;

/// One log line as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Entry {
    pub ts_ms: i64,
    pub stream: &'static str,
    pub line: String,
    pub deployment_id: Option<i64>,
}

struct AppLog {
    lines: VecDeque<Entry>,
    bytes: usize,
    live: broadcast::Sender<Entry>,
}

/// Per-app ring buffers.
pub struct LogBus {
    apps: Mutex<HashMap<String, AppLog>>,
    max_lines: usize,
    max_bytes: usize,
}

impl std::fmt::Debug for LogBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogBus")
            .field("max_lines", &self.max_lines)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl Default for LogBus {
    /// 2,000 lines or 512 KiB per app, whichever comes first.
    fn default() -> Self {
        LogBus::new(2_000, 512 * 1024)
    }
}

impl LogBus {
    pub fn new(max_lines: usize, max_bytes: usize) -> LogBus {
        LogBus { apps: Mutex::new(HashMap::new()), max_lines, max_bytes }
    }

    /// Appends lines of `app`, dropping the oldest beyond the bounds.
    pub fn push(&self, app: &str, entries: impl IntoIterator<Item = Entry>) {
        let mut apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
        let log = apps.entry(app.to_owned()).or_insert_with(|| AppLog {
            lines: VecDeque::new(),
            bytes: 0,
            live: broadcast::channel(1024).0,
        });
        for mut e in entries {
            e.line.truncate(16 * 1024);
            log.bytes += e.line.len();
            let _ = log.live.send(e.clone());
            log.lines.push_back(e);
            while log.lines.len() > self.max_lines || log.bytes > self.max_bytes {
                match log.lines.pop_front() {
                    Some(old) => log.bytes -= old.line.len(),
                    None => break,
                }
            }
        }
    }

    /// The last `n` lines of `app`, oldest first.
    pub fn recent(&self, app: &str, n: usize) -> Vec<Entry> {
        let apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
        apps.get(app)
            .map(|l| l.lines.iter().skip(l.lines.len().saturating_sub(n)).cloned().collect())
            .unwrap_or_default()
    }

    /// Recent lines and a receiver for what follows, taken atomically (nothing lost between).
    pub fn follow(&self, app: &str, n: usize) -> (Vec<Entry>, broadcast::Receiver<Entry>) {
        let mut apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
        let log = apps.entry(app.to_owned()).or_insert_with(|| AppLog {
            lines: VecDeque::new(),
            bytes: 0,
            live: broadcast::channel(1024).0,
        });
        let recent = log.lines.iter().skip(log.lines.len().saturating_sub(n)).cloned().collect();
        (recent, log.live.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(line: &str) -> Entry {
        Entry { ts_ms: 1, stream: "stdout", line: line.into(), deployment_id: None }
    }

    #[test]
    fn bounded_by_lines_and_bytes_and_followers_see_new_lines() {
        let bus = LogBus::new(3, 1000);
        bus.push("a", ["1", "2", "3", "4"].map(e));
        assert_eq!(
            bus.recent("a", 10).iter().map(|e| e.line.as_str()).collect::<Vec<_>>(),
            ["2", "3", "4"]
        );
        assert_eq!(bus.recent("a", 1)[0].line, "4");
        assert!(bus.recent("b", 10).is_empty());
        let small = LogBus::new(100, 10);
        small.push("a", ["12345", "67890", "abcde"].map(e));
        assert_eq!(small.recent("a", 10).len(), 2, "bytes bound");
        let (recent, mut rx) = bus.follow("a", 2);
        assert_eq!(recent.len(), 2);
        bus.push("a", [e("5")]);
        assert_eq!(rx.try_recv().unwrap().line, "5");
    }
}
