//! The attribute macros accept the documented signatures and reject others
//! with an error on the offending tokens (trybuild compares the messages).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass_*.rs");
    t.compile_fail("tests/ui/fail_*.rs");
}
