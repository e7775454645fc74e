//! stage1: the pod supervisor. See docs/stage1.md.
fn main() {}
