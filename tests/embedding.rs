//! The database embedded in a smol program, a tokio program and an actix
//! `System` (the examples, compiled and run as tests so they stay true).

#[path = "../examples/db_smol.rs"]
mod db_smol;

#[path = "../examples/db_tokio.rs"]
mod db_tokio;

#[path = "../examples/db_actix.rs"]
mod db_actix;

#[test]
fn runs_inside_a_smol_program_on_a_local_directory() {
    db_smol::main();
}

#[test]
fn runs_inside_a_tokio_program() {
    db_tokio::main();
}

#[test]
fn runs_inside_an_actix_system_held_by_an_actix_actor() {
    db_actix::main();
}
