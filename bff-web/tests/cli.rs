//! The bff-web binary takes `--config PATH`, `--check`, `--version` and
//! `--print-config-schema`, and refuses a bad config with every problem named, in one run,
//! each at its line and column, and exit status 64. (Serving and SIGTERM are the shared core
//! `main`, exercised through bff-mobile's binary.)

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

#[test]
fn check_lists_every_mistake_of_a_file_with_its_line_and_column() {
    check_cli::check_lists_every_mistake_with_its_place(
        env!("CARGO_BIN_EXE_bff-web"),
        "web",
        bff_web::SPEC.upstreams,
    );
}

#[test]
fn version_and_config_schema() {
    check_cli::version_names_the_binary(
        env!("CARGO_BIN_EXE_bff-web"),
        "bff-web",
        env!("CARGO_PKG_VERSION"),
    );
    check_cli::prints_the_checked_in_config_schema(
        env!("CARGO_BIN_EXE_bff-web"),
        concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/config.schema.json"),
    );
}
