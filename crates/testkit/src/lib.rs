//! Test support shared by test suites and benchmarks. Never a dependency of
//! production code.
