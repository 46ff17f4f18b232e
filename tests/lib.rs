//! The end-to-end tests of the workspace live in `e2e/` (`cargo test -p e2e`); this crate has
//! no library code of its own.

#![forbid(unsafe_code)]
