#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    manifold::bff::main(&bff_partner::SPEC)
}
