//! The log bus: recent runtime output of every app, in memory, bounded per app by lines and
//! bytes, with live subscribers for `?follow=1`. Keyed by app id, never by slug: a new app that
//! takes a deleted app's slug starts with no lines, and deleting an app drops its lines. Build output also goes to its deployment's
//! `build_log` (the last 1 MiB), so it survives restarts.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::broadcast;

/// The longest line kept, in bytes.
pub const MAX_LINE: usize = 16 * 1024;

/// Makes a tenant's line safe to keep: at most [`MAX_LINE`] bytes, cut on a character boundary
/// (`String::truncate` panics inside one), and no NUL (Postgres text cannot hold it).
pub fn clip(line: &mut String) {
    if line.len() > MAX_LINE {
        let mut end = MAX_LINE;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
    }
    if line.contains('\0') {
        *line = line.replace('\0', "\u{FFFD}");
    }
}

/// One log line as the API shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, PartialEq, Eq)]
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
    apps: Mutex<HashMap<i64, AppLog>>,
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
    pub fn push(&self, app: i64, entries: impl IntoIterator<Item = Entry>) {
        let mut apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
        let log = apps.entry(app).or_insert_with(|| AppLog {
            lines: VecDeque::new(),
            bytes: 0,
            live: broadcast::channel(1024).0,
        });
        for mut e in entries {
            clip(&mut e.line);
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
    pub fn recent(&self, app: i64, n: usize) -> Vec<Entry> {
        let apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
        apps.get(&app)
            .map(|l| l.lines.iter().skip(l.lines.len().saturating_sub(n)).cloned().collect())
            .unwrap_or_default()
    }

    /// Recent lines and a receiver for what follows, taken atomically (nothing lost between).
    pub fn follow(&self, app: i64, n: usize) -> (Vec<Entry>, broadcast::Receiver<Entry>) {
        let mut apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
        let log = apps.entry(app).or_insert_with(|| AppLog {
            lines: VecDeque::new(),
            bytes: 0,
            live: broadcast::channel(1024).0,
        });
        let recent = log.lines.iter().skip(log.lines.len().saturating_sub(n)).cloned().collect();
        (recent, log.live.subscribe())
    }

    /// Forgets `app`'s lines (it was deleted); its followers see the end of the stream.
    pub fn remove(&self, app: i64) {
        self.apps.lock().unwrap_or_else(|e| e.into_inner()).remove(&app);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(line: &str) -> Entry {
        Entry { ts_ms: 1, stream: "stdout", line: line.into(), deployment_id: None }
    }

    #[test]
    fn a_line_of_any_characters_is_cut_on_a_boundary_never_panics() {
        let bus = LogBus::default();
        let hostile = format!("a{}", "é".repeat(9000));
        bus.push(1, [e(&hostile), e("nul\0byte")]);
        let kept = bus.recent(1, 2);
        assert!(kept[0].line.len() <= MAX_LINE && kept[0].line.len() > MAX_LINE - 4);
        assert!(hostile.starts_with(&kept[0].line));
        assert_eq!(kept[1].line, "nul\u{FFFD}byte");
    }

    #[test]
    fn bounded_by_lines_and_bytes_and_followers_see_new_lines() {
        let bus = LogBus::new(3, 1000);
        bus.push(1, ["1", "2", "3", "4"].map(e));
        assert_eq!(
            bus.recent(1, 10).iter().map(|e| e.line.as_str()).collect::<Vec<_>>(),
            ["2", "3", "4"]
        );
        assert_eq!(bus.recent(1, 1)[0].line, "4");
        assert!(bus.recent(2, 10).is_empty());
        let small = LogBus::new(100, 10);
        small.push(1, ["12345", "67890", "abcde"].map(e));
        assert_eq!(small.recent(1, 10).len(), 2, "bytes bound");
        let (recent, mut rx) = bus.follow(1, 2);
        assert_eq!(recent.len(), 2);
        bus.push(1, [e("5")]);
        assert_eq!(rx.try_recv().unwrap().line, "5");
        bus.remove(1);
        assert!(bus.recent(1, 10).is_empty());
        assert!(matches!(rx.try_recv(), Err(broadcast::error::TryRecvError::Closed)));
    }
}
