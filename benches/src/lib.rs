//! Benchmarks live in `benches/` (criterion) and `load/` (scripts against nginx, HAProxy and
//! Caddy); this library is empty. Results and how to reproduce them: `benches/README.md`.
