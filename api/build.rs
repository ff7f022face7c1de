//! Rebuilds the server when the console's built files change: they are embedded with
//! `include_dir!`, which cargo does not track by itself.

fn main() {
    println!("cargo:rerun-if-changed=../console/dist");
}
