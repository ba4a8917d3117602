//! The migrations are embedded at compile time (`sqlx::migrate!`); Cargo does not know that, so a
//! migration added or edited would not rebuild the crate without this line (sqlx's own advice).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
