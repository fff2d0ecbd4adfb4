//! Benchmarks and measurement commands for syssync.
