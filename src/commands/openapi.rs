//! `tessera openapi`: print the OpenAPI document.

pub fn run() {
    println!("{}", crate::http::openapi::document());
}
