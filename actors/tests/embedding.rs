//! The embedding examples, compiled and run as tests so they stay true.

#[path = "../examples/embed_smol.rs"]
mod embed_smol;

#[path = "../examples/embed_tokio.rs"]
mod embed_tokio;

#[path = "../examples/embed_actix.rs"]
mod embed_actix;

#[test]
fn runs_inside_a_smol_application() {
    embed_smol::main();
}

#[test]
fn runs_inside_a_tokio_application() {
    embed_tokio::main();
}

#[test]
fn runs_inside_an_actix_system_and_answers_an_actix_actor() {
    embed_actix::main();
}
