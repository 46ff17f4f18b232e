//! The bff-web binary takes `--config PATH` and `--check`, and refuses a bad config with
//! every problem named and exit status 64. (Serving and SIGTERM are the shared core `main`,
//! exercised through bff-mobile's binary.)

#[path = "../../tests/support/check_cli.rs"]
mod check_cli;

#[test]
fn check_accepts_the_shipped_config_and_names_every_problem_of_a_bad_one() {
    check_cli::check_accepts_shipped_and_names_every_problem(
        env!("CARGO_BIN_EXE_bff-web"),
        concat!(env!("CARGO_MANIFEST_DIR"), "/../config/web.toml"),
        "web",
    );
}
