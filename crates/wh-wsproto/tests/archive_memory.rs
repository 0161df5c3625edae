//! Item A5 of issue 12: checking an upload costs bounded memory whatever the archive. Each case
//! runs in a child process (this test binary again) that reports how much its peak resident
//! memory grew while checking: a 490 MiB file in a 0.5 MiB upload took the control plane from
//! 64 to 592 MiB before, and a 300 MiB GNU long name did the same.

use std::io::Write;
use std::process::Command;

use wh_wsproto::archive::{self, Limits};

const CHILD: &str = "WH_ARCHIVE_MEMORY_CASE";
/// What one check may add to the peak resident memory.
const BOUND: u64 = 16 << 20;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A gzip stream of `tar` without holding `tar` whole: `write` feeds the encoder.
fn gzip(write: impl FnOnce(&mut dyn Write)) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    write(&mut gz);
    gz.finish().unwrap()
}

fn header(name: &[u8], kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    h
}

fn zeros(w: &mut dyn Write, mut n: u64) {
    let block = vec![0u8; 1 << 20];
    while n > 0 {
        let k = n.min(block.len() as u64) as usize;
        w.write_all(&block[..k]).unwrap();
        n -= k as u64;
    }
}

fn archive_for(case: &str) -> Vec<u8> {
    match case {
        // One 490 MiB file of zeros: under the 500 MiB unpacked limit, so it checks fine.
        "big-file" => gzip(|w| {
            let size = 490u64 << 20;
            w.write_all(header(b"big", tar::EntryType::Regular, size).as_bytes()).unwrap();
            zeros(w, size);
            zeros(w, 1024);
        }),
        // A 300 MiB GNU long name, then a small file it would name.
        "long-name" => gzip(|w| {
            let size = 300u64 << 20;
            w.write_all(header(b"././@LongLink", tar::EntryType::GNULongName, size).as_bytes())
                .unwrap();
            let block = vec![b'a'; 1 << 20];
            for _ in 0..300 {
                w.write_all(&block).unwrap();
            }
            w.write_all(header(b"x", tar::EntryType::Regular, 1).as_bytes()).unwrap();
            w.write_all(&[b'x'; 512]).unwrap();
            zeros(w, 1024);
        }),
        other => panic!("no case {other}"),
    }
}

#[test]
fn child() {
    let Ok(case) = std::env::var(CHILD) else { return };
    let bytes = archive_for(&case);
    // Reset the peak to what is resident now (making the archive took more than checking it).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = status_kib("VmHWM:");
    let outcome = archive::check(&bytes, &Limits::default());
    let peak = status_kib("VmHWM:");
    println!(
        "CASE {case} compressed={} grew_kib={} outcome={outcome:?}",
        bytes.len(),
        peak.saturating_sub(before)
    );
}

fn grew(case: &str) -> (u64, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD, case)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .split("CASE ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap_or_else(|| panic!("{text}"));
    let kib = line.split("grew_kib=").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    (kib, line.to_owned())
}

#[test]
fn checking_a_hostile_upload_costs_bounded_memory() {
    let (big, line) = grew("big-file");
    assert!(line.contains("outcome=Ok"), "{line}");
    assert!(big * 1024 < BOUND, "{line}");
    eprintln!("{line}");
    let (long, line) = grew("long-name");
    assert!(line.contains("NamesTooLong"), "{line}");
    assert!(long * 1024 < BOUND, "{line}");
    eprintln!("{line}");
}
