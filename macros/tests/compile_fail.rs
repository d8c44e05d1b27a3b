//! Compile errors are part of Rondo's API: each case under `tests/ui` is one mistake a
//! controller can make, compiled once as written and once under `#[debug_handler]`, and its
//! `.stderr` file is the error users get. A changed message fails the test; to accept a
//! change on purpose, run `TRYBUILD=overwrite cargo test -p rondo-macros --test compile_fail`
//! and review the diff of the `.stderr` files.
//!
//! The cases build against the real framework in a target directory of their own, so the
//! first run compiles Rondo's dependencies once more (about five minutes on two cores; a
//! minute after that). The expected output is the wording of the toolchain this project
//! builds with: a new compiler may word things differently, and then the files are blessed
//! again after a review.

/// Every mistake is reported, with a message that names the rule; correct controllers pass.
#[test]
fn controller_mistakes_name_the_rule() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass.rs");
    cases.compile_fail("tests/ui/[a-z]_*.rs");
    cases.compile_fail("tests/ui/misuse.rs");
}
